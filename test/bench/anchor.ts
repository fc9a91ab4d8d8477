/**
 * The capacity benchmark's anchor: what emitting and exporting a ready-made
 * record costs with the OpenTelemetry JS SDK alone, next to what it costs
 * with headertap's pipeline, measured the same way on the same records.
 *
 *   node dist/test/bench/anchor.js FILE.htrec ENDPOINT sdk|headertap|headertap-no-export
 *
 * The records are the recording's exchanges, mapped by headertap beforehand
 * (not measured): each one's attributes, body, times, trace context and
 * workload resource. The first POOL of them are emitted over and over, as
 * many records as the recording has: a pool, so that the records waiting to
 * be emitted do not fill the heap (the collector would spend its time
 * marking them, which neither an application nor the agent does). Then,
 * measured:
 *
 * sdk        one LoggerProvider per resource (as an application has one),
 *            Logger.emit() of each record, BatchLogRecordProcessor
 *            (batches of 2048 every 200 ms, the queue large enough to drop
 *            nothing) and the SDK's OTLP/gRPC log exporter with gzip
 * headertap  LogPipeline.emit() of each record: encoding, the delivery
 *            buffer, OTLP/gRPC with gzip (src/otel/pipeline.ts)
 * headertap-no-export
 *            the same up to the exporter, which sends nothing: what
 *            encoding and the buffer cost without gzip and gRPC
 *
 * Both are paced alike: at most 16384 records emitted and not yet exported,
 * as the capacity replay paces itself. CPU is the process's (every thread:
 * gzip runs on libuv's pool) from the first emit until the last export is
 * answered. Prints one JSON line: {mode, records, attributes, cpuSeconds,
 * wallSeconds, exported}.
 */
import { ROOT_CONTEXT, trace } from '@opentelemetry/api';
import type { Logger } from '@opentelemetry/api-logs';
import { ExportResultCode } from '@opentelemetry/core';
import { OTLPLogExporter } from '@opentelemetry/exporter-logs-otlp-grpc';
import { CompressionAlgorithm } from '@opentelemetry/otlp-exporter-base';
import type { Resource } from '@opentelemetry/resources';
import { BatchLogRecordProcessor, LoggerProvider, type LogRecordExporter, type ReadableLogRecord } from '@opentelemetry/sdk-logs';
import { silentLog } from '../helpers/log';
import { ConnectionTracker } from '../../src/http';
import { LogPipeline, resolveExportTarget } from '../../src/otel';
import { attributesObject, type ExchangeRecord } from '../../src/otel/record';
import type { EncodedLogExporter } from '../../src/otel/otlp-logs';
import { readRecording } from '../../src/source';
import { eventsOf } from '../../src/source/recording';
import { defaultMapper } from './lib/mapping';

const MODES = ['sdk', 'headertap', 'headertap-no-export'];

/** Records emitted and not yet exported at most (the capacity replay's bound). */
const MAX_PENDING = 16384;
/** Records emitted between two checks of the bound. */
const CHUNK = 512;
/** Distinct ready-made records, emitted in turn. */
const POOL = 4096;

function records(file: string): ExchangeRecord[] {
  const out: ExchangeRecord[] = [];
  const { clock, mapper } = defaultMapper();
  const tracker = new ConnectionTracker({ maxHeaderBytes: 16384, onExchange: (ex) => out.push(mapper.map(ex)) });
  for (const ev of eventsOf(readRecording(file))) {
    if (ev.kind === 'data') tracker.onData(ev);
    else if (ev.kind === 'close') tracker.onClose(ev);
    else if (ev.kind === 'ready' || ev.kind === 'stats') clock.setOffset(ev.realtimeOffsetNs);
  }
  tracker.flush();
  return out;
}

interface Emitter {
  emit(i: number): void;
  exported(): number;
  finish(): Promise<void>;
}

