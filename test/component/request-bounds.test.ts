/**
 * Export requests a real collector accepts: bounded by bytes as well as
 * records, split when the collector still refuses one as too large, oversized
 * spool segments sent in bounded requests, and a slow collector that gets each
 * record a bounded number of times. Real exporters against real servers with
 * their default limits (a @grpc/grpc-js server refuses messages over 4 MiB),
 * and a node:http server answering 413. No root needed.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { gunzipSync } from 'node:zlib';
import { after, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { OTLPExporterError } from '@opentelemetry/otlp-exporter-base';
import { resourceFromAttributes } from '@opentelemetry/resources';
import type { Log } from '../../src/common/log';
import { silentLog } from '../helpers/log';
import { LogPipeline, resolveExportTarget, Spool } from '../../src/otel';
import type { OtlpProtocol } from '../../src/otel/endpoint';
import { OtlpLogsEncoder, type EncodedLogRecord } from '../../src/otel/otlp-logs';
import { classifyExportError } from '../../src/otel/retry';
import { encodeRetryInfoStatus } from '../helpers/retry-info';
import { encodeSegment } from '../../src/otel/spool';
import { decodeLogsRequest, EMPTY_RESPONSE } from '../../src/receiver/decode';
import { bytesExportService } from '../../src/receiver/server';
import { exchangeRecord, headerHeavyRecord } from '../helpers/records';

const FOUR_MIB = 4 << 20;
const FAST_BACKOFF = { initialMs: 20, maxMs: 100 };

function collectingLog(): Log & { warnings: string[] } {
  const warnings: string[] = [];
  return { ...silentLog, warn: (m) => warnings.push(m), warnings };
}

function pipeline(endpoint: string, delivery: ConstructorParameters<typeof LogPipeline>[0]['delivery'] = {}, log: Log = silentLog, protocol: OtlpProtocol = 'grpc') {
  return new LogPipeline({
    target: resolveExportTarget({ endpoint, protocol }, {}),
    serviceName: 'ht-bounds-test',
    version: '1.2.3',
    log,
    delivery: { backoff: FAST_BACKOFF, ...delivery },
  });
}

/** What a collector got: every request's size, and how often each record (by its number) arrived. */
interface Received {
  sizes: number[];
  copies: Map<number, number>;
}

function newReceived(): Received {
  return { sizes: [], copies: new Map() };
}

function take(into: Received, raw: Buffer): void {
  into.sizes.push(raw.length);
  for (const r of decodeLogsRequest(raw)) {
    const i = Number(/\/r(\d+) /.exec(String(r.body))![1]);
    into.copies.set(i, (into.copies.get(i) ?? 0) + 1);
  }
}

