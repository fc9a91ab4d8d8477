import * as path from 'node:path';
import protobuf from 'protobufjs';
import { formatUnixNano, type FlatRecord, type FlatValue } from '../common/flat-record';
import type { FlatSpan, FlatSpanKind, FlatStatusCode } from '../common/flat-span';
import { PROTO_DIR } from '../common/paths';

interface ServiceTypes {
  request: protobuf.Type;
  response: protobuf.Type;
}

const cached = new Map<string, ServiceTypes>();

/** An OTLP collector service's request/response types, from proto/ (loaded once). */
function serviceTypes(signal: 'logs' | 'trace' | 'metrics', request: string, response: string): ServiceTypes {
  let types = cached.get(signal);
  if (!types) {
    const root = new protobuf.Root();
    root.resolvePath = (_origin, target) => path.join(PROTO_DIR, target);
    root.loadSync(`opentelemetry/proto/collector/${signal}/v1/${signal}_service.proto`, { keepCase: true });
    const pkg = `opentelemetry.proto.collector.${signal}.v1`;
    types = { request: root.lookupType(`${pkg}.${request}`), response: root.lookupType(`${pkg}.${response}`) };
    cached.set(signal, types);
  }
  return types;
}

/** The OTLP logs request/response types. */
export function logsTypes(): ServiceTypes {
  return serviceTypes('logs', 'ExportLogsServiceRequest', 'ExportLogsServiceResponse');
}

/** The OTLP trace request/response types. */
export function tracesTypes(): ServiceTypes {
  return serviceTypes('trace', 'ExportTraceServiceRequest', 'ExportTraceServiceResponse');
}

/* The decoded message, as protobufjs's toObject() gives it (keepCase, longs as strings). */
interface AnyValue {
  string_value?: string;
  bool_value?: boolean;
  int_value?: string;
  double_value?: number;
  array_value?: { values?: AnyValue[] };
  kvlist_value?: { values?: KeyValue[] };
  bytes_value?: Buffer;
}
interface KeyValue {
  key: string;
  value?: AnyValue;
}
interface LogRecordMsg {
  time_unix_nano?: string;
  observed_time_unix_nano?: string;
  severity_number?: number;
  severity_text?: string;
  body?: AnyValue;
  attributes?: KeyValue[];
  dropped_attributes_count?: number;
  flags?: number;
  trace_id?: Buffer;
  span_id?: Buffer;
  event_name?: string;
}
interface ExportRequest {
  resource_logs?: {
    resource?: { attributes?: KeyValue[] };
    scope_logs?: { scope?: { name?: string; version?: string }; log_records?: LogRecordMsg[] }[];
  }[];
}

function anyValue(v: AnyValue | undefined): FlatValue {
  if (!v) return null;
  if (v.string_value !== undefined) return v.string_value;
  if (v.bool_value !== undefined) return v.bool_value;
  if (v.int_value !== undefined) {
    const n = Number(v.int_value);
    return Number.isSafeInteger(n) ? n : v.int_value;
  }
  if (v.double_value !== undefined) return v.double_value;
  if (v.array_value !== undefined) return (v.array_value.values ?? []).map(anyValue);
  if (v.kvlist_value !== undefined) return keyValues(v.kvlist_value.values);
  if (v.bytes_value !== undefined) return Buffer.from(v.bytes_value).toString('base64');
  return null;
}

function keyValues(kvs: KeyValue[] | undefined): Record<string, FlatValue> {
  const out: Record<string, FlatValue> = {};
  for (const kv of kvs ?? []) out[kv.key] = anyValue(kv.value);
  return out;
}

function hex(b: Buffer | undefined): string | undefined {
  return b && b.length ? Buffer.from(b).toString('hex') : undefined;
}

/** An instrumentation scope as printed: its name, and its version when it has one. */
function flatScope(scope: { name?: string; version?: string } | undefined): { name: string; version?: string } | undefined {
  if (scope?.name === undefined) return undefined;
  return { name: scope.name, ...(scope.version ? { version: scope.version } : {}) };
}

