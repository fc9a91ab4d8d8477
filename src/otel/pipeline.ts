import type { Attributes } from '@opentelemetry/api';
import type { ExportResult, InstrumentationScope } from '@opentelemetry/core';
import { OTLPExporterBase } from '@opentelemetry/otlp-exporter-base';
import { convertLegacyHttpOptions, createOtlpHttpExportDelegate } from '@opentelemetry/otlp-exporter-base/node-http';
import { convertLegacyOtlpGrpcOptions, createOtlpGrpcExportDelegate } from '@opentelemetry/otlp-grpc-exporter-base';
import type { Resource } from '@opentelemetry/resources';
import { formatTime, toJsonLine, type FlatRecord, type FlatValue } from '../common/flat-record';
import type { Log } from '../common/log';
import { DeliveryProcessor, type DeliveryCounters, type DeliveryOptions } from './delivery';
import { exporterConfig, type ExportTarget } from './endpoint';
import { ENCODED_LOGS_METRICS_HELPER, OtlpLogsEncoder, otlpLogsSerializer, type EncodedLogExporter, type EncodedLogRecord } from './otlp-logs';
import type { ExchangeRecord } from './record';
import { agentResource } from './workloads';

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

/** A record in the printed JSON shape: what a collector receives, as `headertap receive` prints it. */
export function flattenRecord(r: ExchangeRecord, resource: Resource, scope: InstrumentationScope): FlatRecord {
  const attributes: Record<string, FlatValue> = {};
  for (let i = 0; i < r.attributes.length; i += 2) attributes[r.attributes[i] as string] = flatValue(r.attributes[i + 1]);
  const sc = r.spanContext;
  return {
    time: formatTime(r.timestamp[0], r.timestamp[1]),
    observed_time: formatTime(r.observedTimestamp[0], r.observedTimestamp[1]),
    severity_text: r.severityText,
    severity_number: r.severityNumber,
    event_name: r.eventName,
    body: r.body,
    ...(sc ? { trace_id: sc.traceId, span_id: sc.spanId, trace_flags: sc.traceFlags } : {}),
    resource: flatValue(resource.attributes) as Record<string, FlatValue>,
    scope: { name: scope.name, ...(scope.version ? { version: scope.version } : {}) },
    attributes,
    ...(r.droppedAttributesCount ? { dropped_attributes_count: r.droppedAttributesCount } : {}),
  };
}

export interface ExporterOptions {
  /** Prefix of the exporter's user agent (headertap/VERSION). */
  userAgent?: string;
  /** > 0: a gRPC connection of its own (see createExporter). */
  channel?: number;
  /** One export attempt's timeout when export() names none (default: the target's, else the SDK's 10 s). */
  timeoutMillis?: number;
  /** Shares its caches (attribute keys, resources, scopes) with the delivery buffer's encoding. */
  encoder?: OtlpLogsEncoder;
}

/** Timeouts an exporter keeps an SDK exporter for at most (delivery uses a handful: the base one, doubled after timeouts). */
const MAX_TIMEOUT_VARIANTS = 8;

/**
 * An exporter whose every request may have its own timeout. The SDK's
 * exporters fix theirs when they are made, so there is one per timeout in
 * use, made when first needed. For gRPC they share one connection
 * (grpc-js pools connections by channel options, and the deadline is not
 * one).
 */
class TimedExporter implements EncodedLogExporter {
  private readonly _byTimeout = new Map<number, EncodedLogExporter>();

  constructor(
    private readonly _make: (timeoutMs: number | undefined) => EncodedLogExporter,
    private readonly _defaultMs: number | undefined,
  ) {}

  export(records: EncodedLogRecord[], done: (result: ExportResult) => void, timeoutMs = this._defaultMs): void {
    const key = timeoutMs ?? 0;
    let exporter = this._byTimeout.get(key);
    if (!exporter) {
      if (this._byTimeout.size >= MAX_TIMEOUT_VARIANTS) {
        const [oldest, old] = this._byTimeout.entries().next().value as [number, EncodedLogExporter];
        this._byTimeout.delete(oldest);
        void old.shutdown().catch(() => {});
      }
      exporter = this._make(timeoutMs);
      this._byTimeout.set(key, exporter);
    }
    exporter.export(records, done);
  }

