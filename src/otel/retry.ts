/**
 * Which export failures are worth retrying, and when. The OTLP exporters
 * report failures as errors of three shapes: a @grpc/grpc-js ServiceError
 * (numeric gRPC `code`, `metadata`), an OTLPExporterError (HTTP status in
 * `code`, or no code once the HTTP exporter's own retries ran out), or a
 * Node network error (string `code` such as ECONNREFUSED).
 */
import protobuf from 'protobufjs';

/** gRPC status codes the OTLP specification calls retryable. */
const RETRYABLE_GRPC = new Map<number, string>([
  [1, 'CANCELLED'],
  [4, 'DEADLINE_EXCEEDED'],
  [8, 'RESOURCE_EXHAUSTED'],
  [10, 'ABORTED'],
  [11, 'OUT_OF_RANGE'],
  [14, 'UNAVAILABLE'],
  [15, 'DATA_LOSS'],
]);

/** HTTP statuses the OTLP specification calls retryable. */
const RETRYABLE_HTTP = new Set([429, 502, 503, 504]);

const RETRYABLE_NETWORK = new Set([
  'ECONNRESET',
  'ECONNREFUSED',
  'EPIPE',
  'ETIMEDOUT',
  'EAI_AGAIN',
  'ENOTFOUND',
  'ENETUNREACH',
  'EHOSTUNREACH',
  'ECONNABORTED',
]);

/** Messages of errors the exporters make themselves for conditions that pass. */
const RETRYABLE_MESSAGES = [
  /retryable status/i, // OTLPExporterError after the HTTP exporter's own retries
  /request timed out/i,
  /concurrent export limit reached/i,
  /no answer from the exporter/i,
];

/**
 * Messages of failures where the request went out and no answer came in
 * time: the OTLP/HTTP exporter's socket timeout, and delivery's own guard.
 */
const TIMEOUT_MESSAGES = [/request timed out/i, /no answer from the exporter/i];

const HTTP_PAYLOAD_TOO_LARGE = 413;
const GRPC_DEADLINE_EXCEEDED = 4;
const GRPC_RESOURCE_EXHAUSTED = 8;

export interface FailureClass {
  retryable: boolean;
  /** A delay the server asked for (gRPC RetryInfo, HTTP Retry-After), ms. */
  serverDelayMs?: number;
  /** Short name of the failure: UNAVAILABLE, http 503, ECONNREFUSED, … */
  kind: string;
  /**
   * The collector refused the request for its size (HTTP 413, or gRPC
   * RESOURCE_EXHAUSTED without RetryInfo: grpc-go, grpc-js and grpcio answer
   * so to a message over their receive limit, 4 MiB by default). Sending it
   * again unchanged fails the same way: split it instead.
   */
  tooLarge?: boolean;
  /**
   * No answer in time to a request that went out: the collector may have
   * stored it (a collector slower than the timeout), so sending it again can
   * duplicate its records.
   */
  timedOut?: boolean;
}

export const RETRY_INFO_TYPE = 'type.googleapis.com/google.rpc.RetryInfo';

/**
 * The retry delay in a gRPC `grpc-status-details-bin` trailer: a
 * google.rpc.Status whose details hold a google.rpc.RetryInfo.
 */
export function retryInfoDelayMs(statusDetails: Uint8Array): number | undefined {
  try {
    const status = protobuf.Reader.create(statusDetails);
    while (status.pos < status.len) {
      const tag = status.uint32();
      if (tag >>> 3 !== 3 || (tag & 7) !== 2) {
        status.skipType(tag & 7);
        continue;
      }
      const any = protobuf.Reader.create(status.bytes());
      let typeUrl = '';
      let value: Uint8Array | undefined;
      while (any.pos < any.len) {
        const t = any.uint32();
        if (t === (1 << 3) + 2) typeUrl = any.string();
        else if (t === (2 << 3) + 2) value = any.bytes();
        else any.skipType(t & 7);
      }
      if (typeUrl !== RETRY_INFO_TYPE || !value) continue;
      const info = protobuf.Reader.create(value);
      while (info.pos < info.len) {
        const t = info.uint32();
        if (t !== (1 << 3) + 2) {
          info.skipType(t & 7);
          continue;
        }
        const duration = protobuf.Reader.create(info.bytes());
        let seconds = 0;
        let nanos = 0;
        while (duration.pos < duration.len) {
          const d = duration.uint32();
          if (d === 1 << 3) seconds = Number(duration.int64().toString());
          else if (d === 2 << 3) nanos = duration.int32();
          else duration.skipType(d & 7);
        }
        return Math.max(0, seconds * 1000 + Math.round(nanos / 1e6));
      }
    }
  } catch {
    // a malformed trailer is no reason to fail the retry decision
  }
  return undefined;
}

