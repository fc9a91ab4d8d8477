/**
 * A real OTLP receiver for tests: the embedded receiver (@grpc/grpc-js server
 * and OTLP/HTTP endpoint) keeping every request's raw protobuf bytes and its
 * decoded records, with a wait for the records a test expects.
 */
import type { FlatRecord } from '../../src/common/flat-record';
import { OtlpReceiver, type MetricPoint, type ReceivedBatch } from '../../src/receiver';
import { logsTypes } from '../../src/receiver/decode';

export interface OtlpSink {
  /** http://host:port to export to (gRPC) or the OTLP/HTTP base URL. */
  endpoint: string;
  grpcPort?: number;
  httpPort?: number;
  batches: ReceivedBatch[];
  /** Sum and gauge points of every metrics export (headertap's self-metrics). */
  metrics: MetricPoint[];
  records(): FlatRecord[];
  /** Resolves with all records once `done(records)` holds; rejects after timeoutMs. */
  waitFor(done: (records: FlatRecord[]) => boolean, timeoutMs?: number, what?: string): Promise<FlatRecord[]>;
  stop(): Promise<void>;
}

/** port 0 picks a free one; a fixed port lets a test stop the sink and start another where the first was. */
export async function startOtlpSink(transport: 'grpc' | 'http' = 'grpc', host = '127.0.0.1', port = 0): Promise<OtlpSink> {
  const batches: ReceivedBatch[] = [];
  const metrics: MetricPoint[] = [];
  let wake = () => {};
  const receiver = new OtlpReceiver({
    ...(transport === 'grpc' ? { grpcListen: `${host}:${port}` } : { httpListen: `${host}:${port}` }),
    onBatch: (b) => {
      batches.push(b);
      wake();
    },
    onMetrics: (points) => {
      metrics.push(...points);
      wake();
    },
  });
  const bound = await receiver.start();
  const addr = (transport === 'grpc' ? bound.grpc : bound.http)!;
  const boundPort = Number(addr.slice(addr.lastIndexOf(':') + 1));
  const records = () => batches.flatMap((b) => b.records);
  return {
    endpoint: `http://${addr}`,
    ...(transport === 'grpc' ? { grpcPort: boundPort } : { httpPort: boundPort }),
    batches,
    metrics,
    records,
    waitFor(done, timeoutMs = 15000, what = 'expected records') {
      return new Promise((resolve, reject) => {
        const check = () => {
          if (done(records())) {
            clearTimeout(timer);
            wake = () => {};
            resolve(records());
          }
        };
        const timer = setTimeout(() => {
          wake = () => {};
          const got = records().map((r) => `${String(r.attributes['headertap.role'])} ${String(r.body)}`);
          reject(new Error(`timed out after ${timeoutMs} ms waiting for ${what}; received ${got.length}${got.length > 20 ? ', the last 20' : ''}: ${got.slice(-20).join(' | ')}`));
        }, timeoutMs);
        wake = check;
        check();
      });
    },
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