type Handler = (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => void;

/** A @grpc/grpc-js OTLP logs server with the library's default limits (4 MiB received at most). */
async function grpcLogsServer(handler: Handler): Promise<{ url: string }> {
  const server = new grpc.Server();
  server.addService(bytesExportService('/opentelemetry.proto.collector.logs.v1.LogsService/Export'), { Export: handler });
  const port = await new Promise<number>((resolve, reject) =>
    server.bindAsync('127.0.0.1:0', grpc.ServerCredentials.createInsecure(), (err, p) => (err ? reject(err) : resolve(p))),
  );
  after(() => server.forceShutdown());
  return { url: `http://127.0.0.1:${port}` };
}

/** A collector that stores and acknowledges every request it accepts. */
function storing(into: Received): Handler {
  return (call, callback) => {
    take(into, call.request);
    callback(null, EMPTY_RESPONSE);
  };
}

function range(n: number): number[] {
  return Array.from({ length: n }, (_, k) => k);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function assertEachOnce(got: Received, n: number): void {
  assert.deepEqual([...got.copies.keys()].sort((a, b) => a - b), range(n), `all ${n} records arrived`);
  assert.ok([...got.copies.values()].every((c) => c === 1), 'each exactly once');
}

describe('export requests bounded by bytes (real exporters, real servers with default limits)', () => {
  it('12 custom headers of 100 bytes: 2048-record batches would pass 4 MiB; requests stay within --max-request-bytes, all arrive', async () => {
    const got = newReceived();
    const server = await grpcLogsServer(storing(got));
    const log = collectingLog();
    const p = pipeline(server.url, {}, log);
    // The same batch cut by records alone: over the 4 MiB the server accepts.
    const encoder = new OtlpLogsEncoder();
    const unbounded = encoder.encodeRequest(range(2048).map((i) => encoder.encodeRecord(headerHeavyRecord(i), SPOOL_RESOURCE, SPOOL_SCOPE))).length;
    assert.ok(unbounded > FOUR_MIB, `a 2048-record batch is ${unbounded} bytes`);
    for (let i = 0; i < 6000; i++) p.emit(headerHeavyRecord(i));
    await p.shutdown(30_000);
    assertEachOnce(got, 6000);
    assert.ok(Math.max(...got.sizes) <= 2 << 20, `largest request ${Math.max(...got.sizes)} bytes`);
    assert.equal(p.counters.exported, 6000);
    assert.equal(p.counters.failedExports, 0, 'nothing was refused');
    assert.deepEqual(log.warnings, []);
  });

  it('--max-request-bytes above what the collector accepts: a refused batch is split, later ones are cut smaller, all arrive once', async () => {
    const got = newReceived();
    const server = await grpcLogsServer(storing(got));
    const log = collectingLog();
    const p = pipeline(server.url, { maxRequestBytes: 16 << 20 }, log);
    for (let i = 0; i < 6000; i++) p.emit(headerHeavyRecord(i));
    await p.shutdown(30_000);
    assertEachOnce(got, 6000);
    assert.ok(p.counters.splits >= 1, 'the first batch was split');
    assert.ok(p.counters.splits <= 2, `splits ${p.counters.splits}: later batches were cut to the size that passed`);
    assert.ok(Math.max(...got.sizes) <= FOUR_MIB);
    assert.equal(p.counters.dropped.too_large, 0);
    assert.equal(p.counters.exported, 6000);
    assert.match(log.warnings.join('\n'), /refused a request of \d+ bytes as too large \(.*RESOURCE_EXHAUSTED: Received message that decompresses to a size larger than 4194304\); sending requests of at most \d+ bytes from now on/);
  });

  it('a single record larger than the collector accepts is dropped as too_large, never retried; the rest keep flowing', async () => {
    const got = newReceived();
    let calls = 0;
    const server = await grpcLogsServer((call, callback) => {
      calls++;
      take(got, call.request);
      callback(null, EMPTY_RESPONSE);
    });
    const p = pipeline(server.url, { maxRequestBytes: 16 << 20 });
    for (let i = 0; i < 100; i++) {
      const rec = exchangeRecord(i);
      if (i === 50) rec.attributes.push('http.request.header.x-huge', ['h'.repeat(5 << 20)]);
      p.emit(rec);
    }
    await p.shutdown(20_000);
    assert.deepEqual([...got.copies.keys()].sort((a, b) => a - b), range(100).filter((i) => i !== 50));
    assert.equal(p.counters.dropped.too_large, 1);
    assert.equal(p.counters.exported, 99);
    assert.ok(calls < 20, `${calls} requests: halving, not retrying`);
    assert.equal(p.delivery.pending, 0);
  });

  it('a single record larger than --max-request-bytes is dropped before sending, and counted', async () => {
    const got = newReceived();
    const server = await grpcLogsServer(storing(got));
    const log = collectingLog();
    const p = pipeline(server.url, { maxRequestBytes: 64 << 10 }, log);
    for (let i = 0; i < 20; i++) {
      const rec = exchangeRecord(i);
      if (i % 10 === 3) rec.attributes.push('http.request.header.x-huge', ['h'.repeat(100 << 10)]);
      p.emit(rec);
    }
    await p.shutdown(20_000);
    assert.deepEqual([...got.copies.keys()].sort((a, b) => a - b), range(20).filter((i) => i % 10 !== 3));
    assert.equal(p.counters.dropped.too_large, 2);
    assert.equal(p.counters.failedExports, 0, 'never sent');
    assert.match(log.warnings[0], /dropped 1 record of \d+ bytes: it alone is larger than --max-request-bytes \(65536\)/);
  });

  it('OTLP/HTTP 413 Payload Too Large: split and resent', async () => {
    const got = newReceived();
    let refusals = 0;
    const server = createServer((req, res) => {
      const chunks: Buffer[] = [];
      req.on('data', (c: Buffer) => chunks.push(c));
      req.on('end', () => {
        let body = Buffer.concat(chunks);
        if (req.headers['content-encoding'] === 'gzip') body = gunzipSync(body);
        if (body.length > 1 << 20) {
          refusals++;
          res.writeHead(413).end('too large');
          return;
        }
        take(got, body);
        res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end(EMPTY_RESPONSE);
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    after(() => server.close());
    const p = pipeline(`http://127.0.0.1:${(server.address() as AddressInfo).port}`, {}, silentLog, 'http/protobuf');
    for (let i = 0; i < 3000; i++) p.emit(headerHeavyRecord(i));
    await p.shutdown(30_000);
    assertEachOnce(got, 3000);
    assert.ok(refusals >= 1 && refusals <= 2, `${refusals} refusals`);
    assert.ok(Math.max(...got.sizes) <= 1 << 20);
  });
});

/** The SDK-shaped record LogPipeline would make, enough for the encoder. */

const SPOOL_RESOURCE = resourceFromAttributes({ 'service.name': 'ht-old-spool' });
const SPOOL_SCOPE = { name: 'headertap', version: '0.0.1' };

/** A spool segment as the version before --max-request-bytes wrote it at shutdown: the whole buffer in one file. */
function writeOldSegment(dir: string, seq: number, n: number): number {
  const encoder = new OtlpLogsEncoder();
  const records: EncodedLogRecord[] = range(n).map((i) => encoder.encodeRecord(headerHeavyRecord(i), SPOOL_RESOURCE, SPOOL_SCOPE));
  const data = encodeSegment(records);
  writeFileSync(path.join(dir, `seg-${String(seq).padStart(16, '0')}-${n}.otlp`), data);
  return data.length;
}

describe('spool segments obey the same bound', () => {
  it('a 16 MB segment of an earlier version drains in bounded requests, each record once, and the file goes', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ht-spool-'));
    const bytes = writeOldSegment(dir, 1, 9000);
    assert.ok(bytes > 16e6, `segment of ${bytes} bytes`);
    const got = newReceived();
    const server = await grpcLogsServer(storing(got));
    const p = pipeline(server.url, { spool: new Spool(dir, 1 << 30) });
    await p.shutdown(30_000);
    assertEachOnce(got, 9000);
    assert.ok(Math.max(...got.sizes) <= 2 << 20, `largest request ${Math.max(...got.sizes)} bytes`);
    assert.ok(got.sizes.length >= 8, `${got.sizes.length} requests`);
    assert.equal(p.counters.exported, 9000);
    assert.deepEqual(readdirSync(dir), []);
  });

  it('interrupted half way, the segment remembers what was delivered: the next run sends only the rest', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ht-spool-'));
    writeOldSegment(dir, 7, 6000);
    const got = newReceived();
    let accepted = 0;
    const first = await grpcLogsServer((call, callback) => {
      if (accepted >= 2) return callback({ code: grpc.status.UNAVAILABLE, details: 'going down' });
      accepted++;
      take(got, call.request);
      callback(null, EMPTY_RESPONSE);
    });
    const p1 = pipeline(first.url, { spool: new Spool(dir, 1 << 30) });
    for (let t = 0; t < 100 && accepted < 2; t++) await sleep(50);
    await sleep(200);
    await p1.shutdown(100);
    const delivered = p1.counters.exported;
    assert.ok(delivered > 0 && delivered < 6000, `${delivered} delivered before the collector went away`);
    const [name] = readdirSync(dir);
    assert.equal(name, `seg-${'7'.padStart(16, '0')}-6000-${delivered}.otlp`, 'progress is in the name');
    assert.equal(new Spool(dir, 1 << 30).stats.records, 6000 - delivered);

    const second = await grpcLogsServer(storing(got));
    const p2 = pipeline(second.url, { spool: new Spool(dir, 1 << 30) });
    await p2.shutdown(30_000);
    assertEachOnce(got, 6000);
    assert.equal(p2.counters.exported, 6000 - delivered);
    assert.deepEqual(readdirSync(dir), []);
  });

  it('a full buffer spills to disk in request-sized segments', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ht-spool-'));
    const p = pipeline('http://127.0.0.1:1', { maxRecords: 5000, spool: new Spool(dir, 1 << 30) });
    for (let i = 0; i < 4000; i++) p.emit(headerHeavyRecord(i));
    await p.shutdown(100);
    const spool = new Spool(dir, 1 << 30);
    assert.equal(spool.stats.records, 4000);
    assert.ok(spool.stats.segments >= 3, `${spool.stats.segments} segments`);
    for (let seg = spool.peek(); seg; seg = spool.peek()) {
      const encoder = new OtlpLogsEncoder();
      assert.ok(encoder.encodeRequest(seg.records).length <= 2 << 20);
      spool.consume(seg.id, seg.records.length);
    }
  });
});

describe('a collector slower than the export timeout', () => {
  it('never answering: each record is sent a bounded number of times, then counted unconfirmed, not dropped', async () => {
    const got = newReceived();
    const server = await grpcLogsServer((call) => take(got, call.request)); // stores, never answers
    const log = collectingLog();
    const p = pipeline(server.url, { exportTimeoutMs: 150, maxTimeoutRetries: 2 }, log);
    for (let i = 0; i < 16; i++) p.emit(exchangeRecord(i));
    await p.delivery.forceFlush();
    assert.deepEqual([...got.copies.values()], Array(16).fill(3), 'each record sent 3 times: once and 2 retries');
    assert.equal(p.counters.unconfirmed, 16);
    assert.equal(p.counters.retriedAfterTimeout, 2);
    assert.equal(DROPPED(p), 0, 'not called dropped');
    assert.equal(p.delivery.pending, 0);
    assert.match(log.warnings.join('\n'), /did not answer 3 exports of the same 16 records in time .*; giving them up as unconfirmed/);
    await p.shutdown(100);
  });

  it('answering after 1.5 timeouts: the retry waits longer, and so do later requests: 2 copies of the first batch, 1 of the rest', async () => {
    const got = newReceived();
    const server = await grpcLogsServer((call, callback) => {
      take(got, call.request);
      setTimeout(() => callback(null, EMPTY_RESPONSE), 300);
    });
    const p = pipeline(server.url, { exportTimeoutMs: 200, maxBatch: 10 });
    for (let i = 0; i < 10; i++) p.emit(exchangeRecord(i));
    await p.delivery.forceFlush();
    for (let i = 10; i < 40; i++) p.emit(exchangeRecord(i));
    await p.shutdown(20_000);
    assert.deepEqual(range(40).map((i) => got.copies.get(i)), [...Array(10).fill(2), ...Array(30).fill(1)]);
    assert.equal(p.counters.exported, 40);
    assert.equal(p.counters.retriedAfterTimeout, 1);
    assert.equal(p.counters.unconfirmed, 0);
  });

  it('shutdown while an export is unanswered: unconfirmed, not dropped', async () => {
    const server = await grpcLogsServer(() => {}); // never answers
    const p = pipeline(server.url, { exportTimeoutMs: 60_000 });
    for (let i = 0; i < 5; i++) p.emit(exchangeRecord(i));
    await sleep(400);
    await p.shutdown(200);
    assert.equal(p.counters.unconfirmed, 5);
    assert.equal(DROPPED(p), 0);
  });
});

function DROPPED(p: LogPipeline): number {
  return Object.values(p.counters.dropped).reduce((a, b) => a + b, 0);
}

describe('which failures mean "too large" and "maybe received"', () => {
  const grpcError = (code: number, details: string, metadata = new grpc.Metadata()) =>
    Object.assign(new Error(`${code} ${grpc.status[code]}: ${details}`), { code, details, metadata });

  it('RESOURCE_EXHAUSTED without RetryInfo and HTTP 413 are too large (not retried as they are); with RetryInfo it is throttling', () => {
    assert.deepEqual(classifyExportError(grpcError(8, 'Received message larger than max (6284570 vs. 4194304)')), {
      retryable: false,
      kind: 'RESOURCE_EXHAUSTED',
      tooLarge: true,
    });
    assert.equal(classifyExportError(new OTLPExporterError('Payload Too Large', 413)).tooLarge, true);
    const md = new grpc.Metadata();
    md.set('grpc-status-details-bin', encodeRetryInfoStatus(8, 'slow down', 1000));
    assert.deepEqual(classifyExportError(grpcError(8, 'slow down', md)), { retryable: true, kind: 'RESOURCE_EXHAUSTED', serverDelayMs: 1000 });
  });

  it('a deadline on a call that reached a connection may have been received; one still waiting for a connection was not', () => {
    assert.equal(classifyExportError(grpcError(4, 'Deadline exceeded after 0.301s,LB pick: 0.001s,remote_addr=127.0.0.1:4317')).timedOut, true);
    const unsent = classifyExportError(grpcError(4, 'Deadline exceeded after 10.002s,Waiting for LB pick'));
    assert.equal(unsent.retryable, true);
    assert.equal(unsent.timedOut, undefined);
    assert.equal(classifyExportError(new Error('Request timed out')).timedOut, true);
    assert.equal(classifyExportError(new Error('no answer from the exporter in time')).timedOut, true);
    assert.equal(classifyExportError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })).timedOut, undefined);
  });
});
