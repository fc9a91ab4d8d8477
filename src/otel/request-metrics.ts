/**
 * RED metrics from the records already built: one duration histogram per
 * exchange, `http.server.request.duration` / `http.client.request.duration`
 * (gRPC calls: `rpc.server.call.duration` / `rpc.client.call.duration`),
 * seconds, with the semantic-convention buckets and attributes, under each
 * workload's resource (LRU-bounded), exported to the logs' endpoint with the
 * same protocol, headers and compression by the OTLP metrics exporter.
 *
 * Cost: the SDK's Histogram.record() hashes a measurement's attributes on
 * every call (keys sorted, JSON), which made metrics cost more than half
 * of the rest of a record's user-space CPU (test/bench/metrics.ts). So the
 * aggregation is done here, with the SDK's data model (HistogramMetricData,
 * ResourceMetrics) and exporters: a record's series is found by one string
 * key, and recording is a bucket search and four additions.
 *
 * Cardinality, as the OpenTelemetry metrics SDK specifies it: at most
 * `cardinalityLimit` series per metric and workload, the last of them the
 * overflow series `otel.metric.overflow=true`. Combinations are admitted
 * first come, first served, and kept for the workload's life with
 * cumulative temporality (so memory stays bounded) and per collection with
 * delta; every record sent to the overflow series is counted.
 */
import { ValueType, type Attributes, type HrTime } from '@opentelemetry/api';
import { ExportResultCode, millisToHrTime, type ExportResult } from '@opentelemetry/core';
import type { Resource } from '@opentelemetry/resources';
import {
  AggregationTemporality,
  DataPointType,
  type DataPoint,
  type Histogram,
  type HistogramMetricData,
  type MetricDescriptor,
  type PushMetricExporter,
  type ResourceMetrics,
} from '@opentelemetry/sdk-metrics';
import { LRUCache } from 'lru-cache';
import { RateLimitedWarning, type Log } from '../common/log';
import type { ExportTarget } from './endpoint';
import { createMetricExporter, type MetricsTemporality } from './metric-exporters';
import { DEFAULT_CARDINALITY_LIMIT } from './metric-headers';
import type { ExchangeRecord } from './record';
import { grpcStatusName } from './grpc';
import { KNOWN_METHODS } from './attributes';

/** Semantic conventions' explicit bucket boundaries for HTTP and RPC durations, in seconds. */
export const DURATION_BUCKETS_S = [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10];

export const METRIC_HTTP_SERVER_DURATION = 'http.server.request.duration';
export const METRIC_HTTP_CLIENT_DURATION = 'http.client.request.duration';
export const METRIC_RPC_SERVER_DURATION = 'rpc.server.call.duration';
export const METRIC_RPC_CLIENT_DURATION = 'rpc.client.call.duration';

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

/** One series: its attributes and its histogram so far. */
class Series {
  /** Bucket i counts values in (bounds[i-1], bounds[i]]; the last one those above every bound. */
  readonly counts = new Array<number>(DURATION_BUCKETS_S.length + 1).fill(0);
  count = 0;
  sum = 0;
  min = Infinity;
  max = -Infinity;

  constructor(
    readonly attributes: Attributes,
    public start: HrTime,
  ) {}

  record(v: number): void {
    let i = 0;
    while (i < DURATION_BUCKETS_S.length && v > DURATION_BUCKETS_S[i]) i++;
    this.counts[i]++;
    this.count++;
    this.sum += v;
    if (v < this.min) this.min = v;
    if (v > this.max) this.max = v;
  }

  point(end: HrTime): DataPoint<Histogram> {
    return {
      attributes: this.attributes,
      startTime: this.start,
      endTime: end,
      value: { buckets: { boundaries: DURATION_BUCKETS_S, counts: [...this.counts] }, count: this.count, sum: this.sum, min: this.min, max: this.max },
    };
  }
}

/** A level of an instrument's series lookup: the next key part to the next level, or to the series at the end. */
type KeyLevel = Map<unknown, unknown>;

/**
 * One histogram of one workload: its admitted series and the overflow
 * series. A series is found by its key parts (method, status, route, …,
 * header values) through one Map per part, not by a string built from them:
 * record() then allocates nothing for a known combination, and the parts are
 * mostly strings the mapper already holds, whose hashes V8 keeps.
 */
