import { hostname } from 'node:os';
import { ROOT_CONTEXT, trace } from '@opentelemetry/api';
import type { Logger } from '@opentelemetry/api-logs';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { OTLPLogExporter as GrpcLogExporter } from '@opentelemetry/exporter-logs-otlp-grpc';
import { OTLPLogExporter as ProtoLogExporter } from '@opentelemetry/exporter-logs-otlp-proto';
import { defaultResource, resourceFromAttributes } from '@opentelemetry/resources';
import {
  BatchLogRecordProcessor,
  LoggerProvider,
  type LogRecordExporter,
  type LogRecordProcessor,
  type ReadableLogRecord,
  type SdkLogRecord,
} from '@opentelemetry/sdk-logs';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import { formatTime, toJsonLine, type FlatRecord, type FlatValue } from '../common/flat-record';
import { RateLimitedWarning, type Log } from '../common/log';
import type { ExchangeRecord } from './attributes';
import type { ExportTarget } from './endpoint';
import { WorkloadLoggers, type WorkloadOptions } from './workloads';

/** Batching sized for high rates: the SDK defaults (2048/512) drop most records under load. */
export const BATCH_DEFAULTS = {
  maxQueueSize: 65536,
  maxExportBatchSize: 2048,
  scheduledDelayMillis: 200,
  exportTimeoutMillis: 15000,
};

/** Attributes per record; the SDK's default (128) would cut header-heavy requests. */
const ATTRIBUTE_COUNT_LIMIT = 2048;

export interface PipelineCounters {
  /** Records handed to the SDK. */
  emitted: number;
  /** Records the collector accepted. */
  exported: number;
  /** Records in exports that failed (collector down, rejected, timed out). */
  failed: number;
  /** Export calls that failed. */
  failedExports: number;
}

export interface PipelineOptions {
  target: ExportTarget;
  serviceName: string;
  version: string;
  log: Log;
  /** Also write each record as one JSON line here (--console). */
  console?: (line: string) => void;
  /** Replaces the OTLP exporter (tests, benchmarks). */
  exporter?: LogRecordExporter;
  batch?: Partial<typeof BATCH_DEFAULTS>;
  /** Per-workload resources (records with a workload go under their process's resource). */
  workloads?: WorkloadOptions;
}

/** Counts what the exporter delivered and what it lost, and says so. */
class CountingExporter implements LogRecordExporter {
  private readonly _warning: RateLimitedWarning;

  constructor(
    private readonly _inner: LogRecordExporter,
    private readonly _counters: PipelineCounters,
    private readonly _destination: string,
    log: Log,
  ) {
    this._warning = new RateLimitedWarning(log, 10_000);
  }

  export(records: ReadableLogRecord[], done: (result: ExportResult) => void): void {
    this._inner.export(records, (result) => {
      if (result.code === ExportResultCode.SUCCESS) {
        this._counters.exported += records.length;
      } else {
        this._counters.failed += records.length;
        this._counters.failedExports++;
        const cause = result.error?.message?.split('\n')[0] ?? 'unknown error';
        this._warning.warn(`export to ${this._destination} failed, ${records.length} records lost: ${cause}`);
      }
      done(result);
    });
  }

  shutdown(): Promise<void> {
    return this._inner.shutdown();
  }

  forceFlush(): Promise<void> {
    return this._inner.forceFlush?.() ?? Promise.resolve();
  }
}

function flatValue(v: unknown): FlatValue {
  if (v === undefined || v === null) return null;
  if (Array.isArray(v)) return v.map(flatValue);
  if (v instanceof Uint8Array) return Buffer.from(v).toString('base64');
  if (typeof v === 'object') {
    const out: Record<string, FlatValue> = {};
    for (const [k, x] of Object.entries(v)) out[k] = flatValue(x);
    return out;
  }
  return v as FlatValue;
}

