import { ROOT_CONTEXT, trace, type Attributes } from '@opentelemetry/api';
import type { Logger } from '@opentelemetry/api-logs';
import { OTLPExporterBase } from '@opentelemetry/otlp-exporter-base';
import { convertLegacyHttpOptions, createOtlpHttpExportDelegate } from '@opentelemetry/otlp-exporter-base/node-http';
import { convertLegacyOtlpGrpcOptions, createOtlpGrpcExportDelegate } from '@opentelemetry/otlp-grpc-exporter-base';
import {
  LoggerProvider,
  type LogRecordProcessor,
  type ReadableLogRecord,
  type SdkLogRecord,
} from '@opentelemetry/sdk-logs';
import { formatTime, toJsonLine, type FlatRecord, type FlatValue } from '../common/flat-record';
import type { Log } from '../common/log';
import { ATTRIBUTE_COUNT_LIMIT, AttachAttributes } from './attach-attributes';
import type { ExchangeRecord } from './attributes';
import { DeliveryProcessor, type DeliveryCounters, type DeliveryOptions } from './delivery';
import { exporterConfig, type ExportTarget } from './endpoint';
import { ENCODED_LOGS_METRICS_HELPER, OtlpLogsEncoder, otlpLogsSerializer, type EncodedLogExporter } from './otlp-logs';
import { WorkloadLoggers, agentResource, type WorkloadOptions } from './workloads';


export interface PipelineOptions {
  target: ExportTarget;
  serviceName: string;
  /** More attributes of headertap's own resource (agentResource). */
  agentAttributes?: Attributes;
  version: string;
  log: Log;
  /** Also write each record as one JSON line here (--console). */
  console?: (line: string) => void;
  /** Replaces the OTLP exporter (tests, benchmarks). */
  exporter?: EncodedLogExporter;
  /** Buffer bounds, batching, retry, spool (src/otel/delivery.ts). */
  delivery?: Omit<DeliveryOptions, 'exporter' | 'log' | 'destination'>;
  /** Per-workload resources (records with a workload go under their process's resource). */
  workloads?: WorkloadOptions;
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

export interface ExporterOptions {
  /** Prefix of the exporter's user agent (headertap/VERSION). */
  userAgent?: string;
  /** > 0: a gRPC connection of its own (see createExporter). */
  channel?: number;
  /** One export attempt's timeout (the SDK's default is 10 s). */
  timeoutMillis?: number;
  /** Shares its caches (attribute keys, resources, scopes) with the delivery buffer's encoding. */
  encoder?: OtlpLogsEncoder;
}

/**
 * The OTLP logs exporter for the target: the SDK's OTLP/gRPC or OTLP/HTTP
 * protobuf exporter (transport, timeouts, headers, the OTEL_EXPORTER_OTLP_*
 * environment), composed as the SDK composes its own, with headertap's
 * encoder in place of the SDK's serializer (src/otel/otlp-logs.ts: the same
 * bytes, a third of the CPU). It exports records the delivery buffer holds
 * already encoded. `channel` > 0 gives a gRPC exporter
 * its own connection (grpc-js pools connections by their options, the user
 * agent among them): see DeliveryOptions.renewExporter.
 */
export function createExporter(target: ExportTarget, opts: ExporterOptions = {}): EncodedLogExporter {
  const common = exporterConfig(target, opts.timeoutMillis);
  if (target.protocol !== 'grpc') {
    const config = convertLegacyHttpOptions({ ...common, ...(opts.userAgent ? { userAgent: opts.userAgent } : {}) }, 'LOGS', 'v1/logs', {
      'Content-Type': 'application/x-protobuf',
    });
    return new OTLPExporterBase(createOtlpHttpExportDelegate(config, otlpLogsSerializer(opts.encoder), 'otlp_http_log_exporter', ENCODED_LOGS_METRICS_HELPER, undefined));
  }
  const agent = [opts.userAgent, opts.channel ? `channel/${opts.channel}` : undefined].filter(Boolean).join(' ');
  const config = convertLegacyOtlpGrpcOptions({ ...common, ...(agent ? { userAgent: agent } : {}) }, 'LOGS');
  return new OTLPExporterBase(
    createOtlpGrpcExportDelegate(
      config,
      otlpLogsSerializer(opts.encoder),
      'otlp_grpc_log_exporter',
      ENCODED_LOGS_METRICS_HELPER,
      undefined,
      'LogsExportService',
      '/opentelemetry.proto.collector.logs.v1.LogsService/Export',
    ),
  );
}

/**
 * Emits a mapped record through an SDK logger whose provider has `attach`
 * first among its processors: the attributes skip the SDK's per-value
 * checks (see AttachAttributes), the trace context becomes the record's.
 */
export function emitExchangeRecord(logger: Logger, attach: AttachAttributes, rec: ExchangeRecord): void {
  attach.emitWith(rec.attributes, rec.maxAttributes, () =>
    logger.emit({
      eventName: rec.eventName,
      timestamp: rec.timestamp,
      severityNumber: rec.severityNumber,
      severityText: rec.severityText,
      body: rec.body,
      ...(rec.spanContext ? { context: trace.setSpanContext(ROOT_CONTEXT, rec.spanContext) } : {}),
    }),
  );
}

/**
 * The OpenTelemetry logs pipeline: LoggerProvider, headertap's delivery
 * processor (bounded buffer, retries, spool) and the OTLP exporter for the
 * chosen protocol, counting every record exported or lost.
 */
export class LogPipeline {
  /** Buffering, retries and every exported or dropped record's count. */
  readonly delivery: DeliveryProcessor;
  private readonly _provider: LoggerProvider;
  private readonly _logger: Logger;
  /** Loggers of observed workloads; they share this pipeline's processors. */
  readonly workloads: WorkloadLoggers;
  private readonly _attach = new AttachAttributes(ATTRIBUTE_COUNT_LIMIT);