/** Decodes an ExportLogsServiceRequest to printable records; throws on malformed bytes. */
export function decodeLogsRequest(bytes: Uint8Array): FlatRecord[] {
  const { request } = logsTypes();
  const msg = request.toObject(request.decode(bytes), { longs: String, bytes: Buffer, defaults: false }) as ExportRequest;
  const out: FlatRecord[] = [];
  for (const rl of msg.resource_logs ?? []) {
    const resource = keyValues(rl.resource?.attributes);
    for (const sl of rl.scope_logs ?? []) {
      const scope = flatScope(sl.scope);
      for (const r of sl.log_records ?? []) {
        const traceId = hex(r.trace_id);
        out.push({
          time: formatUnixNano(BigInt(r.time_unix_nano ?? '0')),
          ...(r.observed_time_unix_nano ? { observed_time: formatUnixNano(BigInt(r.observed_time_unix_nano)) } : {}),
          ...(r.severity_text !== undefined ? { severity_text: r.severity_text } : {}),
          ...(r.severity_number !== undefined ? { severity_number: r.severity_number } : {}),
          ...(r.event_name ? { event_name: r.event_name } : {}),
          body: anyValue(r.body),
          ...(traceId ? { trace_id: traceId, span_id: hex(r.span_id) ?? '', trace_flags: (r.flags ?? 0) & 0xff } : {}),
          resource,
          ...(scope ? { scope } : {}),
          attributes: keyValues(r.attributes),
          ...(r.dropped_attributes_count ? { dropped_attributes_count: r.dropped_attributes_count } : {}),
        });
      }
    }
  }
  return out;
}

interface SpanMsg {
  trace_id?: Buffer;
  span_id?: Buffer;
  trace_state?: string;
  parent_span_id?: Buffer;
  flags?: number;
  name?: string;
  kind?: number;
  start_time_unix_nano?: string;
  end_time_unix_nano?: string;
  attributes?: KeyValue[];
  status?: { code?: number; message?: string };
}
interface ExportTraceRequest {
  resource_spans?: {
    resource?: { attributes?: KeyValue[] };
    scope_spans?: { scope?: { name?: string; version?: string }; spans?: SpanMsg[] }[];
  }[];
}

const SPAN_KINDS: FlatSpanKind[] = ['UNSPECIFIED', 'INTERNAL', 'SERVER', 'CLIENT', 'PRODUCER', 'CONSUMER'];
const STATUS_CODES: FlatStatusCode[] = ['UNSET', 'OK', 'ERROR'];

/** Decodes an ExportTraceServiceRequest to printable spans; throws on malformed bytes. */
export function decodeTracesRequest(bytes: Uint8Array): FlatSpan[] {
  const { request } = tracesTypes();
  const msg = request.toObject(request.decode(bytes), { longs: String, bytes: Buffer, defaults: false }) as ExportTraceRequest;
  const out: FlatSpan[] = [];
  for (const rs of msg.resource_spans ?? []) {
    const resource = keyValues(rs.resource?.attributes);
    for (const ss of rs.scope_spans ?? []) {
      const scope = flatScope(ss.scope);
      for (const s of ss.spans ?? []) {
        const start = BigInt(s.start_time_unix_nano ?? '0');
        const end = BigInt(s.end_time_unix_nano ?? '0');
        const parent = hex(s.parent_span_id);
        out.push({
          trace_id: hex(s.trace_id) ?? '',
          span_id: hex(s.span_id) ?? '',
          ...(parent ? { parent_span_id: parent } : {}),
          ...(s.trace_state ? { trace_state: s.trace_state } : {}),
          trace_flags: (s.flags ?? 0) & 0xff,
          name: s.name ?? '',
          kind: SPAN_KINDS[s.kind ?? 0] ?? 'UNSPECIFIED',
          start_time: formatUnixNano(start),
          end_time: formatUnixNano(end),
          duration_ns: Number(end - start),
          status: {
            code: STATUS_CODES[s.status?.code ?? 0] ?? 'UNSET',
            ...(s.status?.message ? { message: s.status.message } : {}),
          },
          resource,
          ...(scope ? { scope } : {}),
          attributes: keyValues(s.attributes),
        });
      }
    }
  }
  return out;
}

/** An empty ExportLogsServiceResponse or ExportTraceServiceResponse: full success. */
export const EMPTY_RESPONSE = Buffer.alloc(0);

function metricsRequestType(): protobuf.Type {
  return serviceTypes('metrics', 'ExportMetricsServiceRequest', 'ExportMetricsServiceResponse').request;
}

/** One data point of a sum, gauge or histogram, with where it came from. */
export interface MetricPoint {
  resource: Record<string, FlatValue>;
  scope?: string;
  name: string;
  unit?: string;
  kind: 'sum' | 'gauge' | 'histogram';
  attributes: Record<string, FlatValue>;
  /** The number; for a histogram its count. */
  value: number;
  /** A histogram's buckets, sum, min and max. */
  histogram?: HistogramPoint;
  /** 1 delta, 2 cumulative (sums and histograms). */
  temporality?: number;
  /** Nanoseconds since the epoch, as decimal strings. */
  startTimeUnixNano?: string;
  timeUnixNano?: string;
}

