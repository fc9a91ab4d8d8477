import type { HttpRequestHead, HttpResponseHead, Role } from '../http';
import type { HeaderRules } from './headers';
import type { AttributeList } from './record';

/**
 * gRPC calls (HTTP/2 with content-type application/grpc…) as the RPC
 * semantic conventions of 1.45 name them: rpc.system.name = grpc, rpc.method
 * fully qualified (`demo.Greeter/SayHello`), rpc.status_code the code's name
 * (`OK`, `NOT_FOUND`). The names headertap sent before (rpc.system,
 * rpc.service, rpc.grpc.status_code as an int) are deprecated: they ride
 * along only with OTEL_SEMCONV_STABILITY_OPT_IN=rpc/dup. rpc.method keeps its
 * new meaning then too (one key, one value); the method alone is the part
 * after the `/`.
 */
export const ATTR_RPC_SYSTEM_NAME = 'rpc.system.name';
export const ATTR_RPC_METHOD = 'rpc.method';
export const ATTR_RPC_METHOD_ORIGINAL = 'rpc.method_original';
export const ATTR_RPC_STATUS_CODE = 'rpc.status_code';
/** Deprecated names, sent only with rpc/dup. */
export const ATTR_RPC_SYSTEM = 'rpc.system';
export const ATTR_RPC_SERVICE = 'rpc.service';
export const ATTR_RPC_GRPC_STATUS_CODE = 'rpc.grpc.status_code';

/** rpc.method of a call whose method the server does not know, or whose :path names no method. */
export const RPC_METHOD_OTHER = '_OTHER';

/** Every attribute addGrpcAttributes() can set. */
export const GRPC_ATTRIBUTES = [
  ATTR_RPC_SYSTEM_NAME,
  ATTR_RPC_METHOD,
  ATTR_RPC_METHOD_ORIGINAL,
  ATTR_RPC_STATUS_CODE,
  ATTR_RPC_SYSTEM,
  ATTR_RPC_SERVICE,
  ATTR_RPC_GRPC_STATUS_CODE,
];

/** grpc/grpc doc/statuscodes.md, by number. */
const STATUS_NAMES = [
  'OK',
  'CANCELLED',
  'UNKNOWN',
  'INVALID_ARGUMENT',
  'DEADLINE_EXCEEDED',
  'NOT_FOUND',
  'ALREADY_EXISTS',
  'PERMISSION_DENIED',
  'RESOURCE_EXHAUSTED',
  'FAILED_PRECONDITION',
  'ABORTED',
  'OUT_OF_RANGE',
  'UNIMPLEMENTED',
  'INTERNAL',
  'UNAVAILABLE',
  'DATA_LOSS',
  'UNAUTHENTICATED',
];

/** Codes semantic conventions count as errors on the server side (any non-OK code is one for a client). */
const SERVER_ERRORS = new Set([2, 4, 12, 13, 14, 15]);

const GRPC_CONTENT_TYPE = /^application\/grpc(?:$|[+;])/i;
/** :path of a call, `/package.Service/Method`. */
const GRPC_PATH = /^\/([^/?#]+)\/([^/?#]+)$/;
const UNIMPLEMENTED = 12;

function lastValue(headers: readonly string[], name: string): string | undefined {
  for (let i = headers.length - 2; i >= 0; i -= 2) if (headers[i] === name) return headers[i + 1];
  return undefined;
}

export interface GrpcCall {
  /** rpc.method: `Service/Method`, or _OTHER; undefined when :path could not be decoded. */
  method?: string;
  /** The grpc-status, when the call has one. */
  status?: number;
}

/**
 * Adds the rpc.* attributes when the exchange is a gRPC call; returns what
 * severity, error.type, the body and the span name need, or undefined when
 * it is not gRPC. headertap cannot know which methods a server defines, so
 * a method is taken as known unless the server answered UNIMPLEMENTED or
 * :path is not `/Service/Method`: then rpc.method is _OTHER and
 * rpc.method_original what the client asked for (:path without its `/`).
 * `dup` (OTEL_SEMCONV_STABILITY_OPT_IN=rpc/dup) adds the deprecated names.
 */
export function addGrpcAttributes(
  attrs: AttributeList,
  req: HttpRequestHead,
  res: HttpResponseHead | undefined,
  rules: HeaderRules,
  dup: boolean,
): GrpcCall | undefined {
  if (req.version !== '2') return undefined;
  const contentType = lastValue(req.headers, 'content-type') ?? (res && lastValue(res.headers, 'content-type'));
  if (contentType === undefined || !GRPC_CONTENT_TYPE.test(contentType)) return undefined;
  // Trailers follow the headers: the last grpc-status is the call's (a trailers-only response has just one).
  const raw = res && !rules.isSecret('grpc-status') ? lastValue(res.headers, 'grpc-status') : undefined;
  const status = raw !== undefined && /^\d{1,9}$/.test(raw) ? Number(raw) : undefined;
  const path = req.target;
  const m = GRPC_PATH.exec(path);
  const asked = path.charCodeAt(0) === 0x2f ? path.slice(1) : path;
  const method = !path ? undefined : m && status !== UNIMPLEMENTED ? asked : RPC_METHOD_OTHER;
  attrs.push(ATTR_RPC_SYSTEM_NAME, 'grpc');
  if (method !== undefined) attrs.push(ATTR_RPC_METHOD, method);
  if (method === RPC_METHOD_OTHER) attrs.push(ATTR_RPC_METHOD_ORIGINAL, asked);
  if (status !== undefined) attrs.push(ATTR_RPC_STATUS_CODE, STATUS_NAMES[status] ?? raw!);
  if (dup) {
    attrs.push(ATTR_RPC_SYSTEM, 'grpc');
    if (m) attrs.push(ATTR_RPC_SERVICE, m[1]);
    if (status !== undefined) attrs.push(ATTR_RPC_GRPC_STATUS_CODE, status);
  }
  return { method, status };
}

/** Whether a gRPC status is an error for this side of the call (semantic conventions, gRPC). */
export function grpcStatusIsError(status: number, role: Role): boolean {
  return status !== 0 && (role === 'client' || SERVER_ERRORS.has(status));
}

export function grpcStatusName(status: number): string {
  return STATUS_NAMES[status] ?? String(status);
}
