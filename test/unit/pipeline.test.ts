import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { silentLog } from '../../src/common/log';
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
});