export interface HistogramPoint {
  count: number;
  sum?: number;
  min?: number;
  max?: number;
  /** Upper bounds; bucketCounts has one more entry (the last bucket has no bound). */
  explicitBounds: number[];
  bucketCounts: number[];
}

interface HistogramPointMsg {
  attributes?: KeyValue[];
  count?: string;
  sum?: number;
  min?: number;
  max?: number;
  bucket_counts?: string[];
  explicit_bounds?: number[];
  start_time_unix_nano?: string;
  time_unix_nano?: string;
}

interface NumberPointMsg {
  attributes?: KeyValue[];
  as_double?: number;
  as_int?: string;
}
interface MetricsRequest {
  resource_metrics?: {
    resource?: { attributes?: KeyValue[] };
    scope_metrics?: {
      scope?: { name?: string };
      metrics?: {
        name: string;
        unit?: string;
        sum?: { data_points?: NumberPointMsg[]; aggregation_temporality?: number };
        gauge?: { data_points?: NumberPointMsg[] };
        histogram?: { data_points?: HistogramPointMsg[]; aggregation_temporality?: number };
      }[];
    }[];
  }[];
}

/** Decodes an ExportMetricsServiceRequest to its sum, gauge and (explicit-bucket) histogram points; throws on malformed bytes. */
export function decodeMetricsRequest(bytes: Uint8Array): MetricPoint[] {
  const type = metricsRequestType();
  const msg = type.toObject(type.decode(bytes), { longs: String, defaults: false }) as MetricsRequest;
  const out: MetricPoint[] = [];
  for (const rm of msg.resource_metrics ?? []) {
    const resource = keyValues(rm.resource?.attributes);
    for (const sm of rm.scope_metrics ?? []) {
      for (const m of sm.metrics ?? []) {
        for (const p of m.histogram?.data_points ?? []) {
          const count = Number(p.count ?? 0);
          out.push({
            resource,
            ...(sm.scope?.name ? { scope: sm.scope.name } : {}),
            name: m.name,
            ...(m.unit ? { unit: m.unit } : {}),
            kind: 'histogram',
            attributes: keyValues(p.attributes),
            value: count,
            histogram: {
              count,
              ...(p.sum !== undefined ? { sum: p.sum } : {}),
              ...(p.min !== undefined ? { min: p.min } : {}),
              ...(p.max !== undefined ? { max: p.max } : {}),
              explicitBounds: p.explicit_bounds ?? [],
              bucketCounts: (p.bucket_counts ?? []).map(Number),
            },
            ...(m.histogram?.aggregation_temporality !== undefined ? { temporality: m.histogram.aggregation_temporality } : {}),
            ...(p.start_time_unix_nano ? { startTimeUnixNano: p.start_time_unix_nano } : {}),
            ...(p.time_unix_nano ? { timeUnixNano: p.time_unix_nano } : {}),
          });
        }
        const kind = m.sum ? 'sum' : m.gauge ? 'gauge' : undefined;
        if (!kind) continue;
        for (const p of (m.sum ?? m.gauge)?.data_points ?? []) {
          out.push({
            resource,
            ...(sm.scope?.name ? { scope: sm.scope.name } : {}),
            name: m.name,
            ...(m.unit ? { unit: m.unit } : {}),
            kind,
            attributes: keyValues(p.attributes),
            value: p.as_double ?? Number(p.as_int ?? 0),
            ...(m.sum?.aggregation_temporality !== undefined ? { temporality: m.sum.aggregation_temporality } : {}),
          });
        }
      }
    }
  }
  return out;
}

/** One short line for a metrics export: who sent it, how many points, the non-zero sums and gauges, each histogram's series and count. */
export function metricsLine(points: readonly MetricPoint[]): string {
  const services = [...new Set(points.map((p) => String(p.resource['service.name'] ?? 'unknown')))];
  const histograms = new Map<string, { series: number; count: number }>();
  for (const p of points) {
    if (p.kind !== 'histogram') continue;
    const h = histograms.get(p.name) ?? { series: 0, count: 0 };
    h.series++;
    h.count += p.value;
    histograms.set(p.name, h);
  }
  const nonZero = points
    .filter((p) => p.value !== 0 && p.kind !== 'histogram')
    .map((p) => {
      const attrs = Object.entries(p.attributes).map(([k, v]) => `${k}=${String(v)}`);
      return `${p.name}${attrs.length ? `{${attrs.join(',')}}` : ''}=${p.value}`;
    });
  for (const [name, h] of histograms) nonZero.push(`${name} ${h.count} in ${h.series} series`);
  return `metrics from ${services.join(', ') || 'unknown'}: ${points.length} points${nonZero.length ? `; ${nonZero.join(' ')}` : ', all zero'}`;
}
