import type { HrTime, SpanContext } from '@opentelemetry/api';
import { SeverityNumber, type LogAttributes } from '@opentelemetry/api-logs';
import {
  ATTR_CLIENT_ADDRESS,
  ATTR_CLIENT_PORT,
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_REQUEST_METHOD_ORIGINAL,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_NETWORK_LOCAL_ADDRESS,
  ATTR_NETWORK_LOCAL_PORT,
  ATTR_NETWORK_PEER_ADDRESS,
  ATTR_NETWORK_PEER_PORT,
  ATTR_NETWORK_PROTOCOL_NAME,
  ATTR_NETWORK_PROTOCOL_VERSION,
  ATTR_NETWORK_TRANSPORT,
  ATTR_NETWORK_TYPE,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  ATTR_URL_PATH,
  ATTR_URL_QUERY,
  ATTR_URL_SCHEME,
  ATTR_USER_AGENT_ORIGINAL,
} from '@opentelemetry/semantic-conventions';
import type { Endpoint, HeaderList, HttpExchange, HttpMessageHead, Role } from '../http';
import type { ProcessInfo } from '../workload';
import { addGrpcAttributes, grpcStatusIsError, grpcStatusName } from './grpc';
import { HeaderAction, type HeaderRules, type HeaderSide } from './headers';
import type { RulesFor } from './scoped-rules';
import { redactHeaderValue, redactQuery } from './redact';
import { extractSpanContext } from './trace-context';

/** Incubating semantic conventions, copied as the package recommends. */
export const ATTR_PROCESS_PID = 'process.pid';
export const ATTR_PROCESS_EXECUTABLE_NAME = 'process.executable.name';
export const ATTR_CONTAINER_ID = 'container.id';

/** headertap's own attributes (DESIGN.md, log-record contract). */
export const ATTR_HT_ROLE = 'headertap.role';
export const ATTR_HT_DURATION_NS = 'headertap.duration_ns';
export const ATTR_HT_TRUNCATED = 'headertap.truncated';
export const ATTR_HT_TRUNCATED_REASON = 'headertap.truncated_reason';
export const ATTR_HT_UNANSWERED_REASON = 'headertap.unanswered_reason';

export const EVENT_NAME = 'headertap.http.exchange';

/** One log record's worth of fields, ready for Logger.emit(). */
export interface ExchangeRecord {
  eventName: string;
  timestamp: HrTime;
  severityNumber: SeverityNumber;
  severityText: string;
  body: string;
  attributes: LogAttributes;
  spanContext?: SpanContext;
  /** The observed process: its records go under its own OTLP resource. */
  workload?: ProcessInfo;
  /** At least the number of attributes (so a consumer need not count them). */
  maxAttributes?: number;
}

/** More than the attributes map() sets besides the header ones. */
const NON_HEADER_ATTRIBUTES_MAX = 128;

export interface MapperOptions {
  /** Asked once per record: a HeaderRules, or scoped rules swapped whole by live reloads (src/otel/scoped-rules.ts). */
  rules: RulesFor;
  /** CLOCK_MONOTONIC ns to wall-clock time. */
  toHrTime(monoNs: number): HrTime;
  /** Facts about the observing process. */
  processInfo(pid: number, comm: string): ProcessInfo;
}

/** Header attribute keys remembered per side. */
const MAX_HEADER_KEYS = 1024;

/** Methods semantic conventions name; others are reported as _OTHER. */
const KNOWN_METHODS = new Set(['CONNECT', 'DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT', 'QUERY', 'TRACE']);

interface Target {
  path?: string;
  query?: string;
  /** host[:port] from an absolute-form or authority-form target. */
  authority?: string;
}

