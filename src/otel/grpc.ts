import type { HttpRequestHead, HttpResponseHead, Role } from '../http';
import type { HeaderRules } from './headers';
import type { AttributeList } from './record';

/**
 * gRPC calls (HTTP/2 with content-type application/grpc…) as RPC semantic
 * conventions. DESIGN.md's contract names rpc.system, rpc.service, rpc.method
 * (the method alone) and rpc.grpc.status_code (int); semantic conventions
 * 1.38+ renamed these, so the current names ride along: rpc.system.name and
 * rpc.status_code (the code's name, e.g. NOT_FOUND). rpc.method keeps the
 * contract's meaning.
 */
export const ATTR_RPC_SYSTEM = 'rpc.system';
export const ATTR_RPC_SYSTEM_NAME = 'rpc.system.name';
export const ATTR_RPC_SERVICE = 'rpc.service';
export const ATTR_RPC_METHOD = 'rpc.method';
export const ATTR_RPC_GRPC_STATUS_CODE = 'rpc.grpc.status_code';
export const ATTR_RPC_STATUS_CODE = 'rpc.status_code';

/** Every attribute addGrpcAttributes() can set. */
export const GRPC_ATTRIBUTES = [ATTR_RPC_SYSTEM, ATTR_RPC_SYSTEM_NAME, ATTR_RPC_SERVICE, ATTR_RPC_METHOD, ATTR_RPC_GRPC_STATUS_CODE, ATTR_RPC_STATUS_CODE];

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
const GRPC_PATH = /^\/([^/?#]+)\/([^/?#]+)$/;

function lastValue(headers: readonly string[], name: string): string | undefined {
  for (let i = headers.length - 2; i >= 0; i -= 2) if (headers[i] === name) return headers[i + 1];
  return undefined;
}

export interface GrpcCall {
  status?: number;
}

/**
 * Adds the rpc.* attributes when the exchange is a gRPC call; returns what
 * severity and body need, or undefined when it is not gRPC.
 */
export function addGrpcAttributes(attrs: AttributeList, req: HttpRequestHead, res: HttpResponseHead | undefined, rules: HeaderRules): GrpcCall | undefined {
  if (req.version !== '2') return undefined;
  const contentType = lastValue(req.headers, 'content-type') ?? (res && lastValue(res.headers, 'content-type'));
  if (contentType === undefined || !GRPC_CONTENT_TYPE.test(contentType)) return undefined;
  attrs.push(ATTR_RPC_SYSTEM, 'grpc', ATTR_RPC_SYSTEM_NAME, 'grpc');
  const m = GRPC_PATH.exec(req.target);
  if (m) attrs.push(ATTR_RPC_SERVICE, m[1], ATTR_RPC_METHOD, m[2]);
  // Trailers follow the headers: the last grpc-status is the call's (a trailers-only response has just one).
  const raw = res && !rules.isSecret('grpc-status') ? lastValue(res.headers, 'grpc-status') : undefined;
  if (raw === undefined || !/^\d{1,9}$/.test(raw)) return {};
  const status = Number(raw);
  attrs.push(ATTR_RPC_GRPC_STATUS_CODE, status, ATTR_RPC_STATUS_CODE, STATUS_NAMES[status] ?? raw);
  return { status };
}

/** Whether a gRPC status is an error for this side of the call (semantic conventions, gRPC). */
export function grpcStatusIsError(status: number, role: Role): boolean {
  return status !== 0 && (role === 'client' || SERVER_ERRORS.has(status));
}

export function grpcStatusName(status: number): string {
  return STATUS_NAMES[status] ?? String(status);
}
