/**
 * The benchmark suite's plumbing, without root and without load: the plan
 * prints, the record counter agrees with the official serializer, the
 * capacity worker replays a real capture to a real receiver process, and the
 * anchor worker sends the same records through the SDK and through headertap.
 * (The measurements themselves are `npm run bench`, never part of the tests.)
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { SeverityNumber } from '@opentelemetry/api-logs';
import { ExportResultCode } from '@opentelemetry/core';
import { ProtobufLogsSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { InMemoryLogRecordExporter, LoggerProvider, SimpleLogRecordProcessor } from '@opentelemetry/sdk-logs';
import { PACKAGE_ROOT } from '../../src/common/paths';
import { countOtlpRecords } from '../bench/lib/otlp-count';
import { startSink, summaryFigures, BENCH_DIST } from '../bench/lib/setup';
import { summaryLine } from '../../src/cli/stats';
import { ConnectionTracker } from '../../src/http';
import { DeliveryProcessor } from '../../src/otel/delivery';
import { start } from '../bench/lib/procs';

const FIXTURE = path.join(PACKAGE_ROOT, 'test', 'fixtures', 'curl-nginx.htrec');

describe('benchmark suite (plumbing only)', () => {
  it('--dry-run prints the plan of every scenario and exits 0 without root', () => {
    const out = execFileSync(process.execPath, [path.join(BENCH_DIST, 'run.js'), '--dry-run', '--quick'], { encoding: 'utf8' });
    for (const id of ['syscall-cost', 'syscall-cost-writev27', 'nginx-saturation', 'node-saturation', 'nginx-5k', 'nginx-20k', 'node-5k']) assert.match(out, new RegExp(`^  ${id}: `, 'm'));
    assert.match(out, /--rps 500 /); // 20k/s over 40 connections
    assert.match(out, /refprobe: reference probe/);
  });

  it('counts the log records of an OTLP request across resources and scopes', () => {
    const memory = new InMemoryLogRecordExporter();
    const processors = [new SimpleLogRecordProcessor({ exporter: memory })];
    for (const svc of ['a', 'b']) {
      const provider = new LoggerProvider({ resource: resourceFromAttributes({ 'service.name': svc }), processors });
      for (const scope of ['s1', 's2']) {
        for (let i = 0; i < 3; i++) provider.getLogger(scope).emit({ body: `r${i}`, severityNumber: SeverityNumber.INFO, attributes: { 'http.request.header.x': ['1', '2'] } });
      }
    }
    const bytes = ProtobufLogsSerializer.serializeRequest(memory.getFinishedLogRecords())!;
    assert.equal(countOtlpRecords(Buffer.from(bytes)), 12);
    assert.equal(countOtlpRecords(Buffer.alloc(0)), 0);
  });

  it('the capacity worker replays a capture to a receiver process and reports what it exported', async () => {
    const sink = await startSink(undefined);
    try {
      const w = start(process.execPath, [path.join(BENCH_DIST, 'replay-worker.js'), FIXTURE, sink.endpoint]);
      await w.exited;
      const line = w.output().split('\n').find((l) => l.startsWith('{'));
      assert.ok(line, w.output());
      const r = JSON.parse(line) as { code: number; records: number; failed: number; cpuSeconds: number; wallSeconds: number };
      assert.equal(r.code, 0);
      assert.ok(r.records > 0 && r.failed === 0, line);
      assert.ok(r.cpuSeconds > 0 && r.wallSeconds > 0, line);
      const counts = await sink.stop();
      assert.equal(counts.logs, r.records);
    } finally {
      await sink.stop();
    }
  });

  it('the anchor worker emits and exports the recorded records through the SDK alone and through headertap', async () => {
    for (const mode of ['sdk', 'headertap', 'headertap-no-export']) {
      const sink = await startSink(undefined);
      try {
        const w = start(process.execPath, [path.join(BENCH_DIST, 'anchor.js'), FIXTURE, sink.endpoint, mode]);
        await w.exited;
        const line = w.output().split('\n').find((l) => l.startsWith('{'));
        assert.ok(line, w.output());
        const r = JSON.parse(line) as { mode: string; records: number; attributes: number; exported: number; cpuSeconds: number };
        assert.equal(r.mode, mode);
        assert.equal(r.records, 14, 'every exchange of the capture');
        assert.equal(r.exported, 14);
        assert.ok(r.attributes > 20 && r.cpuSeconds > 0, line);
        const counts = await sink.stop();
        assert.equal(counts.logs, mode === 'headertap-no-export' ? 0 : 14, `${mode}: what the receiver got`);
      } finally {
        await sink.stop();
      }
    }
  });

  it("reads lost and dropped counts from the agent's own exit summary line", async () => {
    const exporter = { export: (_r: unknown, done: (r: { code: ExportResultCode }) => void) => done({ code: ExportResultCode.SUCCESS }), shutdown: () => Promise.resolve() };
    const delivery = new DeliveryProcessor({ exporter, log: { info() {}, warn() {}, debug() {} }, destination: 'x' });
    delivery.counters.exported = 7;
    delivery.counters.dropped.buffer_full = 3;
    delivery.counters.dropped.rejected = 2;
    const kernel = { dataEvents: 40, closeEvents: 2, ringbufLost: 11, truncated: 0, copyFailed: 0, selfSkipped: 0, tlsNoSocket: 0, ciphertextSkipped: 0 };
    const line = `headertap stopped: ${summaryLine({ http: new ConnectionTracker({ maxHeaderBytes: 100, onExchange() {} }).counters, mapper: { limitedRecords: 0, droppedAttributes: 0 }, delivery, kernel, lostByCpu: [11], eventsIn: 42, loaderRestarts: 0 })}`;
    const f = summaryFigures(`headertap ready\n${line}\n`);
    assert.deepEqual({ dropped: f.dropped, events: f.events, lost: f.lost }, { dropped: 5, events: 42, lost: 11 }, line);
    await delivery.shutdown();
  });
});