class Instrument {
  readonly series: Series[] = [];
  overflow?: Series;
  private _root: KeyLevel = new Map();

  constructor(readonly descriptor: MetricDescriptor) {}

  /** The series of parts[0..n), or undefined for a combination not admitted. */
  find(parts: readonly unknown[], n: number): Series | undefined {
    let at: unknown = this._root;
    for (let i = 0; i < n && at !== undefined; i++) at = (at as KeyLevel).get(parts[i]);
    return at as Series | undefined;
  }

  /** Admits a new combination. */
  add(parts: readonly unknown[], n: number, series: Series): void {
    let level = this._root;
    for (let i = 0; i < n - 1; i++) {
      let next = level.get(parts[i]) as KeyLevel | undefined;
      if (next === undefined) level.set(parts[i], (next = new Map()));
      level = next;
    }
    level.set(parts[n - 1], series);
    this.series.push(series);
  }

  /** The metric as the exporter takes it; undefined without data. Delta: the series start over. */
  collect(temporality: AggregationTemporality, now: HrTime): HistogramMetricData | undefined {
    const points: DataPoint<Histogram>[] = [];
    for (const s of this.series) if (s.count) points.push(s.point(now));
    if (this.overflow?.count) points.push(this.overflow.point(now));
    if (temporality === AggregationTemporality.DELTA) {
      this.series.length = 0;
      this._root = new Map();
      this.overflow = undefined;
    }
    if (points.length === 0) return undefined;
    return { descriptor: this.descriptor, aggregationTemporality: temporality, dataPointType: DataPointType.HISTOGRAM, dataPoints: points };
  }
}

function descriptor(name: string, description: string): MetricDescriptor {
  return { name, description, unit: 's', valueType: ValueType.DOUBLE };
}

const DESCRIPTORS = {
  httpServer: descriptor(METRIC_HTTP_SERVER_DURATION, 'Duration of HTTP server requests, as headertap saw them'),
  httpClient: descriptor(METRIC_HTTP_CLIENT_DURATION, 'Duration of HTTP client requests, as headertap saw them'),
  rpcServer: descriptor(METRIC_RPC_SERVER_DURATION, 'Duration of incoming gRPC calls, as headertap saw them'),
  rpcClient: descriptor(METRIC_RPC_CLIENT_DURATION, 'Duration of outgoing gRPC calls, as headertap saw them'),
};

interface WorkloadMeters {
  resource: Resource;
  httpServer: Instrument;
  httpClient: Instrument;
  rpcServer: Instrument;
  rpcClient: Instrument;
}

