/**
 * --emit-spans without root: exchange records (as the mapper builds them) go
 * through SpanPipeline into the SDK's in-memory exporter, and through the
 * real OTLP trace exporters into the embedded receiver's trace service.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { SpanKind, SpanStatusCode, type HrTime } from '@opentelemetry/api';
import { SeverityNumber } from '@opentelemetry/api-logs';
import { ExportResultCode } from '@opentelemetry/core';
import type { ReadableSpan, SpanExporter } from '@opentelemetry/sdk-trace-base';
import { silentLog } from '../helpers/log';
import { resolveExportTarget } from '../../src/otel';
import { SpanPipeline } from '../../src/otel/spans';
import { WorkloadResources } from '../../src/otel/workloads';
import type { ExchangeRecord } from '../../src/otel/record';
import { errorType, KNOWN_METHODS } from '../../src/otel/attributes';
import { startOtlpSink } from '../helpers/otlp-sink';

const CALLER = { traceId: '4bf92f3577b34da6a3ce929d0e0e4736', spanId: '00f067aa0ba902b7', traceFlags: 1, isRemote: true };
const START: HrTime = [1_700_000_000, 999_999_000];

function exchange(opts: { role: 'client' | 'server'; status?: number; traced?: boolean; method?: string }): ExchangeRecord {
  const method = opts.method ?? 'GET';
  const attributes: ExchangeRecord['attributes'] = [
    'http.request.method',
    KNOWN_METHODS.has(method) ? method : '_OTHER',
    'url.path',
    '/items',
    'headertap.role',
    opts.role,
    'http.request.header.x-tenant',
    ['acme'],
    'http.request.header.authorization',
    ['[REDACTED]'],
  ];
  if (opts.status !== undefined) attributes.push('http.response.status_code', opts.status, 'headertap.duration_ns', 2_500_000);
  else attributes.push('headertap.unanswered_reason', 'connection_closed');
  // As the mapper sets it (test/unit/attributes.test.ts holds the values).
  const error = errorType(opts.role, opts.status, undefined, opts.status === undefined ? 'connection_closed' : undefined);
  if (error !== undefined) attributes.push('error.type', error);
  return {
    eventName: 'headertap.http.exchange',
    timestamp: START,
    observedTimestamp: START,
    severityNumber: SeverityNumber.INFO,
    severityText: 'INFO',
    body: `${method} /items -> ${opts.status ?? 'no response'}`,
    attributes,
    droppedAttributesCount: 0,
    ...(opts.traced === false ? {} : { spanContext: CALLER }),
    role: opts.role,
    method,
    ...(opts.status !== undefined ? { status: opts.status, durationNs: 2_500_000 } : { unanswered: 'connection_closed' }),
    errorType: error,
    scheme: 'http',
    protocolVersion: '1.1',
  };
}

async function spansOf(records: ExchangeRecord[]): Promise<{ spans: ReadableSpan[]; logged: ExchangeRecord[] }> {
  const spans: ReadableSpan[] = [];
  const exporter: SpanExporter = {
    export: (batch, done) => {
      spans.push(...batch);
      done({ code: ExportResultCode.SUCCESS });
    },
    shutdown: () => Promise.resolve(),
  };
  const target = resolveExportTarget({}, {}, 'traces');
  const p = new SpanPipeline({ target, serviceName: 'ht-test', version: '1.0.0', log: silentLog, exporter });
  const logged = records.map((r) => p.withSpan(r));
  await p.shutdown();
  assert.deepEqual(p.counters, { emitted: records.length, exported: records.length, failed: 0 });
  return { spans, logged };
}

describe('SpanPipeline: one span per exchange', () => {
  it('makes a CLIENT or SERVER span that is a child of the request header\'s span, in its trace', async () => {
    const { spans, logged } = await spansOf([exchange({ role: 'client', status: 200 }), exchange({ role: 'server', status: 200 })]);
    assert.equal(spans.length, 2);
    const [client, server] = spans;
    assert.equal(client.kind, SpanKind.CLIENT);
    assert.equal(server.kind, SpanKind.SERVER);
    for (const s of spans) {
      assert.equal(s.spanContext().traceId, CALLER.traceId, 'the caller\'s trace');
      assert.equal(s.parentSpanContext?.spanId, CALLER.spanId, 'the header span is the parent');
      assert.notEqual(s.spanContext().spanId, CALLER.spanId, 'a span of its own');
      assert.equal(s.name, 'GET');
      assert.equal(s.status.code, SpanStatusCode.UNSET);
      assert.deepEqual(s.attributes['http.request.header.x-tenant'], ['acme']);
      assert.deepEqual(s.attributes['http.request.header.authorization'], ['[REDACTED]']);
      assert.equal(s.resource.attributes['service.name'], 'ht-test');
    }
    assert.deepEqual(
      logged.map((r) => r.spanContext),
      [CALLER, CALLER],
      'log records keep the caller\'s ids (the log-record contract)',
    );
  });

  it('starts at the first request byte and ends duration_ns later', async () => {
    const { spans } = await spansOf([exchange({ role: 'server', status: 200 })]);
    const s = spans[0];
    assert.deepEqual(s.startTime, START);
    // 1_700_000_000 s + 999_999_000 ns + 2_500_000 ns, the nanoseconds carried into seconds
    assert.deepEqual(s.endTime, [1_700_000_001, 2_499_000]);
  });

  it('without trace context starts a new trace, and the log record carries it', async () => {
    const rec = exchange({ role: 'client', status: 200, traced: false });
    const { spans, logged } = await spansOf([rec]);
    const s = spans[0];
    assert.equal(s.parentSpanContext, undefined, 'a root span');
    assert.match(s.spanContext().traceId, /^[0-9a-f]{32}$/);
    assert.deepEqual(
      { traceId: logged[0].spanContext?.traceId, spanId: logged[0].spanContext?.spanId },
      { traceId: s.spanContext().traceId, spanId: s.spanContext().spanId },
    );
    assert.equal(rec.spanContext, undefined, 'the input record is not changed');
  });

  it("puts a span under the observed workload's resource, like its log record, else under headertap's", async () => {
    const info = { pid: 4242, executableName: 'node', serviceName: 'checkout', resourceAttributes: { 'deployment.environment.name': 'prod' } };
    const { resource } = new WorkloadResources().get(info);
    const { spans } = await spansOf([{ ...exchange({ role: 'server', status: 200 }), resource }, exchange({ role: 'client', status: 200 })]);
    const [observed, own] = spans;
    assert.equal(observed.resource.attributes['service.name'], 'checkout');
    assert.equal(observed.resource.attributes['process.pid'], 4242);
    assert.equal(observed.resource.attributes['deployment.environment.name'], 'prod');
    assert.equal(own.resource.attributes['service.name'], 'ht-test');
  });

  it("sets ERROR status and error.type from the record's error.type", async () => {
    const { spans } = await spansOf([
      exchange({ role: 'client', status: 404 }),
      exchange({ role: 'server', status: 404 }),
      exchange({ role: 'server', status: 503 }),
      exchange({ role: 'server' }),
      exchange({ role: 'client', status: 200, method: 'PURGE' }),
    ]);
    assert.deepEqual(
      spans.map((s) => [s.status.code, s.attributes['error.type'], s.name]),
      [
        [SpanStatusCode.ERROR, '404', 'GET'],
        [SpanStatusCode.UNSET, undefined, 'GET'],
        [SpanStatusCode.ERROR, '503', 'GET'],
        [SpanStatusCode.ERROR, 'connection_closed', 'GET'],
        [SpanStatusCode.UNSET, undefined, 'HTTP'],
      ],
    );
    const unanswered = spans[3];
    assert.deepEqual(unanswered.endTime, unanswered.startTime, 'no response: a zero-length span');
  });
});

describe('SpanPipeline: gRPC span names', () => {
  it('names a gRPC span {rpc.method}, or {rpc.system.name} when the method is _OTHER or unknown (RPC semantic conventions)', async () => {
    const call = (rpcMethod?: string): ExchangeRecord => ({ ...exchange({ role: 'client', status: 200, method: 'POST' }), rpcSystem: 'grpc', rpcMethod });
    const { spans } = await spansOf([call('demo.Greeter/SayHello'), call('_OTHER'), call(undefined)]);
    assert.deepEqual(
      spans.map((s) => s.name),
      ['demo.Greeter/SayHello', 'grpc', 'grpc'],
    );
  });

  it("takes a gRPC call's status from the record: ERROR with the code's name when the record has it", async () => {
    const call = (errorType?: string): ExchangeRecord => ({ ...exchange({ role: 'server', status: 200, method: 'POST' }), rpcSystem: 'grpc', rpcMethod: 'demo.Greeter/Lookup', errorType });
    const { spans } = await spansOf([call(undefined), call('UNAVAILABLE')]);
    assert.deepEqual(
      spans.map((s) => [s.status.code, s.attributes['error.type']]),
      [
        [SpanStatusCode.UNSET, undefined],
        [SpanStatusCode.ERROR, 'UNAVAILABLE'],
      ],
    );
  });
});

describe('SpanPipeline (real OTLP trace exporters to the embedded receiver, no root)', () => {
  for (const transport of ['grpc', 'http'] as const) {
    it(`delivers every span over ${transport === 'grpc' ? 'OTLP/gRPC' : 'OTLP/HTTP protobuf'} and counts them`, async () => {
      const sink = await startOtlpSink(transport);
      after(() => sink.stop());
      const protocol = transport === 'grpc' ? 'grpc' : 'http/protobuf';
      const target = resolveExportTarget({ endpoint: sink.endpoint, protocol }, {}, 'traces');
      const p = new SpanPipeline({ target, serviceName: 'ht-test', version: '9.9.9', log: silentLog });
      for (let i = 0; i < 3000; i++) p.withSpan(exchange({ role: i % 2 ? 'client' : 'server', status: 200 }));
      await p.shutdown();
      assert.deepEqual(p.counters, { emitted: 3000, exported: 3000, failed: 0 });
      assert.equal(p.summary(), 'spans exported 3000, failed 0, dropped 0');
      const spans = sink.spans();
      assert.equal(spans.length, 3000);
      assert.ok(sink.batches.every((b) => b.signal === 'traces' && b.records.length === 0));
      const s = spans[0];
      assert.equal(s.trace_id, CALLER.traceId);
      assert.equal(s.parent_span_id, CALLER.spanId);
      assert.equal(s.start_time, '2023-11-14T22:13:20.999999000Z');
      assert.equal(s.duration_ns, 2_500_000);
      assert.equal(s.resource['service.name'], 'ht-test');
      assert.deepEqual(s.scope, { name: 'headertap', version: '9.9.9' });
      assert.deepEqual(s.attributes['http.request.header.x-tenant'], ['acme']);
      assert.deepEqual(new Set(spans.map((x) => x.kind)), new Set(['CLIENT', 'SERVER']));
    });
  }

  it('counts spans lost when the collector is unreachable', async () => {
    const warnings: string[] = [];
    const p = new SpanPipeline({
      target: resolveExportTarget({ endpoint: 'http://127.0.0.1:9' }, {}, 'traces'),
      serviceName: 't',
      version: '0',
      log: { ...silentLog, warn: (m) => warnings.push(m) },
      batch: { exportTimeoutMillis: 3000 },
    });
    for (let i = 0; i < 7; i++) p.withSpan(exchange({ role: 'server', status: 200 }));
    await p.shutdown();
    assert.deepEqual(p.counters, { emitted: 7, exported: 0, failed: 7 });
    assert.match(warnings[0], /span export to http:\/\/127\.0\.0\.1:9 failed, 7 spans lost/);
  });
});