/** An SDK record in the printed JSON shape. */
export function flattenSdkRecord(r: ReadableLogRecord): FlatRecord {
  const attributes: Record<string, FlatValue> = {};
  for (const [k, v] of Object.entries(r.attributes)) attributes[k] = flatValue(v);
  const resource: Record<string, FlatValue> = {};
  for (const [k, v] of Object.entries(r.resource.attributes)) resource[k] = flatValue(v);
  const sc = r.spanContext;
  return {
    time: formatTime(r.hrTime[0], r.hrTime[1]),
    observed_time: formatTime(r.hrTimeObserved[0], r.hrTimeObserved[1]),
    ...(r.severityText !== undefined ? { severity_text: r.severityText } : {}),
    ...(r.severityNumber !== undefined ? { severity_number: r.severityNumber } : {}),
    ...(r.eventName !== undefined ? { event_name: r.eventName } : {}),
    body: flatValue(r.body),
    ...(sc ? { trace_id: sc.traceId, span_id: sc.spanId, trace_flags: sc.traceFlags } : {}),
    resource,
    scope: { name: r.instrumentationScope.name, ...(r.instrumentationScope.version ? { version: r.instrumentationScope.version } : {}) },
    attributes,
  };
}

/** Prints each record as it is emitted (--console). */
class ConsoleProcessor implements LogRecordProcessor {
  constructor(private readonly _write: (line: string) => void) {}
  onEmit(record: SdkLogRecord): void {
    this._write(toJsonLine(flattenSdkRecord(record)));
  }
  forceFlush(): Promise<void> {
    return Promise.resolve();
  }
  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

export function createExporter(target: ExportTarget): LogRecordExporter {
  return target.protocol === 'grpc' ? new GrpcLogExporter({ url: target.url }) : new ProtoLogExporter({ url: target.url });
}

/**
 * The OpenTelemetry logs pipeline: LoggerProvider, a BatchLogRecordProcessor
 * sized for high rates, the OTLP exporter for the chosen protocol, counting
 * every record exported or lost.
 */
export class LogPipeline {
  readonly counters: PipelineCounters = { emitted: 0, exported: 0, failed: 0, failedExports: 0 };
  private readonly _provider: LoggerProvider;
  private readonly _logger: Logger;
  /** Loggers of observed workloads; they share this pipeline's processors. */
  readonly workloads: WorkloadLoggers;

  constructor(opts: PipelineOptions) {
    const exporter = new CountingExporter(
      opts.exporter ?? createExporter(opts.target),
      this.counters,
      opts.target.url,
      opts.log,
    );
    const processors: LogRecordProcessor[] = [];
    if (opts.console) processors.push(new ConsoleProcessor(opts.console));
    processors.push(new BatchLogRecordProcessor({ exporter, ...BATCH_DEFAULTS, ...opts.batch }));
    this._provider = new LoggerProvider({
      resource: defaultResource().merge(
        resourceFromAttributes({
          [ATTR_SERVICE_NAME]: opts.serviceName,
          [ATTR_SERVICE_VERSION]: opts.version,
          'host.name': hostname(),
        }),
      ),
      processors,
      logRecordLimits: { attributeCountLimit: ATTRIBUTE_COUNT_LIMIT },
    });
    this._logger = this._provider.getLogger('headertap', opts.version);
    this.workloads = new WorkloadLoggers(
      { processors, logRecordLimits: { attributeCountLimit: ATTRIBUTE_COUNT_LIMIT }, version: opts.version },
      opts.workloads,
    );
  }

  /** Under the observed workload's resource when the record names one, else headertap's own. */
  emit(rec: ExchangeRecord): void {
    this.counters.emitted++;
    const logger = rec.workload ? this.workloads.logger(rec.workload) : this._logger;
    logger.emit({
      eventName: rec.eventName,
      timestamp: rec.timestamp,
      severityNumber: rec.severityNumber,
      severityText: rec.severityText,
      body: rec.body,
      attributes: rec.attributes,
      ...(rec.spanContext ? { context: trace.setSpanContext(ROOT_CONTEXT, rec.spanContext) } : {}),
    });
  }

  /** Records emitted but neither exported nor reported failed: dropped or still queued. */
  get unaccounted(): number {
    const c = this.counters;
    return c.emitted - c.exported - c.failed;
  }

  /** Exports everything queued, then closes the exporter (the processors are shared by every workload). */
  shutdown(): Promise<void> {
    return this._provider.shutdown();
  }
}
