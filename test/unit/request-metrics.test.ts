import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { AggregationTemporality, DataPointType, MeterProvider, MetricReader, type HistogramMetricData, type PushMetricExporter, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { ProtobufMetricsSerializer } from '@opentelemetry/otlp-transformer';
import type { HttpExchange, HttpRequestHead, HttpResponseHead } from '../../src/http';
import { DEFAULT_CAPTURE_HEADERS, DEFAULT_REDACT_HEADERS, ExchangeMapper, HeaderRules } from '../../src/otel';
import { MetricHeaders } from '../../src/otel/metric-headers';
import { DURATION_BUCKETS_S, RequestMetrics } from '../../src/otel/request-metrics';
import { Routes } from '../../src/otel/routes';
import type { ExportTarget } from '../../src/otel/endpoint';
import type { Log } from '../../src/common/log';
import { resolveRunOptions } from '../../src/cli/options';
import { metricsSettings } from '../../src/cli/run';

const quiet: Log = { info: () => {}, warn: () => {}, debug: () => {} };
const target = { url: 'http://127.0.0.1:1', protocol: 'grpc' } as unknown as ExportTarget;

/** An exporter that keeps what it is given. */
function memoryExporter(): PushMetricExporter & { got: ResourceMetrics[] } {
  const got: ResourceMetrics[] = [];
  return {
    got,
    export(m: ResourceMetrics, done: (r: ExportResult) => void) {
      got.push(m);
      done({ code: ExportResultCode.SUCCESS });
    },
    forceFlush: () => Promise.resolve(),
    shutdown: () => Promise.resolve(),
  };
}

interface Ex {
  role?: 'client' | 'server';
  method?: string;
  target?: string;
  status?: number;
  ms?: number;
  headers?: string[];
  version?: '1.1' | '2';
  resHeaders?: string[];
  noResponse?: boolean;
  pid?: number;
}

function exchange(e: Ex): HttpExchange {
  const start = 1_000_000;
  const req: HttpRequestHead = {
    kind: 'request',
    method: e.method ?? 'GET',
    target: e.target ?? '/api/items/1',
    version: e.version ?? '1.1',
    headers: ['host', 'shop.test:8080', ...(e.headers ?? [])],
    headBytes: 80,
    startNs: start,
    endNs: start + 100,
  };
  const res: HttpResponseHead = {
    kind: 'response',
    status: e.status ?? 200,
    reason: '',
    version: e.version ?? '1.1',
    headers: e.resHeaders ?? [],
    headBytes: 40,
    startNs: start + (e.ms ?? 1) * 1e6 - 100,
    endNs: start + (e.ms ?? 1) * 1e6,
  };
  return {
    role: e.role ?? 'server',
    connection: { pid: e.pid ?? 10, comm: 'node', networkType: 'ipv4', local: { address: '127.0.0.1', port: 8080 }, remote: { address: '127.0.0.1', port: 40000 }, tls: false },
    request: req,
    ...(e.noResponse ? { unanswered: 'connection_closed' } : { response: res }),
  } as HttpExchange;
}

function setup(opts: { limit?: number; headers?: string[]; delta?: boolean; rules?: ConstructorParameters<typeof HeaderRules>[0] } = {}) {
  const exporter = memoryExporter();
  const metrics = new RequestMetrics({
    target,
    version: 't',
    log: quiet,
    intervalMs: 3_600_000,
    exporter,
    ...(opts.limit ? { cardinalityLimit: opts.limit } : {}),
    ...(opts.delta ? { temporality: 'delta' as const } : {}),
  });
  const mapper = new ExchangeMapper({
    rules: new HeaderRules(opts.rules ?? { capture: DEFAULT_CAPTURE_HEADERS, redact: DEFAULT_REDACT_HEADERS }),
    toHrTime: (ns) => [0, ns],
    processInfo: (pid) => ({ pid, executableName: 'node', serviceName: pid === 10 ? 'shop' : `svc-${pid}` }),
    workloads: { hostName: 'h' },
    routes: new Routes({ rules: [] }),
    metricHeaders: new MetricHeaders(opts.headers ?? []),
  });
  return {
    exporter,
    metrics,
    mapper,
    feed: (e: Ex) => metrics.record(mapper.map(exchange(e))),
    /** Histogram points of one metric in the last export (one per workload). */
    points(name: string, from = exporter.got) {
      return from.flatMap((rm) =>
        rm.scopeMetrics
          .flatMap((s) => s.metrics)
          .filter((m) => m.descriptor.name === name)
          .flatMap((m) => {
            assert.equal(m.dataPointType, DataPointType.HISTOGRAM);
            return (m as HistogramMetricData).dataPoints.map((p) => ({ ...p, resource: rm.resource.attributes, temporality: m.aggregationTemporality, unit: m.descriptor.unit }));
          }),
      );
    },
  };
}

describe('RequestMetrics: RED histograms from records', () => {
  it('records http.server.request.duration in seconds with semconv buckets and attributes', async () => {
    const t = setup();
    t.feed({ ms: 3 });
    t.feed({ ms: 30, target: '/api/items/2' });
    t.feed({ ms: 300, target: '/api/items/3?x=1' });
    t.feed({ ms: 40, status: 503, target: '/api/items/4' });
    await t.metrics.collect();
    const points = t.points('http.server.request.duration');
    assert.equal(points.length, 2);
    const ok = points.find((p) => p.attributes['http.response.status_code'] === 200)!;
    assert.deepEqual(ok.attributes, {
      'http.request.method': 'GET',
      'http.response.status_code': 200,
      'http.route': '/api/items/{id}',
      'url.scheme': 'http',
      'network.protocol.version': '1.1',
    });
    assert.equal(ok.unit, 's');
    assert.equal(ok.temporality, AggregationTemporality.CUMULATIVE);
    assert.equal(ok.resource['service.name'], 'shop');
    assert.deepEqual(ok.value.buckets.boundaries, DURATION_BUCKETS_S);
    assert.equal(ok.value.count, 3);
    // 3 ms in (0, 5ms], 30 ms in (25, 50ms], 300 ms in (250, 500ms]
    const counts = ok.value.buckets.counts;
    assert.equal(counts[0], 1);
    assert.equal(counts[DURATION_BUCKETS_S.indexOf(0.05)], 1);
    assert.equal(counts[DURATION_BUCKETS_S.indexOf(0.5)], 1);
    assert.ok(Math.abs(ok.value.sum! - 0.333) < 1e-6, String(ok.value.sum));
    const failed = points.find((p) => p.attributes['http.response.status_code'] === 503)!;
    assert.equal(failed.attributes['error.type'], '503');
    assert.equal(failed.value.count, 1);
  });

  it('records http.client.request.duration with server.address, server.port and url.template; 4xx is a client error', async () => {
    const t = setup();
    t.feed({ role: 'client', status: 404, target: '/users/123456' });
    await t.metrics.collect();
    const [p] = t.points('http.client.request.duration');
    assert.deepEqual(p.attributes, {
      'http.request.method': 'GET',
      'http.response.status_code': 404,
      'url.template': '/users/{id}',
      'url.scheme': 'http',
      'network.protocol.version': '1.1',
      'error.type': '404',
      'server.address': 'shop.test',
      'server.port': 8080,
    });
    assert.equal(t.points('http.server.request.duration').length, 0);
  });

  it('records gRPC calls as rpc.*.call.duration with the fully qualified method and status name', async () => {
    const t = setup();
    const grpc = { version: '2' as const, method: 'POST', target: '/shop.v1.Cart/AddItem', headers: ['content-type', 'application/grpc'] };
    t.feed({ ...grpc, resHeaders: ['content-type', 'application/grpc', 'grpc-status', '0'] });
    t.feed({ ...grpc, resHeaders: ['content-type', 'application/grpc', 'grpc-status', '13'] });
    t.feed({ ...grpc, role: 'client', resHeaders: ['content-type', 'application/grpc', 'grpc-status', '5'] });
    await t.metrics.collect();
    const server = t.points('rpc.server.call.duration');
    assert.deepEqual(
      server.map((p) => p.attributes).sort((a, b) => String(a['rpc.status_code']).localeCompare(String(b['rpc.status_code']))),
      [
        { 'rpc.system.name': 'grpc', 'rpc.method': 'shop.v1.Cart/AddItem', 'rpc.status_code': 'INTERNAL', 'error.type': 'INTERNAL' },
        { 'rpc.system.name': 'grpc', 'rpc.method': 'shop.v1.Cart/AddItem', 'rpc.status_code': 'OK' },
      ],
    );
    const [client] = t.points('rpc.client.call.duration');
    assert.equal(client.attributes['error.type'], 'NOT_FOUND');
    assert.equal(client.attributes['server.address'], 'shop.test');
    assert.equal(t.points('http.server.request.duration').length, 0, 'a gRPC call is counted once, as RPC');
  });

  it('puts each workload under its own resource and skips exchanges without a response (counted)', async () => {
    const t = setup();
    t.feed({ pid: 10 });
    t.feed({ pid: 11 });
    t.feed({ pid: 11, noResponse: true });
    await t.metrics.collect();
    const services = t.points('http.server.request.duration').map((p) => p.resource['service.name']).sort();
    assert.deepEqual(services, ['shop', 'svc-11']);
    assert.equal(t.metrics.counters.unanswered, 1);
    assert.equal(t.metrics.counters.recorded, 2);
  });

  it('with delta temporality exports each interval on its own', async () => {
    const t = setup({ delta: true });
    t.feed({});
    t.feed({});
    await t.metrics.collect();
    t.feed({});
    await t.metrics.collect();
    const [first, second] = t.exporter.got.map((rm) => t.points('http.server.request.duration', [rm])[0]);
    assert.equal(first.temporality, AggregationTemporality.DELTA);
    assert.deepEqual([first.value.count, second.value.count], [2, 1]);
  });
});

describe('--metric-headers and the cardinality limit', () => {
  it('adds the chosen request headers as attributes, after redaction and hashing', async () => {
    const t = setup({
      headers: ['x-tenant', 'authorization', 'x-user', 'x-missing'],
      rules: { capture: ['host'], redact: DEFAULT_REDACT_HEADERS, hash: ['x-user'], hashKey: Buffer.alloc(32, 7) },
    });
    t.feed({ headers: ['x-tenant', 'acme', 'authorization', 'Bearer s3cr3t-t0ken', 'x-user', 'alice'] });
    await t.metrics.collect();
    const [p] = t.points('http.server.request.duration');
    assert.equal(p.attributes['http.request.header.x-tenant'], 'acme', 'not captured in the record, still a dimension');
    assert.equal(p.attributes['http.request.header.authorization'], '[REDACTED]');
    assert.match(String(p.attributes['http.request.header.x-user']), /^sha256:[0-9a-f]{16}$/);
    assert.equal('http.request.header.x-missing' in p.attributes, false);
    assert.doesNotMatch(JSON.stringify(t.exporter.got.map((rm) => rm.scopeMetrics)), /s3cr3t|alice/);
  });

  it('sends new combinations past the limit to one otel.metric.overflow series, and counts them', async () => {
    const t = setup({ headers: ['x-tenant'], limit: 5 });
    for (let i = 0; i < 20; i++) t.feed({ headers: ['x-tenant', `tenant-${i}`] });
    for (let i = 0; i < 3; i++) t.feed({ headers: ['x-tenant', 'tenant-0'] }); // admitted already: still its own series
    await t.metrics.collect();
    const points = t.points('http.server.request.duration');
    assert.equal(points.length, 5);
    const overflow = points.filter((p) => p.attributes['otel.metric.overflow'] === true);
    assert.equal(overflow.length, 1);
    assert.deepEqual(overflow[0].attributes, { 'otel.metric.overflow': true });
    assert.equal(overflow[0].value.count, 16);
    assert.equal(points.find((p) => p.attributes['http.request.header.x-tenant'] === 'tenant-0')!.value.count, 4);
    assert.equal(t.metrics.counters.overflowed, 16);
    // Cumulative: the admitted series stay the same in the next interval, whatever comes.
    for (let i = 20; i < 40; i++) t.feed({ headers: ['x-tenant', `tenant-${i}`] });
    await t.metrics.collect();
    assert.equal(t.points('http.server.request.duration', [t.exporter.got.at(-1)!]).length, 5);
    assert.equal(t.metrics.counters.overflowed, 36);
  });

  it('follows a change of --metric-headers between two records, in the records and in the series', async () => {
    const headers = new MetricHeaders(['x-a']);
    const mapper = new ExchangeMapper({
      rules: new HeaderRules({ capture: DEFAULT_CAPTURE_HEADERS, redact: DEFAULT_REDACT_HEADERS }),
      toHrTime: (ns) => [0, ns],
      processInfo: (pid) => ({ pid, executableName: 'node' }),
      workloads: { hostName: 'h' },
      metricHeaders: headers,
    });
    const one = mapper.map(exchange({ headers: ['x-a', '1', 'x-b', '2'] }));
    headers.names = ['x-b'];
    const two = mapper.map(exchange({ headers: ['x-a', '1', 'x-b', '2'] }));
    assert.deepEqual(one.metricHeaders, { names: ['x-a'], values: ['1'] });
    assert.deepEqual(two.metricHeaders, { names: ['x-b'], values: ['2'] });

    // The same value under another header after the change is another series, not the old one's.
    headers.names = ['x-a'];
    const exporter = memoryExporter();
    const metrics = new RequestMetrics({ target, version: 't', log: quiet, intervalMs: 3_600_000, exporter });
    metrics.record(mapper.map(exchange({ headers: ['x-a', 'same', 'x-b', 'same'] })));
    headers.names = ['x-b'];
    metrics.record(mapper.map(exchange({ headers: ['x-a', 'same', 'x-b', 'same'] })));
    await metrics.collect();
    await metrics.shutdown();
    const dims = exporter.got[0].scopeMetrics
      .flatMap((sm) => sm.metrics)
      .flatMap((m) => (m as HistogramMetricData).dataPoints)
      .map((p) => Object.keys(p.attributes).filter((k) => k.startsWith('http.request.header.')));
    assert.deepEqual(dims.sort(), [['http.request.header.x-a'], ['http.request.header.x-b']]);
  });
});

describe('metrics settings from flags and the OpenTelemetry environment', () => {
  const opts = (over: Record<string, unknown> = {}) => ({ ...resolveRunOptions({}), ...over });
  const warnings: string[] = [];
  const log: Log = { info: () => {}, warn: (m: string) => void warnings.push(m), debug: () => {} };

  it('defaults to cumulative every 60 s; the environment, then the flags decide', () => {
    assert.deepEqual(metricsSettings(opts(), {}, log), { temporality: 'cumulative', intervalMs: 60_000, counterTemporality: 'cumulative' });
    assert.deepEqual(metricsSettings(opts(), { OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: 'Delta', OTEL_METRIC_EXPORT_INTERVAL: '5000' }, log), {
      temporality: 'delta',
      intervalMs: 5000,
      counterTemporality: 'delta',
    });
    // lowmemory: synchronous counters and histograms delta, asynchronous counters (headertap's own) cumulative.
    assert.deepEqual(metricsSettings(opts(), { OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: 'lowmemory' }, log), {
      temporality: 'delta',
      intervalMs: 60_000,
      counterTemporality: 'cumulative',
    });
    assert.equal(metricsSettings(opts({ metricsTemporality: 'delta' }), {}, log).counterTemporality, 'delta', 'the flag decides both');
    assert.deepEqual(
      metricsSettings(opts({ metricsTemporality: 'cumulative', metricsInterval: 2.5 }), { OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: 'delta', OTEL_METRIC_EXPORT_INTERVAL: '5000' }, log),
      { temporality: 'cumulative', intervalMs: 2500, counterTemporality: 'cumulative' },
    );
    assert.deepEqual(warnings, []);
  });

  it('ignores a bad variable with a warning naming it', () => {
    assert.deepEqual(metricsSettings(opts(), { OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE: 'weekly', OTEL_METRIC_EXPORT_INTERVAL: 'soon' }, log), {
      temporality: 'cumulative',
      intervalMs: 60_000,
      counterTemporality: 'cumulative',
    });
    assert.match(warnings.join('\n'), /OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE 'weekly'/);
    assert.match(warnings.join('\n'), /OTEL_METRIC_EXPORT_INTERVAL 'soon'/);
  });
});

/** A reader of the SDK's own pipeline, collected on demand. */
class PullReader extends MetricReader {
  protected onForceFlush(): Promise<void> {
    return Promise.resolve();
  }
  protected onShutdown(): Promise<void> {
    return Promise.resolve();
  }
}

describe('RequestMetrics: the same aggregation as the SDK', () => {
  it("gives, for the same measurements, the data points, descriptors and OTLP bytes of the SDK's own Histogram", async () => {
    // headertap aggregates itself (the SDK hashes attributes on every
    // record() call); this holds its output to the SDK's for the same input.
    const t = setup();
    const reader = new PullReader();
    const provider = new MeterProvider({ resource: resourceFromAttributes({}), readers: [reader] });
    const meter = provider.getMeter('headertap', 't');
    const histograms = new Map<string, ReturnType<typeof meter.createHistogram>>();
    const feeds: Ex[] = [];
    for (let i = 0; i < 200; i++) {
      const status = [200, 200, 404, 503, 201][i % 5];
      feeds.push({ ms: 0.3 + ((i * 37) % 1200) * 1.7, status, target: `/api/items/${i % 7}`, role: i % 3 ? 'server' : 'client', method: i % 4 ? 'GET' : 'POST' });
    }
    // Exactly on bucket boundaries: semconv buckets are (lower, upper].
    for (const ms of [5, 10, 250, 1000]) feeds.push({ ms, target: '/api/items/1' });
    feeds.push({ version: '2', method: 'POST', target: '/shop.v1.Cart/AddItem', headers: ['content-type', 'application/grpc'], resHeaders: ['content-type', 'application/grpc', 'grpc-status', '13'], ms: 12 });
    const countOf = (points: ReturnType<typeof t.points>) => new Map(points.map((p) => [JSON.stringify(p.attributes), p.value.count]));
    for (const f of feeds) {
      // The series a record went to: the one whose count grew (cumulative).
      await t.metrics.collect();
      const before = new Map(METRICS.map((m) => [m, countOf(t.points(m))]));
      t.exporter.got.length = 0;
      const rec = t.mapper.map(exchange(f));
      t.metrics.record(rec);
      await t.metrics.collect();
      let found = 0;
      for (const m of METRICS) {
        for (const p of t.points(m)) {
          const key = JSON.stringify(p.attributes);
          if (p.value.count === (before.get(m)!.get(key) ?? 0) + 1) {
            let h = histograms.get(m);
            if (!h) {
              h = meter.createHistogram(m, { unit: 's', description: descriptionOf(t.exporter.got, m), advice: { explicitBucketBoundaries: DURATION_BUCKETS_S } });
              histograms.set(m, h);
            }
            h.record(rec.durationNs! / 1e9, p.attributes);
            found++;
          }
        }
      }
      assert.equal(found, 1, `one series took ${JSON.stringify(f)}`);
      t.exporter.got.length = 0;
    }
    await t.metrics.collect();
    const ours = t.exporter.got.at(-1)!;
    const { resourceMetrics: theirs } = await reader.collect();
    const norm = (rm: ResourceMetrics) =>
      rm.scopeMetrics.map((s) => ({
        scope: { name: s.scope.name, version: s.scope.version },
        metrics: s.metrics
          .map((m) => ({
            descriptor: { name: m.descriptor.name, unit: m.descriptor.unit, description: m.descriptor.description, valueType: m.descriptor.valueType },
            temporality: m.aggregationTemporality,
            type: m.dataPointType,
            points: (m as HistogramMetricData).dataPoints.map((p) => ({ attributes: p.attributes, value: p.value })).sort((a, b) => JSON.stringify(a.attributes).localeCompare(JSON.stringify(b.attributes))),
          }))
          .sort((a, b) => a.descriptor.name.localeCompare(b.descriptor.name)),
      }));
    assert.deepEqual(norm(ours), norm(theirs));
    // Same bytes on the wire once the resource and the times are the same.
    const fixTimes = (rm: ResourceMetrics): ResourceMetrics => ({
      resource: theirs.resource,
      scopeMetrics: norm(rm).map((s) => ({
        scope: s.scope,
        metrics: s.metrics.map((m) => ({
          descriptor: m.descriptor,
          aggregationTemporality: m.temporality,
          dataPointType: DataPointType.HISTOGRAM,
          dataPoints: m.points.map((p) => ({ ...p, startTime: [1, 0], endTime: [2, 0] })),
        })) as HistogramMetricData[],
      })),
    });
    assert.deepEqual(Buffer.from(ProtobufMetricsSerializer.serializeRequest(fixTimes(ours))!), Buffer.from(ProtobufMetricsSerializer.serializeRequest(fixTimes(theirs))!));
    await provider.shutdown();
  });
});

const METRICS = ['http.server.request.duration', 'http.client.request.duration', 'rpc.server.call.duration', 'rpc.client.call.duration'];

function descriptionOf(got: ResourceMetrics[], name: string): string {
  for (const rm of got) for (const s of rm.scopeMetrics) for (const m of s.metrics) if (m.descriptor.name === name) return m.descriptor.description;
  throw new Error(`no ${name}`);
}