  async shutdown(): Promise<void> {
    await Promise.all([...this._byTimeout.values()].map((e) => e.shutdown()));
  }
}

/**
 * The OTLP logs exporter for the target: the SDK's OTLP/gRPC or OTLP/HTTP
 * protobuf exporter (transport, timeouts, headers, the OTEL_EXPORTER_OTLP_*
 * environment), composed as the SDK composes its own, with headertap's
 * encoder in place of the SDK's serializer (src/otel/otlp-logs.ts: the same
 * bytes, a third of the CPU). It exports records the delivery buffer holds
 * already encoded, each request with the timeout delivery gives it
 * (TimedExporter). `channel` > 0 gives a gRPC exporter
 * its own connection (grpc-js pools connections by their options, the user
 * agent among them): see DeliveryOptions.renewExporter.
 */
export function createExporter(target: ExportTarget, opts: ExporterOptions = {}): EncodedLogExporter {
  return new TimedExporter((timeoutMs) => createSdkExporter(target, { ...opts, ...(timeoutMs ? { timeoutMillis: timeoutMs } : {}) }), opts.timeoutMillis ?? target.timeoutMs);
}

function createSdkExporter(target: ExportTarget, opts: ExporterOptions): EncodedLogExporter {
  const common = exporterConfig(target, opts.timeoutMillis ?? target.timeoutMs);
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
 * The logs pipeline: each record encoded as OTLP straight from headertap's
 * own record, under its workload's resource (headertap's own when it has
 * none), into the delivery buffer (bounded, retried, spooled), exported by
 * the OTLP exporter for the chosen protocol; every record exported or lost is
 * counted.
 */
export class LogPipeline {
  /** Buffering, retries and every exported or dropped record's count. */
  readonly delivery: DeliveryProcessor;
  /** One encoder: records are encoded as emitted, requests put together from them, one set of caches. */
  private readonly _encoder = new OtlpLogsEncoder();
  private readonly _resource: Resource;
  private readonly _scope: InstrumentationScope;
  private readonly _console?: (line: string) => void;

  constructor(opts: PipelineOptions) {
    const userAgent = `headertap/${opts.version}`;
    const encoder = this._encoder;
    let channel = 0;
    this.delivery = new DeliveryProcessor({
      ...(opts.exporter || opts.target.protocol !== 'grpc' ? {} : { renewExporter: () => createExporter(opts.target, { userAgent, channel: ++channel, encoder }) }),
      ...(opts.target.timeoutMs ? { exportTimeoutMs: opts.target.timeoutMs } : {}),
      ...opts.delivery,
      encoder,
      exporter: opts.exporter ?? createExporter(opts.target, { userAgent, encoder }),
      log: opts.log,
      destination: opts.target.url,
    });
    this._resource = agentResource(opts.serviceName, opts.version, opts.agentAttributes);
    this._scope = { name: 'headertap', version: opts.version };
    this._console = opts.console;
  }

  get counters(): DeliveryCounters {
    return this.delivery.counters;
  }

  /** Under the observed workload's resource when the record names one, else headertap's own. */
  emit(rec: ExchangeRecord): void {
    const resource = rec.resource ?? this._resource;
    if (this._console) this._console(toJsonLine(flattenRecord(rec, resource, this._scope)));
    this.delivery.add(this._encoder.encodeRecord(rec, resource, this._scope));
  }

  /**
   * Exports everything queued within `timeoutMs` (what is left goes to the
   * spool, or is counted dropped), then closes the exporter.
   */
  async shutdown(timeoutMs?: number): Promise<void> {
    await this.delivery.shutdown(timeoutMs);
  }
}
