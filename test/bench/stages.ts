/**
 * Where the user-space CPU goes, stage by stage, on a recording: each stage
 * runs the ones before it too, so the difference between two lines is one
 * stage's cost per record. Complements `node --cpu-prof` (docs/performance.md).
 *
 *   node dist/test/bench/stages.js FILE.htrec [REPEATS]
 *
 * Each stage runs REPEATS times (default 3), interleaved with the others, and
 * the least CPU is shown: on a shared machine, the run least disturbed.
 *
 * decode     frames to events (src/source)
 * http       + connection tracking, HTTP/1.x and HTTP/2 parsing (src/http)
 * map        + headertap's record: attributes, rules, trace context, resource (src/otel/attributes.ts)
 * encode     + OTLP protobuf encoding of each record, as the pipeline does it
 *              when a record is emitted, and of each request of 2048 records,
 *              as the exporter does it (src/otel/otlp-logs.ts)
 * The OTLP/gRPC send itself is the rest of the capacity benchmark's figure.
 */
import type { InstrumentationScope } from '@opentelemetry/core';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { ConnectionTracker, type HttpExchange } from '../../src/http';
import { OtlpLogsEncoder, type EncodedLogRecord } from '../../src/otel/otlp-logs';
import { readRecording, type SourceEvent } from '../../src/source';
import { eventsOf } from '../../src/source/recording';
import { defaultMapper } from './lib/mapping';

const STAGES = ['decode', 'http', 'map', 'encode'] as const;
type Stage = (typeof STAGES)[number];
const BATCH = 2048;

function runStage(stage: Stage, payload: Buffer): { records: number; cpuUs: number } {
  const upTo = STAGES.indexOf(stage);
  const encoder = new OtlpLogsEncoder();
  const agent = resourceFromAttributes({ 'service.name': 'bench' });
  const scope: InstrumentationScope = { name: 'headertap', version: '0' };
  let records = 0;
  let bytes = 0;
  let batch: EncodedLogRecord[] = [];
  const { clock, processes, mapper } = defaultMapper();
  const onExchange = (ex: HttpExchange) => {
    records++;
    if (upTo < STAGES.indexOf('map')) return;
    const rec = mapper.map(ex);
    if (upTo < STAGES.indexOf('encode')) return;
    batch.push(encoder.encodeRecord(rec, rec.resource ?? agent, scope));
    if (batch.length >= BATCH) {
      bytes += encoder.encodeRequest(batch).length;
      batch = [];
    }
  };
  const tracker = new ConnectionTracker({ maxHeaderBytes: 16384, onExchange });
  const cpu0 = process.cpuUsage();
  for (const ev of eventsOf(payload) as Iterable<SourceEvent>) {
    if (stage === 'decode') {
      records++;
      continue;
    }
    if (ev.kind === 'data') {
      processes.get(ev.pid, ev.comm);
      tracker.onData(ev);
    } else if (ev.kind === 'close') tracker.onClose(ev);
    else if (ev.kind === 'ready' || ev.kind === 'stats') clock.setOffset(ev.realtimeOffsetNs);
  }
  tracker.flush();
  if (batch.length) bytes += encoder.encodeRequest(batch).length;
  const cpu = process.cpuUsage(cpu0);
  void bytes;
  return { records, cpuUs: cpu.user + cpu.system };
}

function main(): void {
  const file = process.argv[2];
  const repeats = Number(process.argv[3] ?? 3);
  if (!file || !(repeats >= 1)) {
    process.stderr.write('usage: node dist/test/bench/stages.js FILE.htrec [REPEATS]\n');
    process.exit(2);
  }
  const payload = readRecording(file);
  const exchanges = runStage('encode', payload).records; // also warms up the JIT
  const best = new Map<Stage, number>();
  for (let i = 0; i < repeats; i++) {
    for (const stage of STAGES) best.set(stage, Math.min(best.get(stage) ?? Infinity, runStage(stage, payload).cpuUs));
  }
  let prev = 0;
  process.stdout.write(`${exchanges} records, least of ${repeats} runs\nstage       us/record  this stage\n`);
  for (const stage of STAGES) {
    const per = best.get(stage)! / exchanges;
    process.stdout.write(`${stage.padEnd(10)} ${per.toFixed(1).padStart(10)} ${(per - prev).toFixed(1).padStart(11)}\n`);
    prev = per;
  }
}

main();