interface MetadataLike {
  get(key: string): unknown[];
}

function isGrpcError(err: object): err is { code: number; metadata?: MetadataLike } {
  return 'code' in err && typeof err.code === 'number' && 'metadata' in err && (err as { name?: string }).name !== 'OTLPExporterError';
}

/**
 * A gRPC DEADLINE_EXCEEDED for a call that never reached a connection:
 * @grpc/grpc-js says "Waiting for LB pick" in the status details when no
 * connection was ready before the deadline (a call that got one names its
 * `remote_addr`). Nothing was sent, so a retry cannot duplicate anything.
 */
function neverSent(message: string): boolean {
  return /waiting for LB pick/i.test(message);
}

/** Decides whether an export error is worth retrying, and after how long at least. */
export function classifyExportError(err: unknown): FailureClass {
  if (typeof err !== 'object' || err === null) return { retryable: false, kind: String(err) };
  const e = err as { code?: unknown; message?: string; name?: string };
  const message = e.message ?? '';
  if (isGrpcError(err)) {
    const name = RETRYABLE_GRPC.get(err.code);
    if (!name) return { retryable: false, kind: `gRPC status ${err.code}` };
    const details = err.metadata?.get('grpc-status-details-bin')?.[0];
    const delay = details instanceof Uint8Array ? retryInfoDelayMs(details) : undefined;
    if (err.code === GRPC_RESOURCE_EXHAUSTED && delay === undefined) return { retryable: false, kind: name, tooLarge: true };
    return {
      retryable: true,
      kind: name,
      ...(delay !== undefined ? { serverDelayMs: delay } : {}),
      ...(err.code === GRPC_DEADLINE_EXCEEDED && !neverSent(message) ? { timedOut: true } : {}),
    };
  }
  if (typeof e.code === 'number') {
    if (e.code === HTTP_PAYLOAD_TOO_LARGE) return { retryable: false, kind: `HTTP ${e.code}`, tooLarge: true };
    return { retryable: RETRYABLE_HTTP.has(e.code), kind: `HTTP ${e.code}` };
  }
  if (typeof e.code === 'string') return { retryable: RETRYABLE_NETWORK.has(e.code), kind: e.code };
  if (RETRYABLE_MESSAGES.some((re) => re.test(message))) {
    return { retryable: true, kind: message.split('\n')[0], ...(TIMEOUT_MESSAGES.some((re) => re.test(message)) ? { timedOut: true } : {}) };
  }
  return { retryable: false, kind: message.split('\n')[0] || (e.name ?? 'error') };
}

export interface BackoffOptions {
  /** First retry delay, ms. */
  initialMs: number;
  /** Longest delay, ms. */
  maxMs: number;
  multiplier: number;
  /** Each delay is scaled by a random factor in [1 - jitter, 1 + jitter]. */
  jitter: number;
}

export const BACKOFF_DEFAULTS: BackoffOptions = { initialMs: 500, maxMs: 30_000, multiplier: 2, jitter: 0.2 };

/** Exponential backoff with jitter: the delay before retry number `attempt` (0-based). */
export function backoffDelay(attempt: number, o: BackoffOptions, random: () => number = Math.random): number {
  const base = Math.min(o.maxMs, o.initialMs * o.multiplier ** Math.min(attempt, 64));
  const factor = 1 - o.jitter + 2 * o.jitter * random();
  return Math.max(0, Math.round(Math.min(o.maxMs, base * factor)));
}
