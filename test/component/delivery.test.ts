/**
 * Delivery against real collectors that go away, come back, refuse and
 * stall: the real OTLP exporters, the embedded receiver on a fixed port
 * (stopped and started again), and a @grpc/grpc-js server that answers
 * UNAVAILABLE. No root needed.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import type { Log } from '../../src/common/log';
import { silentLog } from '../helpers/log';
import { LogPipeline, resolveExportTarget, Spool } from '../../src/otel';
import type { OtlpProtocol } from '../../src/otel/endpoint';
import { OtlpLogsEncoder, type EncodedLogRecord } from '../../src/otel/otlp-logs';
import { decodeSegment, encodeSegment } from '../../src/otel/spool';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { encodeRetryInfoStatus } from '../helpers/retry-info';
import { decodeLogsRequest, EMPTY_RESPONSE } from '../../src/receiver/decode';
import { bytesExportService } from '../../src/receiver/server';
import { freePort } from '../helpers/integration';
import { exchangeRecord as record } from '../helpers/records';
import { startOtlpSink, type OtlpSink } from '../helpers/otlp-sink';

/** Which records arrived: indexes from the bodies, with how often each came. */
function arrived(sink: { records(): { body?: unknown }[] }): Map<number, number> {
  const seen = new Map<number, number>();
  for (const r of sink.records()) {
    const i = Number(/\/r(\d+) /.exec(String(r.body))![1]);
    seen.set(i, (seen.get(i) ?? 0) + 1);
  }
  return seen;
}

function range(from: number, to: number): number[] {
  return Array.from({ length: to - from }, (_, k) => from + k);
}

function collectingLog(): Log & { warnings: string[] } {
  const warnings: string[] = [];
  return { ...silentLog, warn: (m) => warnings.push(m), warnings };
}

const FAST_BACKOFF = { initialMs: 100, maxMs: 400 };

