/**
 * `--emit-spans`: one CLIENT or SERVER span per HTTP exchange, next to its log
 * record, for backends that store only traces (Jaeger). The span is a child
 * of the caller's span from the request's trace context, so it lands in the
 * caller's trace; without trace context it starts a new trace, and the log
 * record then carries that trace so logs and spans still link.
 */
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, type Attributes, type HrTime, type SpanContext, type Tracer } from '@opentelemetry/api';
import { addHrTimes, ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { OTLPTraceExporter as GrpcTraceExporter } from '@opentelemetry/exporter-trace-otlp-grpc';
import { OTLPTraceExporter as ProtoTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import type { Resource } from '@opentelemetry/resources';
import {
  AlwaysOnSampler,
  BasicTracerProvider,
  BatchSpanProcessor,
  type BufferConfig,
  type ReadableSpan,
  type SpanExporter,
  type SpanProcessor,
} from '@opentelemetry/sdk-trace-base';
import { ATTR_ERROR_TYPE } from '@opentelemetry/semantic-conventions';
import { RateLimitedWarning, type Log } from '../common/log';
import { KNOWN_METHODS } from './attributes';
import { DELIVERY_DEFAULTS } from './delivery';
import { exporterConfig, type ExportTarget } from './endpoint';
import { RPC_METHOD_OTHER } from './grpc';
import { attributesObject, type ExchangeRecord } from './record';
import { agentResource } from './workloads';

/** A span carries a record's attributes: no more than a record can have (the SDK's default, 128, is one). */
const SPAN_ATTRIBUTE_COUNT_LIMIT = 2048;

/**
 * Same sizing as the logs pipeline (one span per record, at the same rates),
 * except the batch: BatchSpanProcessor cuts by count only, and 2048 spans
 * with a dozen custom headers each pass the 4 MiB that gRPC collectors accept
 * by default; a quarter of it stays near DELIVERY_DEFAULTS.maxRequestBytes.
 */
export const SPAN_BATCH_DEFAULTS: Required<Pick<BufferConfig, 'maxQueueSize' | 'maxExportBatchSize' | 'scheduledDelayMillis' | 'exportTimeoutMillis'>> = {
  maxQueueSize: DELIVERY_DEFAULTS.maxRecords,
  maxExportBatchSize: DELIVERY_DEFAULTS.maxBatch / 4,
  scheduledDelayMillis: DELIVERY_DEFAULTS.batchDelayMs,
  // Longer than the exporter's own timeout, so the exporter reports a timeout first.
  exportTimeoutMillis: DELIVERY_DEFAULTS.exportTimeoutMs + 5000,
};

export interface SpanCounters {
  /** Spans started and ended. */
  emitted: number;
  /** Spans the collector accepted. */
  exported: number;
  /** Spans in exports that failed. */
  failed: number;
}

export interface SpanPipelineOptions {
  /** Where spans go: resolveExportTarget(…, 'traces'). */
  target: ExportTarget;
  serviceName: string;
  /** More attributes of headertap's own resource (agentResource). */
  agentAttributes?: Attributes;
  version: string;
  log: Log;
  /** Replaces the OTLP exporter (tests). */
  exporter?: SpanExporter;
  batch?: Partial<typeof SPAN_BATCH_DEFAULTS>;
}

/** `userAgent` (headertap/VERSION) marks the requests as headertap's own: other agents never record them (src/cli/own-exports.ts). */
export function createSpanExporter(target: ExportTarget, userAgent?: string): SpanExporter {
  const config = { ...exporterConfig(target), ...(userAgent ? { userAgent } : {}) };
  return target.protocol === 'grpc' ? new GrpcTraceExporter(config) : new ProtoTraceExporter(config);
}

/** Counts what the exporter delivered and what it lost, and says so. */
class CountingSpanExporter implements SpanExporter {
  private readonly _warning: RateLimitedWarning;

  constructor(
    private readonly _inner: SpanExporter,
    private readonly _counters: SpanCounters,
    private readonly _destination: string,
    log: Log,
  ) {
    this._warning = new RateLimitedWarning(log, 10_000);
  }

  export(spans: ReadableSpan[], done: (result: ExportResult) => void): void {
    this._inner.export(spans, (result) => {
      if (result.code === ExportResultCode.SUCCESS) {
        this._counters.exported += spans.length;
      } else {
        this._counters.failed += spans.length;
        const cause = result.error?.message?.split('\n')[0] ?? 'unknown error';
        this._warning.warn(`span export to ${this._destination} failed, ${spans.length} spans lost: ${cause}`);
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

/**
 * The span name: for an RPC call `{rpc.method}`, or `{rpc.system.name}` when
 * the method is unknown (RPC semantic conventions); else the one HTTP
 * semantic conventions give: `{method} {route}` when the record has a route
 * (http.route, url.template), else the method; "HTTP" for methods they do
 * not name.
 */
export function spanName(rec: Pick<ExchangeRecord, 'method' | 'rpcSystem' | 'rpcMethod' | 'route'>): string {
  if (rec.rpcSystem) return rec.rpcMethod && rec.rpcMethod !== RPC_METHOD_OTHER ? rec.rpcMethod : rec.rpcSystem;
  const method = KNOWN_METHODS.has(rec.method) ? rec.method : 'HTTP';
  return rec.route !== undefined ? `${method} ${rec.route}` : method;
}

function nsToHrTime(ns: number): HrTime {
  const whole = Math.max(0, Math.round(ns));
  return [Math.floor(whole / 1e9), whole % 1e9];
}

/**
 * Spans for exchanges: BasicTracerProvider with every exchange sampled, a
 * BatchSpanProcessor sized like the logs one, the OTLP trace exporter for the
 * chosen protocol, counting every span exported or lost. Like the log
 * records, a span goes under the observed workload's resource (a provider
 * per workload, all sharing the one processor), else under headertap's.
 */
export class SpanPipeline {
  readonly counters: SpanCounters = { emitted: 0, exported: 0, failed: 0 };
  /** Tracers of observed workloads, by the resource their records carry; they share this pipeline's processor. */
  private readonly _tracers = new WeakMap<Resource, Tracer>();
  private readonly _provider: BasicTracerProvider;
  private readonly _tracer: Tracer;
  private readonly _make: (resource: Resource) => Tracer;

  constructor(opts: SpanPipelineOptions) {
    const exporter = new CountingSpanExporter(opts.exporter ?? createSpanExporter(opts.target, `headertap/${opts.version}`), this.counters, opts.target.url, opts.log);
    const processor: SpanProcessor = new BatchSpanProcessor(exporter, { ...SPAN_BATCH_DEFAULTS, ...opts.batch });
    const provider = (resource: Resource) =>
      new BasicTracerProvider({
        resource,
        // Every exchange gets its span, whatever the caller's sampled flag: the
        // point is to see every request's headers, like the log records.
        sampler: new AlwaysOnSampler(),
        spanLimits: { attributeCountLimit: SPAN_ATTRIBUTE_COUNT_LIMIT },
        spanProcessors: [processor],
      });
    this._provider = provider(agentResource(opts.serviceName, opts.version, opts.agentAttributes));
    this._tracer = this._provider.getTracer('headertap', opts.version);
    this._make = (resource) => provider(resource).getTracer('headertap', opts.version);
  }

  private _tracerFor(resource: Resource | undefined): Tracer {
    if (!resource) return this._tracer;
    let tracer = this._tracers.get(resource);
    if (!tracer) this._tracers.set(resource, (tracer = this._make(resource)));
    return tracer;
  }

  /**
   * Starts and ends the exchange's span: kind from headertap.role, start at
   * the request's first byte, end at the response head's last byte (start
   * plus headertap.duration_ns; no response: a zero-length span), the
   * record's attributes, status ERROR when the record has an error.type. Returns the span's
   * context.
   */
  emit(rec: ExchangeRecord): SpanContext {
    const parent = rec.spanContext ? trace.setSpanContext(ROOT_CONTEXT, rec.spanContext) : ROOT_CONTEXT;
    const span = this._tracerFor(rec.resource).startSpan(
      spanName(rec),
      { kind: rec.role === 'client' ? SpanKind.CLIENT : SpanKind.SERVER, startTime: rec.timestamp, attributes: attributesObject(rec.attributes) },
      parent,
    );
    // The record says whether the exchange failed and how (error.type, among its attributes unless --max-attributes cut it).
    if (rec.errorType !== undefined) {
      span.setStatus({ code: SpanStatusCode.ERROR });
      span.setAttribute(ATTR_ERROR_TYPE, rec.errorType);
    }
    span.end(rec.durationNs !== undefined ? addHrTimes(rec.timestamp, nsToHrTime(rec.durationNs)) : rec.timestamp);
    this.counters.emitted++;
    return span.spanContext();
  }

  /**
   * Emits the exchange's span and returns the record to log: unchanged when
   * the request carried trace context (its ids stay the caller's, as the
   * log-record contract says), else carrying the new span's trace and span
   * id so Loki/Tempo and Jaeger still link the two.
   */
  withSpan(rec: ExchangeRecord): ExchangeRecord {
    const ctx = this.emit(rec);
    return rec.spanContext ? rec : { ...rec, spanContext: ctx };
  }

  /** Spans ended but neither exported nor reported failed: dropped or still queued. */
  get unaccounted(): number {
    const c = this.counters;
    return c.emitted - c.exported - c.failed;
  }

  /**
   * Exports everything queued, then closes the exporter (the processor is
   * shared by every workload's provider). The batch processor
   * rejects when the last export fails; that loss is already counted and
   * reported, so shutdown still resolves.
   */
  async shutdown(): Promise<void> {
    await this._provider.shutdown().catch(() => undefined);
  }

  /** The spans' part of the line printed at exit. */
  summary(): string {
    const c = this.counters;
    return `spans exported ${c.exported}, failed ${c.failed}, dropped ${this.unaccounted}`;
  }
}