/** The SDK alone: the records as an application would emit them, its batch processor and OTLP/gRPC exporter. */
function sdkEmitter(recs: ExchangeRecord[], endpoint: string): Emitter {
  let exported = 0;
  const inner = new OTLPLogExporter({ url: endpoint, compression: CompressionAlgorithm.GZIP });
  const exporter: LogRecordExporter = {
    export(logs: ReadableLogRecord[], done) {
      inner.export(logs, (result) => {
        if (result.code === ExportResultCode.SUCCESS) exported += logs.length;
        done(result);
      });
    },
    shutdown: () => inner.shutdown(),
    forceFlush: () => inner.forceFlush(),
  };
  const processor = new BatchLogRecordProcessor({ exporter, maxQueueSize: MAX_PENDING * 2, maxExportBatchSize: 2048, scheduledDelayMillis: 200 });
  const providers: LoggerProvider[] = [];
  const loggers = new Map<Resource, Logger>();
  // Ready-made: the application holds its attributes as an object, as the SDK's API takes them.
  const attributes = recs.map((r) => attributesObject(r.attributes));
  const contexts = recs.map((r) => (r.spanContext ? trace.setSpanContext(ROOT_CONTEXT, r.spanContext) : undefined));
  for (const r of recs) {
    if (loggers.has(r.resource!)) continue;
    const provider = new LoggerProvider({ resource: r.resource, processors: [processor], logRecordLimits: { attributeCountLimit: 2048 } });
    providers.push(provider);
    loggers.set(r.resource!, provider.getLogger('headertap', '0.1.0'));
  }
  return {
    emit(i) {
      const r = recs[i];
      const ctx = contexts[i];
      loggers.get(r.resource!)!.emit({
        eventName: r.eventName,
        timestamp: r.timestamp,
        severityNumber: r.severityNumber,
        severityText: r.severityText,
        body: r.body,
        attributes: attributes[i],
        ...(ctx ? { context: ctx } : {}),
      });
    },
    exported: () => exported,
    finish: async () => {
      await processor.forceFlush();
      await Promise.all(providers.map((p) => p.shutdown()));
    },
  };
}

/** An exporter that sends nothing and says it did, on the next turn of the event loop. */
const NO_EXPORT: EncodedLogExporter = {
  export: (_records, done) => setImmediate(() => done({ code: ExportResultCode.SUCCESS })),
  shutdown: () => Promise.resolve(),
};

/** headertap's pipeline from the mapped record on: encoding, delivery buffer, OTLP/gRPC exporter (or none). */
function headertapEmitter(recs: ExchangeRecord[], endpoint: string, send: boolean): Emitter {
  const pipeline = new LogPipeline({
    target: resolveExportTarget({ endpoint }, {}),
    serviceName: 'headertap',
    version: '0.1.0',
    log: silentLog,
    ...(send ? {} : { exporter: NO_EXPORT }),
  });
  return {
    emit: (i) => pipeline.emit(recs[i]),
    exported: () => pipeline.counters.exported,
    finish: () => pipeline.shutdown(60_000),
  };
}

async function main(): Promise<void> {
  const [file, endpoint, mode] = process.argv.slice(2);
  if (!file || !endpoint || !MODES.includes(mode)) {
    process.stderr.write(`usage: node dist/test/bench/anchor.js FILE.htrec ENDPOINT ${MODES.join('|')}\n`);
    process.exit(2);
  }
  const all = records(file);
  const total = all.length;
  const recs = all.slice(0, POOL);
  all.length = 0;
  const attributes = recs.reduce((n, r) => n + r.attributes.length / 2, 0) / recs.length;
  const emitter = mode === 'sdk' ? sdkEmitter(recs, endpoint) : headertapEmitter(recs, endpoint, mode === 'headertap');
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  for (let i = 0; i < total; ) {
    const end = Math.min(total, i + CHUNK);
    for (; i < end; i++) emitter.emit(i % recs.length);
    while (i - emitter.exported() > MAX_PENDING) await new Promise((r) => setTimeout(r, 1));
    await new Promise((r) => setImmediate(r));
  }
  await emitter.finish();
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  const out = { mode, records: total, attributes: Math.round(attributes * 10) / 10, cpuSeconds: (cpu.user + cpu.system) / 1e6, wallSeconds: wall, exported: emitter.exported() };
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(0);
}

void main();
