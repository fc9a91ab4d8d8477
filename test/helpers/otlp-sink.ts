/**
 * A real OTLP receiver for tests: the embedded receiver (@grpc/grpc-js server
 * and OTLP/HTTP endpoint) keeping every request's raw protobuf bytes and its
 * decoded records and spans, with a wait for what a test expects.
 */
import type { FlatRecord } from '../../src/common/flat-record';
import type { FlatSpan } from '../../src/common/flat-span';
import { OtlpReceiver, type ReceivedBatch } from '../../src/receiver';
import type { MetricPoint } from '../../src/receiver/decode';
import { logsTypes } from '../../src/receiver/decode';

export interface OtlpSink {
  /** http://host:port to export to (gRPC) or the OTLP/HTTP base URL. */
  endpoint: string;
  grpcPort?: number;
  httpPort?: number;
  batches: ReceivedBatch[];
  /** Sum, gauge and histogram points of every metrics export (self-metrics, request metrics). */
  metrics: MetricPoint[];
  records(): FlatRecord[];
  /** Spans received over the OTLP trace service. */
  spans(): FlatSpan[];
  /** Resolves with all records once `done(records)` holds; rejects after timeoutMs. */
  waitFor(done: (records: FlatRecord[]) => boolean, timeoutMs?: number, what?: string): Promise<FlatRecord[]>;
  /** Resolves with every metric point once `done(points)` holds. */
  waitForMetrics(done: (points: MetricPoint[]) => boolean, timeoutMs?: number, what?: string): Promise<MetricPoint[]>;
  /** The same for spans. */
  waitForSpans(done: (spans: FlatSpan[]) => boolean, timeoutMs?: number, what?: string): Promise<FlatSpan[]>;
  stop(): Promise<void>;
}

/** port 0 picks a free one; a fixed port lets a test stop the sink and start another where the first was. */
export async function startOtlpSink(transport: 'grpc' | 'http' = 'grpc', host = '127.0.0.1', port = 0): Promise<OtlpSink> {
  const batches: ReceivedBatch[] = [];
  const metrics: MetricPoint[] = [];
  const waiters = new Set<() => void>();
  const receiver = new OtlpReceiver({
    ...(transport === 'grpc' ? { grpcListen: `${host}:${port}` } : { httpListen: `${host}:${port}` }),
    onBatch: (b) => {
      batches.push(b);
      for (const wake of [...waiters]) wake();
    },
    onMetrics: (points) => {
      metrics.push(...points);
      for (const wake of [...waiters]) wake();
    },
  });
  const bound = await receiver.start();
  const addr = (transport === 'grpc' ? bound.grpc : bound.http)!;
  const boundPort = Number(addr.slice(addr.lastIndexOf(':') + 1));
  const records = () => batches.flatMap((b) => b.records);
  const spans = () => batches.flatMap((b) => b.spans);
  /** Resolves once done(items()) holds, re-checked on every batch. */
  const waitUntil = <T>(items: () => T[], done: (xs: T[]) => boolean, timeoutMs: number, what: string, show: (x: T) => string) =>
    new Promise<T[]>((resolve, reject) => {
      const check = () => {
        if (!done(items())) return;
        clearTimeout(timer);
        waiters.delete(check);
        resolve(items());
      };
      const timer = setTimeout(() => {
        waiters.delete(check);
        const got = items().map(show);
        reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; received ${got.length}${got.length > 20 ? ', the last 20' : ''}: ${got.slice(-20).join(' | ')}`));
      }, timeoutMs);
      waiters.add(check);
      check();
    });
  return {
    endpoint: `http://${addr}`,
    ...(transport === 'grpc' ? { grpcPort: boundPort } : { httpPort: boundPort }),
    batches,
    metrics,
    records,
    spans,
    waitFor: (done, timeoutMs = 15000, what = 'expected records') =>
      waitUntil(records, done, timeoutMs, what, (r) => `${String(r.attributes['headertap.role'])} ${String(r.body)}`),
    waitForMetrics: (done, timeoutMs = 15000, what = 'expected metrics') =>
      waitUntil(() => metrics, done, timeoutMs, what, (p) => `${p.name}${JSON.stringify(p.attributes)}=${p.value}`),
    waitForSpans: (done, timeoutMs = 15000, what = 'expected spans') =>
      waitUntil(spans, done, timeoutMs, what, (s) => `${s.kind} ${s.name} ${String(s.attributes['url.path'])}`),
    stop: () => receiver.stop(),
  };
}

/**
 * The resources of one export request, one entry per resource_logs, decoded
 * from the raw protobuf bytes the receiver got (not from the flattened records).
 */
export function resourceLogsOf(raw: Buffer): { resource: Record<string, unknown>; records: number }[] {
  const { request } = logsTypes();
  const msg = request.toObject(request.decode(raw), { longs: Number, defaults: false }) as {
    resource_logs?: {
      resource?: { attributes?: { key: string; value?: Record<string, unknown> }[] };
      scope_logs?: { log_records?: unknown[] }[];
    }[];
  };
  return (msg.resource_logs ?? []).map((rl) => ({
    resource: Object.fromEntries((rl.resource?.attributes ?? []).map((kv) => [kv.key, Object.values(kv.value ?? {})[0]])),
    records: (rl.scope_logs ?? []).reduce((n, sl) => n + (sl.log_records?.length ?? 0), 0),
  }));
}