function pipeline(endpoint: string, protocol: OtlpProtocol, extra: Partial<ConstructorParameters<typeof LogPipeline>[0]> = {}) {
  return new LogPipeline({
    target: resolveExportTarget({ endpoint, protocol }, {}),
    serviceName: 'ht-delivery-test',
    version: '1.2.3',
    log: silentLog,
    ...extra,
    delivery: { backoff: FAST_BACKOFF, ...extra.delivery },
  });
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

describe('delivery: collector down, restarted, refusing, slow (real exporters, real receivers)', () => {
  for (const [transport, protocol] of [
    ['grpc', 'grpc'],
    ['http', 'http/protobuf'],
  ] as const) {
    it(`${protocol}: collector down at start, up 2 s later: every record arrives`, async () => {
      const port = await freePort();
      const endpoint = `http://127.0.0.1:${port}`;
      // The HTTP exporter retries by itself first, within its timeout: keep that short so ours must take over.
      const p = pipeline(endpoint, protocol, protocol === 'grpc' ? {} : { delivery: { exportTimeoutMs: 700 } });
      for (let i = 0; i < 500; i++) p.emit(record(i));
      await sleep(2000);
      assert.equal(p.counters.exported, 0, 'nothing can arrive yet');
      assert.ok(p.counters.retries >= 1, 'the first attempts failed and were retried');
      const sink = await startOtlpSink(transport, '127.0.0.1', port);
      after(() => sink.stop());
      await p.shutdown(20_000);
      const seen = arrived(sink);
      assert.deepEqual([...seen.keys()].sort((a, b) => a - b), range(0, 500), 'every record arrived');
      assert.equal(p.counters.exported, 500);
      assert.equal(p.delivery.pending, 0);
      const r = sink.records()[0];
      assert.equal(r.resource['service.name'], 'ht-delivery-test');
      if (protocol === 'grpc') {
        // After UNAVAILABLE the exporter was replaced by one with its own connection: grpc-js would
        // otherwise wait out its reconnect backoff (measured: 48 s after a 90 s outage; 2.3 s renewed).
        assert.match(sink.batches[0].metadata['user-agent'], /^headertap\/1\.2\.3 channel\/\d+ OTel-OTLP-Exporter-JavaScript\//);
      }
    });
  }

  it('OTLP/gRPC: collector restarted mid-stream: no record lost within the buffer', async () => {
    const port = await freePort();
    let sink: OtlpSink = await startOtlpSink('grpc', '127.0.0.1', port);
    const sinks = [sink];
    after(() => Promise.all(sinks.map((s) => s.stop())));
    const p = pipeline(`http://127.0.0.1:${port}`, 'grpc', { delivery: { batchDelayMs: 20 } });
    let i = 0;
    const emitFor = async (ms: number) => {
      const end = Date.now() + ms;
      while (Date.now() < end) {
        for (let k = 0; k < 50; k++) p.emit(record(i++));
        await sleep(20);
      }
    };
    await emitFor(600);
    await sink.stop(); // the collector goes away while records keep coming
    await emitFor(1500);
    sink = await startOtlpSink('grpc', '127.0.0.1', port);
    sinks.push(sink);
    await emitFor(600);
    await p.shutdown(20_000);
    const seen = new Map<number, number>();
    for (const s of sinks) for (const [k, n] of arrived(s)) seen.set(k, (seen.get(k) ?? 0) + n);
    const missing = range(0, i).filter((k) => !seen.has(k));
    assert.deepEqual(missing, [], `all ${i} records arrived`);
    assert.equal(p.counters.dropped.buffer_full, 0);
    assert.ok(p.counters.retries >= 1, 'exports failed while it was down');
  });

  it('buffer overflow: the oldest are dropped, and the drop counter equals the shortfall', async () => {
    const port = await freePort();
    const p = pipeline(`http://127.0.0.1:${port}`, 'grpc', { delivery: { maxRecords: 100 } });
    for (let i = 0; i < 250; i++) p.emit(record(i));
    assert.equal(p.delivery.bufferedRecords, 100, 'the buffer holds its bound');
    await sleep(500);
    const sink = await startOtlpSink('grpc', '127.0.0.1', port);
    after(() => sink.stop());
    await p.shutdown(20_000);
    const seen = arrived(sink);
    assert.equal(p.counters.dropped.buffer_full, 150);
    assert.equal(seen.size, 100);
    assert.equal(250 - seen.size, p.counters.dropped.buffer_full, 'dropped = emitted - delivered');
    assert.deepEqual([...seen.keys()].sort((a, b) => a - b), range(150, 250), 'the newest were kept');
  });

  it('the byte bound holds too', async () => {
    const port = await freePort();
    const p = pipeline(`http://127.0.0.1:${port}`, 'grpc', { delivery: { maxBytes: 20_000 } });
    for (let i = 0; i < 1000; i++) p.emit(record(i));
    assert.ok(p.delivery.bufferedBytes <= 20_000, `${p.delivery.bufferedBytes} bytes buffered`);
    const kept = p.delivery.bufferedRecords;
    assert.equal(p.counters.dropped.buffer_full, 1000 - kept);
    await p.shutdown(100);
    // Records of an export attempt still under way at the deadline count as
    // unconfirmed (the delivery cannot tell whether they left); on a loaded
    // machine the refused connection may not have failed within 100 ms yet.
    assert.equal(p.counters.dropped.shutdown + p.counters.unconfirmed, kept, JSON.stringify(p.counters));
    assert.equal(p.delivery.pending, 0, 'every record is exported or counted');
  });

  it('a collector answering UNAVAILABLE with RetryInfo: retried after the delay it asked for, then delivered', async () => {
    let calls = 0;
    const received: number[] = [];
    const server = await grpcLogsServer((call, callback) => {
      calls++;
      if (calls <= 3) {
        const md = new grpc.Metadata();
        md.set('grpc-status-details-bin', encodeRetryInfoStatus(grpc.status.UNAVAILABLE, 'busy', 1500));
        callback({ code: grpc.status.UNAVAILABLE, details: 'busy', metadata: md });
        return;
      }
      received.push(decodeLogsRequest(call.request).length);
      callback(null, EMPTY_RESPONSE);
    });
    after(() => server.forceShutdown());
    const log = collectingLog();
    const p = pipeline(`http://127.0.0.1:${server.port}`, 'grpc', { log, delivery: { backoff: { initialMs: 10, maxMs: 20 } } });
    for (let i = 0; i < 30; i++) p.emit(record(i));
    await p.shutdown(20_000);
    assert.equal(calls, 4);
    assert.deepEqual(received, [30]);
    assert.equal(p.counters.retries, 3);
    assert.equal(p.counters.exported, 30);
    assert.match(log.warnings[0], /failed \(UNAVAILABLE\): .*busy; retrying 30 records in 1\.5 s/, 'the server-provided delay, not the 10 ms backoff');
  });

  it('a collector slower than the export timeout: DEADLINE_EXCEEDED, retried, then delivered', async () => {
    let calls = 0;
    const server = await grpcLogsServer((_call, callback) => {
      calls++;
      if (calls === 1) setTimeout(() => callback(null, EMPTY_RESPONSE), 1500);
      else callback(null, EMPTY_RESPONSE);
    });
    after(() => server.forceShutdown());
    const log = collectingLog();
    const url = `http://127.0.0.1:${server.port}`;
    const p = pipeline(url, 'grpc', { log, delivery: { exportTimeoutMs: 300 } });
    for (let i = 0; i < 10; i++) p.emit(record(i));
    await p.shutdown(20_000);
    assert.equal(calls, 2);
    assert.equal(p.counters.retries, 1);
    assert.equal(p.counters.retriedAfterTimeout, 1);
    assert.equal(p.counters.exported, 10);
    assert.match(log.warnings[0], /failed \(DEADLINE_EXCEEDED\).*with a 0\.6 s timeout \(it may arrive twice\)/);
  });

  it('a non-retryable refusal (INVALID_ARGUMENT) is counted as rejected, not retried', async () => {
    let calls = 0;
    const server = await grpcLogsServer((_call, callback) => {
      calls++;
      callback({ code: grpc.status.INVALID_ARGUMENT, details: 'no thanks' });
    });
    after(() => server.forceShutdown());
    const log = collectingLog();
    const p = pipeline(`http://127.0.0.1:${server.port}`, 'grpc', { log });
    for (let i = 0; i < 7; i++) p.emit(record(i));
    await p.shutdown(20_000);
    assert.equal(calls, 1);
    assert.equal(p.counters.retries, 0);
    assert.equal(p.counters.dropped.rejected, 7);
    assert.match(log.warnings[0], /rejected 7 records \(gRPC status 3\), not retrying: .*no thanks/);
  });
});

describe('delivery: the on-disk spool', () => {
  it('overflow and the records pending at shutdown survive a restart, and nothing is sent twice', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ht-spool-'));
    const port = await freePort();
    const endpoint = `http://127.0.0.1:${port}`;
    // Run 1: the collector is down the whole time.
    const first = pipeline(endpoint, 'grpc', { delivery: { maxRecords: 100, maxBatch: 50, spool: new Spool(dir, 1 << 30) } });
    for (let i = 0; i < 400; i++) first.emit(record(i));
    assert.ok(first.delivery.bufferedRecords <= 100);
    await sleep(300);
    await first.shutdown(300);
    assert.equal(first.counters.exported, 0);
    assert.equal(first.counters.dropped.buffer_full + first.counters.dropped.shutdown, 0, 'nothing dropped: all on disk');
    const spooled = new Spool(dir, 1 << 30).stats.records;
    assert.equal(spooled, 400);

    // Run 2: the collector is back.
    const sink = await startOtlpSink('grpc', '127.0.0.1', port);
    after(() => sink.stop());
    const second = pipeline(endpoint, 'grpc', { delivery: { spool: new Spool(dir, 1 << 30) } });
    await sink.waitFor((rs) => rs.length >= 400, 15_000, 'the spooled records');
    await sleep(300); // anything sent twice would arrive now
    await second.shutdown(10_000);
    const seen = arrived(sink);
    assert.deepEqual([...seen.keys()].sort((a, b) => a - b), range(0, 400), 'every spooled record arrived');
    assert.ok([...seen.values()].every((n) => n === 1), 'each exactly once');
    assert.equal(second.counters.exported, 400);
    assert.deepEqual(readdirSync(dir), [], 'delivered segments are deleted');
    const r = sink.records().find((x) => x.body === 'GET /r42 -> 200')!;
    assert.deepEqual(r.attributes['http.request.header.x-i'], ['42'], 'attributes survive the disk');
    assert.equal(r.attributes['http.response.status_code'], 200);
    assert.equal(r.trace_id, 'a'.repeat(32));
    assert.equal(r.resource['service.name'], 'ht-delivery-test');

    // Run 3: a clean restart sends nothing again.
    const before = sink.records().length;
    const third = pipeline(endpoint, 'grpc', { delivery: { spool: new Spool(dir, 1 << 30) } });
    await third.shutdown(2000);
    assert.equal(sink.records().length, before);
    assert.equal(third.counters.exported, 0);
  });

  it('segments keep each record under its own resource and scope (records of many workloads share the buffer)', () => {
    const a = resourceFromAttributes({ 'service.name': 'nginx', 'process.pid': 10 });
    const b = resourceFromAttributes({ 'service.name': 'curl', 'process.pid': 11 });
    const scope = { name: 'headertap', version: '1' };
    const rec = (i: number, resource: typeof a): EncodedLogRecord =>
      encoder.encodeRecord(
        {
          timestamp: [1, i],
          observedTimestamp: [2, i],
          severityNumber: 9,
          severityText: 'INFO',
          body: `b${i}`,
          eventName: 'headertap.http.exchange',
          attributes: ['url.path', `/p${i}`, 'http.request.header.x', ['1', '2'], 'n', i],
          droppedAttributesCount: 0,
          spanContext: { traceId: 'c'.repeat(32), spanId: 'd'.repeat(16), traceFlags: 1 },
        },
        resource,
        scope, // one object per pipeline
      );
    const encoder = new OtlpLogsEncoder();
    const records = [rec(0, a), rec(1, b), rec(2, a)];
    const back = decodeSegment(encodeSegment(records));
    assert.deepEqual(back.map((r) => r.resource.attributes['service.name']), ['nginx', 'curl', 'nginx']);
    assert.equal(back[0].resource, back[2].resource, 'one Resource object per resource, so an export groups them');
    assert.notEqual(back[0].resource, back[1].resource);
    assert.equal(back[0].scope, back[1].scope);
    // Sent from the spool, the request is the one the records would have made directly.
    assert.ok(encoder.encodeRequest(back).equals(encoder.encodeRequest(records)));
    const sent = decodeLogsRequest(encoder.encodeRequest(back)); // grouped by resource: nginx's two, then curl's
    assert.deepEqual(sent.map((r) => r.body), ['b0', 'b2', 'b1']);
    assert.deepEqual(sent[2].attributes, { 'url.path': '/p1', 'http.request.header.x': ['1', '2'], n: 1 });
    assert.deepEqual([sent[2].trace_id, sent[2].scope?.name, sent[2].resource['service.name']], ['c'.repeat(32), 'headertap', 'curl']);
  });

  it('a spool file of the earlier JSON format, or a cut one, is counted as unreadable, never sent or skipped silently', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ht-spool-'));
    writeFileSync(path.join(dir, `seg-${'1'.padStart(16, '0')}-5.jsonl`), '{"v":1,"resources":[],"scopes":[]}\n');
    const encoder = new OtlpLogsEncoder();
    const rec = () => encoder.encodeRecord({ timestamp: [1, 0], observedTimestamp: [1, 0], attributes: ['a', 'b'], droppedAttributesCount: 0 }, resourceFromAttributes({}), { name: 'h' });
    const whole = encodeSegment([rec(), rec()]);
    writeFileSync(path.join(dir, `seg-${'2'.padStart(16, '0')}-2.otlp`), whole.subarray(0, whole.length - 3));
    writeFileSync(path.join(dir, `seg-${'3'.padStart(16, '0')}-2.otlp`), whole);
    const spool = new Spool(dir, 1 << 20);
    assert.equal(spool.stats.records, 9);
    const seg = spool.peek()!;
    assert.equal(seg.records.length, 2, 'the intact segment is read');
    assert.equal(spool.corrupt, 7, 'the JSON one (5) and the cut one (2)');
    assert.deepEqual(readdirSync(dir).sort(), [`seg-${'3'.padStart(16, '0')}-2.otlp`]);
  });

  it('a full spool deletes its oldest records and counts them', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ht-spool-'));
    const port = await freePort();
    const spool = new Spool(dir, 40_000);
    const p = pipeline(`http://127.0.0.1:${port}`, 'grpc', { delivery: { maxRecords: 50, maxBatch: 50, spool } });
    for (let i = 0; i < 1000; i++) p.emit(record(i));
    await p.shutdown(200);
    const c = p.counters;
    assert.ok(c.dropped.spool_full > 0, 'the bound was hit');
    assert.ok(spool.stats.bytes <= 40_000, `${spool.stats.bytes} bytes on disk`);
    assert.equal(c.dropped.spool_full + spool.stats.records, 1000, 'dropped + kept on disk = emitted');
  });
});

type Handler = (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => void;

/** A bare OTLP logs gRPC service whose answers the test decides. */
async function grpcLogsServer(handler: Handler): Promise<grpc.Server & { port: number }> {
  const server = new grpc.Server();
  server.addService(bytesExportService('/opentelemetry.proto.collector.logs.v1.LogsService/Export'), { Export: handler });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  return Object.assign(server, { port });
}