  constructor(opts: PipelineOptions) {
    const userAgent = `headertap/${opts.version}`;
    let channel = 0;
    // One encoder: records are encoded as emitted, requests put together from them, one set of caches.
    const encoder = new OtlpLogsEncoder();
    this.delivery = new DeliveryProcessor({
      ...(opts.exporter || opts.target.protocol !== 'grpc' ? {} : { renewExporter: () => createExporter(opts.target, { userAgent, channel: ++channel, encoder }) }),
      ...opts.delivery,
      encoder,
      exporter: opts.exporter ?? createExporter(opts.target, { userAgent, encoder }),
      log: opts.log,
      destination: opts.target.url,
    });
    const processors: LogRecordProcessor[] = [this._attach]; // first: the others see the attributes
    if (opts.console) processors.push(new ConsoleProcessor(opts.console));
    processors.push(this.delivery);
    this._provider = new LoggerProvider({
      resource: agentResource(opts.serviceName, opts.version, opts.agentAttributes),
      processors,
      logRecordLimits: { attributeCountLimit: ATTRIBUTE_COUNT_LIMIT },
    });
    this._logger = this._provider.getLogger('headertap', opts.version);
    this.workloads = new WorkloadLoggers(
      { processors, logRecordLimits: { attributeCountLimit: ATTRIBUTE_COUNT_LIMIT }, version: opts.version },
      opts.workloads,
    );
  }

  get counters(): DeliveryCounters {
    return this.delivery.counters;
  }

  /** Under the observed workload's resource when the record names one, else headertap's own. */
  emit(rec: ExchangeRecord): void {
    emitExchangeRecord(rec.workload ? this.workloads.logger(rec.workload) : this._logger, this._attach, rec);
  }

  /**
   * Exports everything queued within `timeoutMs` (what is left goes to the
   * spool, or is counted dropped), then closes the exporter (the processors
   * are shared by every workload).
   */
  async shutdown(timeoutMs?: number): Promise<void> {
    await this.delivery.shutdown(timeoutMs);
    await this._provider.shutdown();
  }
}
