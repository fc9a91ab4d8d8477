/**
 * RED metrics from the records already built: one duration histogram per
 * exchange, `http.server.request.duration` / `http.client.request.duration`
 * (gRPC calls: `rpc.server.call.duration` / `rpc.client.call.duration`),
 * seconds, with the semantic-convention buckets and attributes, under each
 * workload's resource (one MeterProvider per workload, LRU-bounded),
 * exported to the logs' endpoint with the same protocol, headers and
 * compression.
 *
 * Cost: the SDK hashes a measurement's attributes on every record()
 * (sorted keys, JSON). The attributes of a record are looked up here by one
 * string key in a Map of frozen Attributes objects, one per distinct
 * combination, so building them costs nothing after the first time; see
 * test/bench/metrics.ts for what the SDK's part costs.
 *
 * Cardinality: at most `cardinalityLimit` series per metric and workload,
 * the last of them the overflow series `otel.metric.overflow=true`, as the
 * SDK's cardinality limit (set on the reader too) makes them. The
 * combinations are admitted here, first come first served, and kept for the
 * workload's life with cumulative temporality (the SDK's limit alone applies
 * per collection, so cumulative series would keep growing) and per
 * collection with delta; every record sent to the overflow series is counted.
 */
import type { Attributes, Histogram } from '@opentelemetry/api';
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import type { Resource } from '@opentelemetry/resources';
import { MeterProvider, MetricReader, type PushMetricExporter, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { LRUCache } from 'lru-cache';
import { RateLimitedWarning, type Log } from '../common/log';
import type { ExportTarget } from './endpoint';
import { createMetricExporter, temporalitySelector, type MetricsTemporality } from './metric-exporters';
import type { ExchangeRecord } from './record';
import { grpcStatusIsError, grpcStatusName } from './grpc';
import { spanOutcome } from './spans';
import { KNOWN_METHODS } from './attributes';

/** Semantic conventions' explicit bucket boundaries for HTTP and RPC durations, in seconds. */
export const DURATION_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

export const METRIC_HTTP_SERVER_DURATION = 'http.server.request.duration';
export const METRIC_HTTP_CLIENT_DURATION = 'http.client.request.duration';
export const METRIC_RPC_SERVER_DURATION = 'rpc.server.call.duration';
export const METRIC_RPC_CLIENT_DURATION = 'rpc.client.call.duration';

/** --metric-cardinality-limit: series per metric and workload, the overflow series included (the SDK's default). */
export const DEFAULT_CARDINALITY_LIMIT = 2000;
/** Workloads with meters at once; more evicts the least recently used (its last values are exported first). */
export const DEFAULT_MAX_METRIC_WORKLOADS = 256;
export const OVERFLOW_ATTRIBUTES: Attributes = Object.freeze({ 'otel.metric.overflow': true });

const REQUEST_HEADER_PREFIX = 'http.request.header.';

export interface RequestMetricsCounters {
  /** Measurements recorded. */
  recorded: number;
  /** Exchanges without a response: no duration to record. */
  unanswered: number;
  /** Measurements that went to an overflow series (cardinality limit reached). */
  overflowed: number;
  /** Workloads whose meters were dropped to stay within the LRU bound. */
  workloadsEvicted: number;
  /** Metrics export requests the collector accepted / that failed. */
  exports: number;
  failedExports: number;
}

export interface RequestMetricsOptions {
  /** Where metrics go: resolveExportTarget(…, 'metrics'). */
  target: ExportTarget;
  version: string;
  log: Log;
  intervalMs: number;
  temporality?: MetricsTemporality;
  cardinalityLimit?: number;
  maxWorkloads?: number;
  /** Replaces the OTLP exporter (tests, benchmarks). */
  exporter?: PushMetricExporter;
}

/** A reader whose collections the pipeline starts itself (one timer for every workload). */
class PullReader extends MetricReader {
  protected override onForceFlush(): Promise<void> {
    return Promise.resolve();
  }

  protected override onShutdown(): Promise<void> {
    return Promise.resolve();
  }
}

/** One histogram of one workload, with its admitted attribute combinations. */
class Instrument {
  readonly series = new Map<string, Attributes>();

  constructor(readonly histogram: Histogram) {}
}

interface WorkloadMeters {
  provider: MeterProvider;
  reader: PullReader;
  httpServer: Instrument;
  httpClient: Instrument;
  rpcServer: Instrument;
  rpcClient: Instrument;
}

/** The attributes before the headers that metrics read (the mapper writes them first). */
interface RecordFacts {
  scheme?: string;
  version?: string;
  serverAddress?: string;
  serverPort?: number;
  path?: string;
  grpc: boolean;
}

function recordFacts(attrs: ExchangeRecord['attributes']): RecordFacts {
  const f: RecordFacts = { grpc: false };
  for (let i = 0; i < attrs.length; i += 2) {
    const key = attrs[i] as string;
    switch (key) {
      case 'url.scheme':
        f.scheme = attrs[i + 1] as string;
        break;
      case 'network.protocol.version':
        f.version = attrs[i + 1] as string;
        break;
      case 'server.address':
        f.serverAddress = attrs[i + 1] as string;
        break;
      case 'server.port':
        f.serverPort = attrs[i + 1] as number;
        break;
      case 'url.path':
        f.path = attrs[i + 1] as string;
        break;
      case 'rpc.system.name':
        f.grpc = attrs[i + 1] === 'grpc';
        break;
      default:
        if (key.startsWith(REQUEST_HEADER_PREFIX)) return f; // headers come last: nothing more to read
    }
  }
  return f;
}

/**
 * Request metrics for every workload. record() is called once per record;
 * a timer collects and exports every `intervalMs`, and shutdown() once more.
 */
export class RequestMetrics {
  readonly counters: RequestMetricsCounters = { recorded: 0, unanswered: 0, overflowed: 0, workloadsEvicted: 0, exports: 0, failedExports: 0 };
  private readonly _exporter: PushMetricExporter;
  private readonly _limit: number;
  private readonly _delta: boolean;
  private readonly _temporality: MetricsTemporality;
  private readonly _workloads: LRUCache<string, WorkloadMeters>;
  private readonly _keys = new WeakMap<Resource, string>();
  private readonly _timer: NodeJS.Timeout;
  private readonly _warning: RateLimitedWarning;
  private _collecting?: Promise<void>;
  private _stopped = false;

  constructor(private readonly _opts: RequestMetricsOptions) {
    this._temporality = _opts.temporality ?? 'cumulative';
    this._delta = this._temporality === 'delta';
    this._limit = Math.max(2, _opts.cardinalityLimit ?? DEFAULT_CARDINALITY_LIMIT);
    this._exporter = _opts.exporter ?? createMetricExporter(_opts.target, `headertap/${_opts.version}`, this._temporality);
    this._warning = new RateLimitedWarning(_opts.log, 60_000);
    this._workloads = new LRUCache<string, WorkloadMeters>({
      max: _opts.maxWorkloads ?? DEFAULT_MAX_METRIC_WORKLOADS,
      dispose: (meters, _key, reason) => {
        if (reason !== 'evict') return;
        this.counters.workloadsEvicted++;
        void this._exportOne(meters).finally(() => meters.provider.shutdown().catch(() => {}));
      },
    });
    this._timer = setInterval(() => void this.collect(), _opts.intervalMs);
    this._timer.unref();
  }

  /** Workloads with meters now. */
  get workloads(): number {
    return this._workloads.size;
  }

  /** Series admitted now, over every workload and metric (the overflow series not counted). */
  get series(): number {
    let n = 0;
    for (const w of this._workloads.values()) n += w.httpServer.series.size + w.httpClient.series.size + w.rpcServer.series.size + w.rpcClient.series.size;
    return n;
  }

  /** Records the exchange's duration, if it had a response. */
  record(rec: ExchangeRecord): void {
    if (this._stopped || !rec.resource) return;
    if (rec.durationNs === undefined) {
      this.counters.unanswered++;
      return;
    }
    const w = this._meters(rec.resource);
    const f = recordFacts(rec.attributes);
    const server = rec.role === 'server';
    const outcome = spanOutcome(rec);
    let instrument: Instrument;
    let key: string;
    let build: () => Attributes;
    const headers = rec.metricHeaders;
    if (f.grpc) {
      instrument = server ? w.rpcServer : w.rpcClient;
      const method = f.path && f.path.length > 1 ? f.path.slice(1) : undefined;
      const status = rec.grpcStatus;
      const errorType =
        status !== undefined ? (grpcStatusIsError(status, rec.role) ? grpcStatusName(status) : undefined) : outcome.failed ? outcome.errorType : undefined;
      key = `${method}\u0000${status}\u0000${errorType}\u0000${server ? '' : `${f.serverAddress}\u0000${f.serverPort}`}`;
      build = () => {
        const a: Attributes = { 'rpc.system.name': 'grpc' };
        if (method !== undefined) a['rpc.method'] = method;
        if (status !== undefined) a['rpc.status_code'] = grpcStatusName(status);
        if (errorType !== undefined) a['error.type'] = errorType;
        if (!server) {
          if (f.serverAddress !== undefined) a['server.address'] = f.serverAddress;
          if (f.serverPort !== undefined) a['server.port'] = f.serverPort;
        }
        return a;
      };
    } else {
      instrument = server ? w.httpServer : w.httpClient;
      const method = methodOf(rec.method);
      const status = rec.status || undefined;
      const errorType = outcome.failed ? outcome.errorType : undefined;
      key = `${method}\u0000${status}\u0000${rec.route}\u0000${f.scheme}\u0000${f.version}\u0000${errorType}\u0000${server ? '' : `${f.serverAddress}\u0000${f.serverPort}`}`;
      build = () => {
        const a: Attributes = { 'http.request.method': method };
        if (status !== undefined) a['http.response.status_code'] = status;
        if (rec.route !== undefined) a[server ? 'http.route' : 'url.template'] = rec.route;
        if (f.scheme !== undefined) a['url.scheme'] = f.scheme;
        if (f.version !== undefined) a['network.protocol.version'] = f.version;
        if (errorType !== undefined) a['error.type'] = errorType;
        if (!server) {
          if (f.serverAddress !== undefined) a['server.address'] = f.serverAddress;
          if (f.serverPort !== undefined) a['server.port'] = f.serverPort;
        }
        return a;
      };
    }
    if (headers) {
      for (const v of headers.values) key += `\u0000${v}`;
    }
    let attrs = instrument.series.get(key);
    if (attrs === undefined) {
      if (instrument.series.size >= this._limit - 1) {
        attrs = OVERFLOW_ATTRIBUTES;
        this.counters.overflowed++;
      } else {
        const a = build();
        if (headers) {
          headers.names.forEach((name, i) => {
            const v = headers.values[i];
            if (v !== undefined) a[REQUEST_HEADER_PREFIX + name] = v;
          });
        }
        attrs = Object.freeze(a);
        instrument.series.set(key, attrs);
      }
    }
    instrument.histogram.record(rec.durationNs / 1e9, attrs);
    this.counters.recorded++;
  }

  /** Collects every workload's metrics and exports them (one request per workload); one collection at a time. */
  collect(): Promise<void> {
    if (this._collecting) return this._collecting;
    this._collecting = (async () => {
      for (const w of [...this._workloads.values()]) await this._exportOne(w);
    })().finally(() => (this._collecting = undefined));
    return this._collecting;
  }

  /** Exports what is left, then closes the exporter. */
  async shutdown(): Promise<void> {
    clearInterval(this._timer);
    await this._collecting;
    await this.collect();
    this._stopped = true;
    await Promise.all([...this._workloads.values()].map((w) => w.provider.shutdown().catch(() => {})));
    await this._exporter.shutdown().catch(() => {});
  }

  private async _exportOne(w: WorkloadMeters): Promise<void> {
    // Delta: every collection starts a new set of series, as the SDK's does.
    if (this._delta) for (const i of [w.httpServer, w.httpClient, w.rpcServer, w.rpcClient]) i.series.clear();
    let metrics: ResourceMetrics;
    try {
      metrics = (await w.reader.collect()).resourceMetrics;
    } catch {
      return; // shut down already (evicted)
    }
    const points = metrics.scopeMetrics.reduce((n, s) => n + s.metrics.reduce((m, x) => m + x.dataPoints.length, 0), 0);
    if (points === 0) return;
    const result = await new Promise<ExportResult>((resolve) => this._exporter.export(metrics, resolve));
    if (result.code === ExportResultCode.SUCCESS) this.counters.exports++;
    else {
      this.counters.failedExports++;
      const cause = result.error?.message?.split('\n')[0] ?? 'unknown error';
      this._warning.warn(`request metrics export to ${this._opts.target.url} failed: ${cause}`);
    }
  }

  private _meters(resource: Resource): WorkloadMeters {
    let key = this._keys.get(resource);
    if (key === undefined) {
      key = JSON.stringify(resource.attributes);
      this._keys.set(resource, key);
    }
    let w = this._workloads.get(key);
    if (!w) {
      const reader = new PullReader({
        aggregationTemporalitySelector: temporalitySelector(this._temporality),
        cardinalitySelector: () => this._limit,
      });
      const provider = new MeterProvider({ resource, readers: [reader] });
      const meter = provider.getMeter('headertap', this._opts.version);
      const histogram = (name: string, description: string) =>
        new Instrument(meter.createHistogram(name, { description, unit: 's', advice: { explicitBucketBoundaries: DURATION_BUCKETS_S } }));
      w = {
        provider,
        reader,
        httpServer: histogram(METRIC_HTTP_SERVER_DURATION, 'Duration of HTTP server requests, as headertap saw them'),
        httpClient: histogram(METRIC_HTTP_CLIENT_DURATION, 'Duration of HTTP client requests, as headertap saw them'),
        rpcServer: histogram(METRIC_RPC_SERVER_DURATION, 'Duration of incoming gRPC calls, as headertap saw them'),
        rpcClient: histogram(METRIC_RPC_CLIENT_DURATION, 'Duration of outgoing gRPC calls, as headertap saw them'),
      };
      this._workloads.set(key, w);
    }
    return w;
  }
}

function methodOf(method: string): string {
  return KNOWN_METHODS.has(method) ? method : '_OTHER';
}