/** The request-target's parts; userinfo in absolute URLs is never kept. */
export function splitTarget(target: string, method: string): Target {
  if (method === 'CONNECT') return { authority: target };
  if (target === '*') return { path: '*' };
  let rest = target;
  let authority: string | undefined;
  const abs = /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/([^/?#]*)/.exec(target);
  if (abs) {
    const at = abs[1].lastIndexOf('@');
    authority = at >= 0 ? abs[1].slice(at + 1) : abs[1];
    rest = target.slice(abs[0].length) || '/';
  }
  const hash = rest.indexOf('#');
  if (hash >= 0) rest = rest.slice(0, hash);
  const q = rest.indexOf('?');
  const path = q >= 0 ? rest.slice(0, q) : rest;
  const query = q >= 0 ? rest.slice(q + 1) : undefined;
  return { path, ...(query ? { query } : {}), ...(authority ? { authority } : {}) };
}

/** "host", "host:port", "[v6]" or "[v6]:port" to its parts. */
export function splitAuthority(authority: string): { host: string; port?: number } | undefined {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+)(?::(\d{1,5}))?$/.exec(authority.trim());
  if (!m) return undefined;
  const host = m[1].startsWith('[') ? m[1].slice(1, -1) : m[1];
  const port = m[2] !== undefined ? Number(m[2]) : undefined;
  return port !== undefined && port <= 65535 ? { host, port } : { host };
}

function firstValue(headers: HeaderList, name: string): string | undefined {
  for (let i = 0; i < headers.length; i += 2) if (headers[i] === name) return headers[i + 1];
  return undefined;
}

/**
 * Maps exchanges to the log-record contract in DESIGN.md: semantic-convention
 * attributes, header attributes after capture/redaction rules, trace context
 * from the request headers, severity from the outcome.
 *
 * HTTP/2 heads carry the pseudo-headers in their fields (method, target =
 * :path, authority, scheme), so they map to the same attributes and never
 * appear as http.request.header.:path: semantic conventions reserve header
 * attributes for real header fields. A field HPACK could not decode is ''
 * (method, target) or 0 (status) and its attribute is left out.
 */
export class ExchangeMapper {
  constructor(private readonly _opts: MapperOptions) {}

  map(ex: HttpExchange): ExchangeRecord {
    const { request: req, response: res, connection: conn } = ex;
    const proc = this._opts.processInfo(conn.pid, conn.comm);
    const rules = this._opts.rules.rulesFor(proc, conn); // the whole record is mapped under these
    const attrs: LogAttributes = {};

    const method = KNOWN_METHODS.has(req.method) ? req.method : '_OTHER';
    if (req.method) attrs[ATTR_HTTP_REQUEST_METHOD] = method;
    if (req.method && method === '_OTHER') attrs[ATTR_HTTP_REQUEST_METHOD_ORIGINAL] = req.method;
    const target = req.target ? splitTarget(req.target, req.method) : {};
    if (target.path !== undefined) attrs[ATTR_URL_PATH] = target.path;
    if (target.query !== undefined) attrs[ATTR_URL_QUERY] = redactQuery(target.query, rules);
    attrs[ATTR_URL_SCHEME] = req.scheme ?? (conn.tls ? 'https' : 'http');
    attrs[ATTR_NETWORK_PROTOCOL_NAME] = 'http';
    attrs[ATTR_NETWORK_PROTOCOL_VERSION] = req.version;
    if (res?.status) attrs[ATTR_HTTP_RESPONSE_STATUS_CODE] = res.status;

    // The server end of the socket is the local one for a server, the remote one for a client.
    const serverEnd: Endpoint | undefined = ex.role === 'server' ? conn.local : conn.remote;
    const clientEnd: Endpoint | undefined = ex.role === 'server' ? conn.remote : conn.local;
    const hostHeader = rules.isSecret('host') ? undefined : (req.authority ?? firstValue(req.headers, 'host'));
    const authority = splitAuthority(target.authority ?? hostHeader ?? '');
    const serverAddress = authority?.host ?? serverEnd?.address;
    if (serverAddress !== undefined) attrs[ATTR_SERVER_ADDRESS] = serverAddress;
    const serverPort = authority?.port ?? serverEnd?.port;
    if (serverPort !== undefined) attrs[ATTR_SERVER_PORT] = serverPort;
    if (clientEnd) {
      attrs[ATTR_CLIENT_ADDRESS] = clientEnd.address;
      attrs[ATTR_CLIENT_PORT] = clientEnd.port;
    }
    if (conn.remote && conn.local) {
      attrs[ATTR_NETWORK_PEER_ADDRESS] = conn.remote.address;
      attrs[ATTR_NETWORK_PEER_PORT] = conn.remote.port;
      attrs[ATTR_NETWORK_LOCAL_ADDRESS] = conn.local.address;
      attrs[ATTR_NETWORK_LOCAL_PORT] = conn.local.port;
    }
    attrs[ATTR_NETWORK_TRANSPORT] = 'tcp';
    if (conn.networkType) attrs[ATTR_NETWORK_TYPE] = conn.networkType;
    const ua = firstValue(req.headers, 'user-agent');
    if (ua !== undefined) attrs[ATTR_USER_AGENT_ORIGINAL] = rules.apply(rules.secret('user-agent'), ua);

    attrs[ATTR_PROCESS_PID] = conn.pid;
    attrs[ATTR_PROCESS_EXECUTABLE_NAME] = proc.executableName;
    if (proc.containerId) attrs[ATTR_CONTAINER_ID] = proc.containerId;

    attrs[ATTR_HT_ROLE] = ex.role;
    if (res) attrs[ATTR_HT_DURATION_NS] = Math.max(0, res.endNs - req.startNs);
    const truncated = req.truncated ?? res?.truncated;
    if (truncated) {
      attrs[ATTR_HT_TRUNCATED] = true;
      attrs[ATTR_HT_TRUNCATED_REASON] = truncated;
    }
    if (ex.unanswered) attrs[ATTR_HT_UNANSWERED_REASON] = ex.unanswered;

    this._addHeaders(attrs, 'request', req, rules);
    if (res) this._addHeaders(attrs, 'response', res, rules);

    const grpc = addGrpcAttributes(attrs, req, res, rules);
    const [severityNumber, severityText] = severity(res?.status, grpc?.status, ex.role);
    const spanContext = extractSpanContext(req.headers);
    const outcome = res ? `${res.status || '?'}${grpc?.status !== undefined ? ` grpc ${grpcStatusName(grpc.status)}` : ''}` : 'no response';
    return {
      eventName: EVENT_NAME,
      timestamp: this._opts.toHrTime(req.startNs),
      severityNumber,
      severityText,
      body: `${req.method || '?'} ${target.path ?? target.authority ?? '?'} -> ${outcome}`,
      attributes: attrs,
      ...(spanContext ? { spanContext } : {}),
      workload: proc,
      maxAttributes: NON_HEADER_ATTRIBUTES_MAX + (req.headers.length + (res?.headers.length ?? 0)) / 2,
    };
  }

  /** http.{request,response}.header.<name>, built once per name: most records repeat the same few dozen. */
  private readonly _headerKeys: Record<HeaderSide, Map<string, string>> = { request: new Map(), response: new Map() };

  private _headerKey(side: HeaderSide, name: string): string {
    const key = (side === 'request' ? 'http.request.header.' : 'http.response.header.') + name;
    const keys = this._headerKeys[side];
    if (keys.size >= MAX_HEADER_KEYS) keys.clear(); // names are attacker-controlled
    keys.set(name, key);
    return key;
  }

  private _addHeaders(attrs: LogAttributes, side: HeaderSide, head: HttpMessageHead, rules: HeaderRules): void {
    const h = head.headers;
    const keys = this._headerKeys[side];
    for (let i = 0; i < h.length; i += 2) {
      const action = rules.action(h[i], side);
      if (action === HeaderAction.Drop) continue;
      const key = keys.get(h[i]) ?? this._headerKey(side, h[i]);
      const value = action === HeaderAction.Keep ? redactHeaderValue(h[i], h[i + 1], rules) : rules.apply(action, h[i + 1]);
      const list = attrs[key] as string[] | undefined;
      if (list) list.push(value);
      else attrs[key] = [value];
    }
  }
}

/** From the HTTP status (undefined: no response), or a non-OK gRPC status when there is one. */
function severity(status: number | undefined, grpcStatus: number | undefined, role: Role): [SeverityNumber, string] {
  if (status === undefined || status >= 500) return [SeverityNumber.ERROR, 'ERROR'];
  if (grpcStatus) return grpcStatusIsError(grpcStatus, role) ? [SeverityNumber.ERROR, 'ERROR'] : [SeverityNumber.WARN, 'WARN'];
  if (status >= 400) return [SeverityNumber.WARN, 'WARN'];
  return [SeverityNumber.INFO, 'INFO'];
}