/** A series' attributes, built on its first record, frozen (the SDK keeps the object). */
function buildAttributes(rec: ExchangeRecord, errorType: string | undefined, server: boolean): Attributes {
  const a: Attributes = {};
  if (rec.rpcSystem === 'grpc') {
    a['rpc.system.name'] = 'grpc';
    if (rec.rpcMethod !== undefined) a['rpc.method'] = rec.rpcMethod; // pkg.Service/Method, or _OTHER
    if (rec.grpcStatus !== undefined) a['rpc.status_code'] = grpcStatusName(rec.grpcStatus);
  } else {
    a['http.request.method'] = KNOWN_METHODS.has(rec.method) ? rec.method : '_OTHER';
    if (rec.status) a['http.response.status_code'] = rec.status;
    if (rec.route !== undefined) a[server ? 'http.route' : 'url.template'] = rec.route;
    a['url.scheme'] = rec.scheme;
    a['network.protocol.version'] = rec.protocolVersion;
  }
  if (errorType !== undefined) a['error.type'] = errorType;
  if (!server) {
    if (rec.serverAddress !== undefined) a['server.address'] = rec.serverAddress;
    if (rec.serverPort !== undefined) a['server.port'] = rec.serverPort;
  }
  const headers = rec.metricHeaders;
  if (headers) {
    for (let i = 0; i < headers.names.length; i++) {
      const v = headers.values[i];
      if (v !== undefined) a[REQUEST_HEADER_PREFIX + headers.names[i]] = v;
    }
  }
  return Object.freeze(a);
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
  private _lastResource?: Resource;
  private _lastKey?: string;
  private _lastMeters?: WorkloadMeters;
  /** record()'s scratch: the key parts of the record being measured. */
  private readonly _parts: unknown[] = [];

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
        void this._exportOne(meters);
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
    for (const w of this._workloads.values()) n += w.httpServer.series.length + w.httpClient.series.length + w.rpcServer.series.length + w.rpcClient.series.length;
    return n;
  }

  /**
   * Records the exchange's duration, if it had a response. The hot path
   * allocates nothing once a combination is known (Instrument.find); a
   * series' attributes are built on its first record.
   */
  record(rec: ExchangeRecord): void {
    if (this._stopped || !rec.resource) return;
    if (rec.durationNs === undefined) {
      this.counters.unanswered++;
      return;
    }
    const w = this._meters(rec.resource);
    const server = rec.role === 'server';
    const headers = rec.metricHeaders;
    const errorType = rec.errorType;
    // The series' key parts, in a scratch array (no allocation per record). The first part is
    // the --metric-headers names in force (one array per configuration): after a reload that
    // changes them, the same values are another series.
    const parts = this._parts;
    let n = 0;
    let instrument: Instrument;
    parts[n++] = headers?.names;
    if (rec.rpcSystem === 'grpc') {
      instrument = server ? w.rpcServer : w.rpcClient;
      parts[n++] = rec.rpcMethod;
      parts[n++] = rec.grpcStatus;
    } else {
      instrument = server ? w.httpServer : w.httpClient;
      parts[n++] = KNOWN_METHODS.has(rec.method) ? rec.method : '_OTHER';
      parts[n++] = rec.status;
      parts[n++] = rec.route;
      parts[n++] = rec.scheme;
      parts[n++] = rec.protocolVersion;
    }
    parts[n++] = errorType;
    if (!server) {
      parts[n++] = rec.serverAddress;
      parts[n++] = rec.serverPort;
    }
    if (headers) for (let i = 0; i < headers.values.length; i++) parts[n++] = headers.values[i];
    let series = instrument.find(parts, n);
    if (series === undefined) {
      if (instrument.series.length >= this._limit - 1) {
        series = instrument.overflow ??= new Series(OVERFLOW_ATTRIBUTES, this._now());
        this.counters.overflowed++;
      } else {
        series = new Series(buildAttributes(rec, errorType, server), this._now());
        instrument.add(parts, n, series);
      }
    }
    series.record(rec.durationNs / 1e9);
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
    await this._exporter.shutdown().catch(() => {});
  }

  private async _exportOne(w: WorkloadMeters): Promise<void> {
    const now = this._now();
    const temporality = this._delta ? AggregationTemporality.DELTA : AggregationTemporality.CUMULATIVE;
    const metrics: HistogramMetricData[] = [];
    for (const i of [w.httpServer, w.httpClient, w.rpcServer, w.rpcClient]) {
      const m = i.collect(temporality, now);
      if (m) metrics.push(m);
    }
    if (metrics.length === 0) return;
    const rm: ResourceMetrics = { resource: w.resource, scopeMetrics: [{ scope: { name: 'headertap', version: this._opts.version }, metrics }] };
    const result = await new Promise<ExportResult>((resolve) => this._exporter.export(rm, resolve));
    if (result.code === ExportResultCode.SUCCESS) this.counters.exports++;
    else {
      this.counters.failedExports++;
      const cause = result.error?.message?.split('\n')[0] ?? 'unknown error';
      this._warning.warn(`request metrics export to ${this._opts.target.url} failed: ${cause}`);
    }
  }

  private _now(): HrTime {
    return millisToHrTime(Date.now());
  }

  private _meters(resource: Resource): WorkloadMeters {
    // Records come in runs of one workload: the last one found needs no lookup (nor an LRU touch).
    if (resource === this._lastResource && this._lastMeters && this._workloads.has(this._lastKey!)) return this._lastMeters;
    let key = this._keys.get(resource);
    if (key === undefined) {
      key = JSON.stringify(resource.attributes);
      this._keys.set(resource, key);
    }
    let w = this._workloads.get(key);
    if (!w) {
      w = {
        resource,
        httpServer: new Instrument(DESCRIPTORS.httpServer),
        httpClient: new Instrument(DESCRIPTORS.httpClient),
        rpcServer: new Instrument(DESCRIPTORS.rpcServer),
        rpcClient: new Instrument(DESCRIPTORS.rpcClient),
      };
      this._workloads.set(key, w);
    }
    this._lastResource = resource;
    this._lastKey = key;
    this._lastMeters = w;
    return w;
  }
}
