import assert from 'node:assert/strict';
import * as http from 'node:http';
import * as http2 from 'node:http2';
import type { AddressInfo } from 'node:net';
import { after, describe, it } from 'node:test';
import { silentLog } from '../helpers/log';
import { LogPipeline, resolveExportTarget } from '../../src/otel';
import { startOtlpSink } from '../helpers/otlp-sink';
import { exchangeRecord as record } from '../helpers/records';

describe('LogPipeline (real OTLP exporters to a real receiver, no root)', () => {
  for (const transport of ['grpc', 'http'] as const) {
    it(`delivers every record over ${transport === 'grpc' ? 'OTLP/gRPC' : 'OTLP/HTTP protobuf'} and counts them`, async () => {
      const sink = await startOtlpSink(transport);
      after(() => sink.stop());
      const target = resolveExportTarget({ endpoint: sink.endpoint, protocol: transport === 'grpc' ? 'grpc' : 'http/protobuf' }, {});
      const lines: string[] = [];
      const p = new LogPipeline({ target, serviceName: 'ht-test', version: '9.9.9', log: silentLog, console: (l) => lines.push(l) });
      for (let i = 0; i < 5000; i++) p.emit(record(i));
      await p.shutdown();
      const got = sink.records();
      assert.equal(got.length, 5000);
      assert.equal(p.counters.accepted, 5000);
      assert.equal(p.counters.exported, 5000);
      assert.equal(p.counters.failedExports, 0);
      assert.equal(p.delivery.pending, 0);
      const r = got.find((x) => x.body === 'GET /r42 -> 200')!;
      assert.equal(r.event_name, 'headertap.http.exchange');
      assert.equal(r.trace_id, 'a'.repeat(32));
      assert.equal(r.resource['service.name'], 'ht-test');
      assert.equal(r.resource['service.version'], '9.9.9');
      assert.deepEqual(r.attributes['http.request.header.x-i'], ['42']);
      assert.equal(lines.length, 5000, '--console printed every record');
      assert.deepEqual(JSON.parse(lines[42]).attributes, r.attributes, 'console JSON equals what the collector got');
    });
  }

  it('retries while the collector is unreachable and counts what shutdown could not deliver', async () => {
    const target = resolveExportTarget({ endpoint: 'http://127.0.0.1:9' }, {}); // discard port: nothing listens
    const warnings: string[] = [];
    const p = new LogPipeline({
      target,
      serviceName: 't',
      version: '0',
      log: { ...silentLog, warn: (m) => warnings.push(m) },
      delivery: { backoff: { initialMs: 50, maxMs: 200 } },
    });
    for (let i = 0; i < 10; i++) p.emit(record(i));
    await new Promise((r) => setTimeout(r, 1500));
    await p.shutdown(500);
    assert.equal(p.counters.exported, 0);
    assert.ok(p.counters.retries >= 2, `retried (${p.counters.retries})`);
    assert.equal(p.counters.dropped.shutdown, 10);
    assert.equal(p.delivery.pending, 0);
    assert.match(warnings[0], /export to http:\/\/127\.0\.0\.1:9 failed \(UNAVAILABLE\): .*; retrying 10 records in/);
    assert.ok(warnings.some((w) => /10 records not delivered to http:\/\/127\.0\.0\.1:9 before the shutdown timeout/.test(w)));
  });

  for (const transport of ['grpc', 'http'] as const) {
    it(`gzips ${transport === 'grpc' ? 'OTLP/gRPC' : 'OTLP/HTTP'} requests by default, sends them plain with compression none`, async () => {
      const seen = await wireEncodings(transport, async (endpoint) => {
        for (const compression of [undefined, 'none'] as const) {
          const flags = { endpoint, protocol: transport === 'grpc' ? 'grpc' : 'http/protobuf', ...(compression ? { compression } : {}) };
          const p = new LogPipeline({ target: resolveExportTarget(flags, {}), serviceName: 't', version: '0', log: silentLog });
          for (let i = 0; i < 50; i++) p.emit(record(i));
          await p.shutdown(5000);
          assert.equal(p.counters.exported, 50);
        }
      });
      assert.deepEqual(seen, ['gzip', 'identity']);
    });
  }
});

/**
 * A bare OTLP endpoint that answers every export with success and notes how
 * each request body came: 'gzip' or 'identity' (for gRPC, from the message's
 * compressed flag and grpc-encoding; for HTTP, from Content-Encoding).
 */
async function wireEncodings(transport: 'grpc' | 'http', run: (endpoint: string) => Promise<void>): Promise<string[]> {
  const seen: string[] = [];
  const server =
    transport === 'grpc'
      ? http2.createServer((req, res) => {
          const chunks: Buffer[] = [];
          req.on('data', (c: Buffer) => chunks.push(c));
          req.on('end', () => {
            const body = Buffer.concat(chunks);
            seen.push(body[0] === 1 && req.headers['grpc-encoding'] === 'gzip' ? 'gzip' : body[0] === 0 ? 'identity' : 'bad');
            res.writeHead(200, { 'content-type': 'application/grpc' });
            res.addTrailers({ 'grpc-status': '0' });
            res.end(Buffer.from([0, 0, 0, 0, 0])); // an empty, uncompressed ExportLogsServiceResponse
          });
        })
      : http.createServer((req, res) => {
          req.resume();
          req.on('end', () => {
            seen.push(req.headers['content-encoding'] === 'gzip' ? 'gzip' : 'identity');
            res.writeHead(200, { 'content-type': 'application/x-protobuf' });
            res.end();
          });
        });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  try {
    await run(`http://127.0.0.1:${(server.address() as AddressInfo).port}`);
  } finally {
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }
  return seen;
}
