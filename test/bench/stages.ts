/**
 * Where the user-space CPU goes, stage by stage, on a recording: each stage
 * runs the ones before it too, so the difference between two lines is one
 * stage's cost per record. Complements `node --cpu-prof` (docs/performance.md).
 *
 *   node dist/test/bench/stages.js FILE.htrec
 *
 * decode     frames to events (src/source)
 * http       + connection tracking, HTTP/1.x and HTTP/2 parsing (src/http)
 * map        + log-record mapping: attributes, rules, trace context (src/otel/attributes)
 * sdk-emit   + OpenTelemetry SDK Logger.emit as the pipeline calls it (AttachAttributes), batched by 2048
 * serialize  + OTLP protobuf encoding of each record and batch (src/otel/otlp-logs.ts,
 *              as the delivery buffer and exporter do it; HT_STAGES_SDK_SERIALIZER=1
 *              for the SDK's serializer instead)
 * The OTLP/gRPC send itself is the rest of the capacity benchmark's figure.
 */
import { ProtobufLogsSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { LoggerProvider, type LogRecordProcessor, type SdkLogRecord } from '@opentelemetry/sdk-logs';
import { ConnectionTracker, type HttpExchange } from '../../src/http';
import { DEFAULT_CAPTURE_HEADERS, DEFAULT_REDACT_HEADERS, ExchangeMapper, HeaderRules } from '../../src/otel';
import { AttachAttributes } from '../../src/otel/attach-attributes';
import { OtlpLogsEncoder } from '../../src/otel/otlp-logs';
import { emitExchangeRecord } from '../../src/otel/pipeline';
import { MonotonicClock, eventsOf, readRecording, type SourceEvent } from '../../src/source';
import { ProcessInfoCache } from '../../src/workload';

const STAGES = ['decode', 'http', 'map', 'sdk-emit', 'serialize'] as const;
type Stage = (typeof STAGES)[number];
const BATCH = 2048;

/** Collects emitted records and hands each full batch on, as a batch processor would. */
class Batcher implements LogRecordProcessor {
  private _batch: SdkLogRecord[] = [];
  constructor(private readonly _flush: (batch: SdkLogRecord[]) => void) {}
  onEmit(r: SdkLogRecord): void {
    this._batch.push(r);
    if (this._batch.length >= BATCH) this.forceFlushSync();
  }
  forceFlushSync(): void {
    if (this._batch.length) this._flush(this._batch);
    this._batch = [];
  }
  forceFlush(): Promise<void> {
    this.forceFlushSync();
    return Promise.resolve();
  }
  shutdown(): Promise<void> {
    return this.forceFlush();
  }
}

function runStage(stage: Stage, payload: Buffer): { records: number; cpuUs: number } {
  const upTo = STAGES.indexOf(stage);
  // HT_STAGES_SDK_SERIALIZER=1 measures the SDK's own serializer instead, for comparison.
  const encoder = new OtlpLogsEncoder();
  const serialize = process.env.HT_STAGES_SDK_SERIALIZER === '1' ? (b: SdkLogRecord[]) => ProtobufLogsSerializer.serializeRequest(b)! : (b: SdkLogRecord[]) => encoder.encode(b);
  let records = 0;
  let bytes = 0;
  const batcher = new Batcher((batch) => {
    if (upTo >= STAGES.indexOf('serialize')) bytes += serialize(batch).length;
  });
  const attach = new AttachAttributes(2048);
  const provider = new LoggerProvider({
    resource: resourceFromAttributes({ 'service.name': 'bench' }),
    processors: [attach, batcher],
    logRecordLimits: { attributeCountLimit: 2048 },
  });
  const logger = provider.getLogger('headertap');
  const clock = new MonotonicClock();
  const processes = new ProcessInfoCache();
  const mapper = new ExchangeMapper({
    rules: new HeaderRules({ capture: DEFAULT_CAPTURE_HEADERS, redact: DEFAULT_REDACT_HEADERS }),
    toHrTime: (ns) => clock.toHrTime(ns),
    processInfo: (pid, comm) => processes.get(pid, comm),
  });
  const onExchange = (ex: HttpExchange) => {
    records++;
    if (upTo < STAGES.indexOf('map')) return;
    const rec = mapper.map(ex);
    if (upTo < STAGES.indexOf('sdk-emit')) return;
    emitExchangeRecord(logger, attach, rec);
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
  batcher.forceFlushSync();
  const cpu = process.cpuUsage(cpu0);
  void bytes;
  return { records, cpuUs: cpu.user + cpu.system };
}

function main(): void {
  const file = process.argv[2];
  if (!file) {
    process.stderr.write('usage: node dist/test/bench/stages.js FILE.htrec\n');
    process.exit(2);
  }
  const payload = readRecording(file);
  const exchanges = runStage('http', payload).records; // also warms up the JIT
  let prev = 0;
  process.stdout.write(`${exchanges} records\nstage       us/record  this stage\n`);
  for (const stage of STAGES) {
    const r = runStage(stage, payload);
    const per = r.cpuUs / exchanges;
    process.stdout.write(`${stage.padEnd(10)} ${per.toFixed(1).padStart(10)} ${(per - prev).toFixed(1).padStart(11)}\n`);
    prev = per;
  }
}

main();
