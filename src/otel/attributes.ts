import type { HrTime } from '@opentelemetry/api';
import { SeverityNumber } from '@opentelemetry/api-logs';
import {
  ATTR_CLIENT_ADDRESS,
  ATTR_CLIENT_PORT,
  ATTR_ERROR_TYPE,
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
  ATTR_URL_FULL,
  ATTR_URL_PATH,
  ATTR_URL_QUERY,
  ATTR_URL_SCHEME,
  ATTR_USER_AGENT_ORIGINAL,
} from '@opentelemetry/semantic-conventions';
import type { Endpoint, HeaderList, HttpExchange, HttpMessageHead, Role } from '../http';
import type { ProcessInfo } from '../workload';
import { GRPC_ATTRIBUTES, addGrpcAttributes, grpcStatusIsError, grpcStatusName, type GrpcCall } from './grpc';
import { HeaderAction, type HeaderRules, type HeaderSide } from './headers';
import type { AttributeList, AttributeValue, ExchangeRecord } from './record';
import type { RulesFor } from './scoped-rules';
import { ATTR_HTTP_ROUTE, ATTR_URL_TEMPLATE, routeAttribute, type RoutesFor } from './routes';
import { metricHeaderValues, type MetricHeaders } from './metric-headers';
import { redactHeaderValue, redactQuery } from './redact';
import { TRACE_CONTEXT_HEADERS, extractSpanContext } from './trace-context';
import { WorkloadResources, type WorkloadOptions } from './workloads';

/** headertap's own attributes (DESIGN.md, log-record contract). */
export const ATTR_HT_ROLE = 'headertap.role';
export const ATTR_HT_DURATION_NS = 'headertap.duration_ns';
export const ATTR_HT_TRUNCATED = 'headertap.truncated';
export const ATTR_HT_TRUNCATED_REASON = 'headertap.truncated_reason';
export const ATTR_HT_UNANSWERED_REASON = 'headertap.unanswered_reason';
/**
 * The HTTP version of the status line when it differs from the request
 * line's (network.protocol.version): each side's version as it sent it.
 */
export const ATTR_HT_RESPONSE_PROTOCOL_VERSION = 'headertap.response.protocol_version';

export const EVENT_NAME = 'headertap.http.exchange';

/** headertap.truncated_reason of a record that left headers out to stay within --max-attributes. */
export const ATTRIBUTE_LIMIT_REASON = 'attribute_limit';

/**
 * Loki stores every attribute of a record that is not an index label as one
 * structured-metadata entry, and refuses a line with more than 128
 * (limits_config.max_structured_metadata_entries_count): the record's
 * attributes, its resource's, and 9 fields it adds itself (trace_id,
 * span_id, flags, severity_text, severity_number, observed_timestamp,
 * dropped_attributes_count, scope_name, scope_version).
 */
export const LOKI_MAX_STRUCTURED_METADATA = 128;
const LOKI_RECORD_FIELDS = 9;

/** --max-attributes: attributes of a record together with its resource's (fits Loki, above). */
export const DEFAULT_MAX_ATTRIBUTES = LOKI_MAX_STRUCTURED_METADATA - LOKI_RECORD_FIELDS;

const REQUEST_HEADER_PREFIX = 'http.request.header.';
const RESPONSE_HEADER_PREFIX = 'http.response.header.';

/** Every attribute key the mapper can set besides the header ones. */
const RECORD_KEYS = new Set<string>([
  ATTR_HTTP_REQUEST_METHOD,
  ATTR_HTTP_REQUEST_METHOD_ORIGINAL,
  ATTR_URL_FULL,
  ATTR_URL_PATH,
  ATTR_URL_QUERY,
  ATTR_URL_SCHEME,
  ATTR_NETWORK_PROTOCOL_NAME,
  ATTR_NETWORK_PROTOCOL_VERSION,
  ATTR_HTTP_RESPONSE_STATUS_CODE,
  ATTR_SERVER_ADDRESS,
  ATTR_SERVER_PORT,
  ATTR_CLIENT_ADDRESS,
  ATTR_CLIENT_PORT,
  ATTR_NETWORK_PEER_ADDRESS,
  ATTR_NETWORK_PEER_PORT,
  ATTR_NETWORK_LOCAL_ADDRESS,
  ATTR_NETWORK_LOCAL_PORT,
  ATTR_NETWORK_TRANSPORT,
  ATTR_NETWORK_TYPE,
  ATTR_USER_AGENT_ORIGINAL,
  ATTR_HT_ROLE,
  ATTR_HT_DURATION_NS,
  ATTR_HT_TRUNCATED,
  ATTR_HT_TRUNCATED_REASON,
  ATTR_HT_UNANSWERED_REASON,
  ATTR_ERROR_TYPE,
  ATTR_HTTP_ROUTE,
  ATTR_URL_TEMPLATE,
  ATTR_HT_RESPONSE_PROTOCOL_VERSION,
  ...GRPC_ATTRIBUTES,
]);

/** Whether a record can carry an attribute of this name. */
export function isRecordKey(key: string): boolean {
  return RECORD_KEYS.has(key) || key.startsWith(REQUEST_HEADER_PREFIX) || key.startsWith(RESPONSE_HEADER_PREFIX);
}

export interface MapperOptions {
  /** Asked once per record: a HeaderRules, or scoped rules swapped whole by live reloads (src/otel/scoped-rules.ts). */
  rules: RulesFor;
  /** CLOCK_MONOTONIC ns to wall-clock time. */
  toHrTime(monoNs: number): HrTime;
  /** Facts about the observing process. */
  processInfo(pid: number, comm: string): ProcessInfo;
  /** How each observed process's resource is made. */
  workloads?: Omit<WorkloadOptions, 'isRecordKey'>;
  /** Attributes of a record together with its resource's at most (default DEFAULT_MAX_ATTRIBUTES). */
  maxAttributes?: number;
  /** OTEL_SEMCONV_STABILITY_OPT_IN has rpc/dup: the deprecated rpc.* names too (src/otel/grpc.ts). */
  rpcDup?: boolean;
  /** Routes per workload (src/otel/routes.ts); none: records have no route. */
  routes?: RoutesFor;
  /** --metric-headers in force (src/otel/metric-headers.ts): their values go on the record for the request metrics. */
  metricHeaders?: MetricHeaders;
}

export interface MapperCounters {
  /** Records that left attributes out to stay within maxAttributes. */
  limitedRecords: number;
  /** Attributes left out (each record's dropped_attributes_count, added up). */
  droppedAttributes: number;
}

/** Header attribute keys remembered per side. */
const MAX_HEADER_KEYS = 1024;

/** Methods semantic conventions name; others are reported as _OTHER. */
export const KNOWN_METHODS: ReadonlySet<string> = new Set(['CONNECT', 'DELETE', 'GET', 'HEAD', 'OPTIONS', 'PATCH', 'POST', 'PUT', 'QUERY', 'TRACE']);

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
  // Origin form (/path?query), nearly every request, needs no pattern.
  const abs = target.charCodeAt(0) === 0x2f ? null : /^[a-zA-Z][a-zA-Z0-9+.-]*:\/\/([^/?#]*)/.exec(target);
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

/** What the mapper knows about a header name on one side: its attribute key, its rule, and where it is in the record being built (to add a repeated header's value). */
interface HeaderKey {
  key: string;
  /** What the rules say (HeaderRules.action), decided once per name. */
  action: HeaderAction;
  /** The serial of the last record that has this key, and the key's index in its list. */
  record: number;
  at: number;
}

/** What one set of rules says, decided once: about the headers that feed other attributes, and per header name (http.{request,response}.header.<name>, built once per name: most records repeat the same few dozen). */
interface Decided {
  hostIsSecret: boolean;
  userAgentAction: HeaderAction;
  headerKeys: Record<HeaderSide, Map<string, HeaderKey>>;
}

/**
 * Maps exchanges to the log-record contract in DESIGN.md: semantic-convention
 * attributes, header attributes after capture/redaction rules, trace context
 * from the request headers, severity from the outcome, the observed
 * process's resource. The process's own attributes (process.pid,
 * process.executable.name, container.id) are on that resource, never on the
 * record too.
 *
 * HTTP/2 heads carry the pseudo-headers in their fields (method, target =
 * :path, authority, scheme), so they map to the same attributes and never
 * appear as http.request.header.:path: semantic conventions reserve header
 * attributes for real header fields. A field HPACK could not decode is ''
 * (method, target) or 0 (status) and its attribute is left out.
 *
 * A record never has more than maxAttributes attributes counting its
 * resource's. Past that, header attributes are left out, the least wanted
 * first: trace-context headers are kept first, then headers by the first
 * --capture-headers glob that matches them (a glob earlier in the list
 * first), request before response, in wire order. The record then says how
 * many are missing (dropped_attributes_count) and why (headertap.truncated,
 * headertap.truncated_reason = attribute_limit).
 */
export class ExchangeMapper {
  readonly counters: MapperCounters = { limitedRecords: 0, droppedAttributes: 0 };
  /** The resources of the observed processes. */
  readonly workloads: WorkloadResources;
  private readonly _maxAttributes: number;
  private readonly _rpcDup: boolean;
  /** Numbers each record, for HeaderKey.record. */
  private _serial = 0;
  /** What each set of rules says, decided once per set (a reload brings new sets; old ones are collected). */
  private readonly _decisions = new WeakMap<HeaderRules, Decided>();
  /** The last authority (Host) parsed, and its parts: most records of a run name the same few. */
  private _authorityText = '';
  private _authority: ReturnType<typeof splitAuthority>;

  constructor(private readonly _opts: MapperOptions) {
    this.workloads = new WorkloadResources({ ..._opts.workloads, isRecordKey });
    this._maxAttributes = _opts.maxAttributes ?? DEFAULT_MAX_ATTRIBUTES;
    this._rpcDup = _opts.rpcDup ?? false;
  }

  map(ex: HttpExchange): ExchangeRecord {
    const { request: req, response: res, connection: conn } = ex;
    const proc = this._opts.processInfo(conn.pid, conn.comm);
    const rules = this._opts.rules.rulesFor(proc, conn); // the whole record is mapped under these
    const decided = this._decided(rules);
    let attrs: AttributeList = [];

    const method = KNOWN_METHODS.has(req.method) ? req.method : '_OTHER';
    if (req.method) attrs.push(ATTR_HTTP_REQUEST_METHOD, method);
    if (req.method && method === '_OTHER') attrs.push(ATTR_HTTP_REQUEST_METHOD_ORIGINAL, req.method);
    const target = req.target ? splitTarget(req.target, req.method) : {};
    if (target.path !== undefined) attrs.push(ATTR_URL_PATH, target.path);
    const workload = this.workloads.get(proc);
    const route = target.path !== undefined ? this._opts.routes?.routeFor(proc, workload.resource, target.path, conn) : undefined;
    if (route !== undefined) attrs.push(routeAttribute(ex.role), route);
    const query = target.query !== undefined ? redactQuery(target.query, rules) : undefined;
    if (query !== undefined) attrs.push(ATTR_URL_QUERY, query);
    const scheme = req.scheme ?? (conn.tls ? 'https' : 'http');
    attrs.push(ATTR_URL_SCHEME, scheme, ATTR_NETWORK_PROTOCOL_NAME, 'http', ATTR_NETWORK_PROTOCOL_VERSION, req.version);
    if (res?.status) attrs.push(ATTR_HTTP_RESPONSE_STATUS_CODE, res.status);
    // network.protocol.version is what the client sent (the request line); a server that answers in
    // another version (HTTP/1.0 to a 1.1 request) adds its own, so each side's is on the record.
    if (res && res.version !== req.version) attrs.push(ATTR_HT_RESPONSE_PROTOCOL_VERSION, res.version);

    // The server end of the socket is the local one for a server, the remote one for a client.
    const serverEnd: Endpoint | undefined = ex.role === 'server' ? conn.local : conn.remote;
    const clientEnd: Endpoint | undefined = ex.role === 'server' ? conn.remote : conn.local;
    const hostHeader = decided.hostIsSecret ? undefined : (req.authority ?? firstValue(req.headers, 'host'));
    const authority = this._splitAuthority(target.authority ?? hostHeader ?? '');
    const serverAddress = authority?.host ?? serverEnd?.address;
    if (serverAddress !== undefined) attrs.push(ATTR_SERVER_ADDRESS, serverAddress);
    const serverPort = authority?.port ?? serverEnd?.port;
    if (serverPort !== undefined) attrs.push(ATTR_SERVER_PORT, serverPort);
    // The client asked for this URL: rebuilt from the same parts as the attributes above (userinfo is never kept, the query is redacted).
    if (ex.role === 'client' && target.path?.charCodeAt(0) === 0x2f && serverAddress !== undefined) {
      // A Host (or absolute URL) without a port means the scheme's own, whatever socket the request took (a proxy's).
      attrs.push(ATTR_URL_FULL, fullUrl(scheme, serverAddress, authority ? authority.port : serverPort, target.path, query));
    }
    if (clientEnd) attrs.push(ATTR_CLIENT_ADDRESS, clientEnd.address, ATTR_CLIENT_PORT, clientEnd.port);
    if (conn.remote && conn.local) {
      attrs.push(
        ATTR_NETWORK_PEER_ADDRESS,
        conn.remote.address,
        ATTR_NETWORK_PEER_PORT,
        conn.remote.port,
        ATTR_NETWORK_LOCAL_ADDRESS,
        conn.local.address,
        ATTR_NETWORK_LOCAL_PORT,
        conn.local.port,
      );
    }
    attrs.push(ATTR_NETWORK_TRANSPORT, 'tcp');
    if (conn.networkType) attrs.push(ATTR_NETWORK_TYPE, conn.networkType);
    const ua = firstValue(req.headers, 'user-agent');
    if (ua !== undefined) attrs.push(ATTR_USER_AGENT_ORIGINAL, rules.apply(decided.userAgentAction, ua));

    attrs.push(ATTR_HT_ROLE, ex.role);
    const durationNs = res ? Math.max(0, res.endNs - req.startNs) : undefined;
    if (durationNs !== undefined) attrs.push(ATTR_HT_DURATION_NS, durationNs);
    const truncated = req.truncated ?? res?.truncated;
    if (truncated) attrs.push(ATTR_HT_TRUNCATED, true, ATTR_HT_TRUNCATED_REASON, truncated);
    if (ex.unanswered) attrs.push(ATTR_HT_UNANSWERED_REASON, ex.unanswered);
    const grpc = addGrpcAttributes(attrs, req, res, rules, this._rpcDup);
    const error = errorType(ex.role, res?.status, grpc, ex.unanswered);
    if (error !== undefined) attrs.push(ATTR_ERROR_TYPE, error);

    const headersAt = attrs.length;
    const serial = ++this._serial;
    this._addHeaders(attrs, 'request', req, serial, rules, decided);
    if (res) this._addHeaders(attrs, 'response', res, serial, rules, decided);

    let dropped = 0;
    if (workload.shadowed) attrs = withoutKeys(attrs, workload.shadowed);
    if ((attrs.length >> 1) + workload.attributeCount > this._maxAttributes) {
      const fitted = this._fit(attrs, headersAt, this._maxAttributes - workload.attributeCount, rules);
      attrs = fitted.attrs;
      dropped = fitted.dropped;
      this.counters.limitedRecords++;
      this.counters.droppedAttributes += dropped;
    }

    const [severityNumber, severityText] = severity(res?.status, grpc?.status, ex.role);
    const spanContext = extractSpanContext(req.headers);
    const outcome = res ? `${res.status || '?'}${grpc?.status !== undefined ? ` grpc ${grpcStatusName(grpc.status)}` : ''}` : 'no response';
    const now = Date.now(); // the observed time, at the SDK's millisecond precision
    // Every field set, absent ones to undefined: all records have one shape, so the encoder's property reads stay monomorphic.
    return {
      eventName: EVENT_NAME,
      timestamp: this._opts.toHrTime(req.startNs),
      observedTimestamp: [Math.floor(now / 1000), (now % 1000) * 1e6],
      severityNumber,
      severityText,
      body: `${req.method || '?'} ${target.path ?? target.authority ?? '?'} -> ${outcome}`,
      attributes: attrs,
      droppedAttributesCount: dropped,
      spanContext,
      resource: workload.resource,
      role: ex.role,
      method: req.method,
      status: res?.status,
      rpcSystem: grpc ? 'grpc' : undefined,
      rpcMethod: grpc?.method,
      grpcStatus: grpc?.status,
      durationNs,
      unanswered: ex.unanswered,
      errorType: error,
      route,
      scheme,
      protocolVersion: req.version,
      serverAddress,
      serverPort,
      metricHeaders: this._metricHeaders(req.headers, rules),
    };
  }

  private _metricHeaders(headers: HeaderList, rules: HeaderRules): ExchangeRecord['metricHeaders'] {
    const names = this._opts.metricHeaders?.names;
    return names?.length ? { names, values: metricHeaderValues(headers, names, rules) } : undefined;
  }

  private _decided(rules: HeaderRules): Decided {
    let d = this._decisions.get(rules);
    if (!d) {
      d = { hostIsSecret: rules.isSecret('host'), userAgentAction: rules.secret('user-agent'), headerKeys: { request: new Map(), response: new Map() } };
      this._decisions.set(rules, d);
    }
    return d;
  }

  private _splitAuthority(text: string): ReturnType<typeof splitAuthority> {
    if (text !== this._authorityText) {
      this._authorityText = text;
      this._authority = splitAuthority(text);
    }
    return this._authority;
  }

  private _headerKey(keys: Map<string, HeaderKey>, rules: HeaderRules, side: HeaderSide, name: string): HeaderKey {
    const k: HeaderKey = {
      key: (side === 'request' ? REQUEST_HEADER_PREFIX : RESPONSE_HEADER_PREFIX) + name,
      action: rules.action(name, side),
      record: 0,
      at: 0,
    };
    keys.set(name, k);
    return k;
  }

  private _addHeaders(attrs: AttributeList, side: HeaderSide, head: HttpMessageHead, serial: number, rules: HeaderRules, decided: Decided): void {
    const h = head.headers;
    const keys = decided.headerKeys[side];
    if (keys.size >= MAX_HEADER_KEYS) keys.clear(); // names are attacker-controlled (never in the middle of a record: see HeaderKey.at)
    for (let i = 0; i < h.length; i += 2) {
      const name = h[i];
      const k = keys.get(name) ?? this._headerKey(keys, rules, side, name);
      const action = k.action;
      if (action === HeaderAction.Drop) continue;
      const value = action === HeaderAction.Keep ? redactHeaderValue(name, h[i + 1], rules) : rules.apply(action, h[i + 1]);
      if (k.record === serial) (attrs[k.at] as string[]).push(value);
      else {
        k.record = serial;
        k.at = attrs.length + 1;
        attrs.push(k.key, [value]);
      }
    }
  }

  /**
   * The attributes cut to `limit`: header attributes (from `headersAt` on)
   * left out by priority, then, only if the rest alone is too many, the last
   * of the others; headertap.truncated and its reason always stay.
   */
  private _fit(attrs: AttributeList, headersAt: number, limit: number, rules: HeaderRules): { attrs: AttributeList; dropped: number } {
    const total = attrs.length >> 1;
    let reason: string | undefined;
    let marks = 0;
    const others: AttributeList = [];
    for (let i = 0; i < headersAt; i += 2) {
      const key = attrs[i] as string;
      if (key === ATTR_HT_TRUNCATED) marks++;
      else if (key === ATTR_HT_TRUNCATED_REASON) {
        marks++;
        reason = attrs[i + 1] as string;
      } else others.push(key, attrs[i + 1]);
    }
    const room = Math.max(0, limit - 2);
    const othersKept = Math.min(others.length >> 1, room);
    const headers: { at: number; rank: number }[] = [];
    for (let i = headersAt; i < attrs.length; i += 2) {
      const key = attrs[i] as string;
      const side: HeaderSide = key.startsWith(REQUEST_HEADER_PREFIX) ? 'request' : 'response';
      const name = key.slice(side === 'request' ? REQUEST_HEADER_PREFIX.length : RESPONSE_HEADER_PREFIX.length);
      const rank = TRACE_CONTEXT_HEADERS.has(name) ? -1 : rules.captureRank(name, side);
      headers.push({ at: i, rank });
    }
    // Stable: equal ranks stay request before response, in wire order.
    const keep = headers
      .sort((a, b) => a.rank - b.rank || a.at - b.at)
      .slice(0, room - othersKept)
      .map((h) => h.at)
      .sort((a, b) => a - b);
    const out = others.slice(0, othersKept * 2);
    out.push(ATTR_HT_TRUNCATED, true, ATTR_HT_TRUNCATED_REASON, reason ? `${reason},${ATTRIBUTE_LIMIT_REASON}` : ATTRIBUTE_LIMIT_REASON);
    for (const at of keep) out.push(attrs[at], attrs[at + 1]);
    return { attrs: out, dropped: total - othersKept - keep.length - marks };
  }
}

/** The list without the attributes named in `keys`. */
function withoutKeys(attrs: AttributeList, keys: ReadonlySet<string>): AttributeList {
  const out: AttributeList = [];
  for (let i = 0; i < attrs.length; i += 2) if (!keys.has(attrs[i] as string)) out.push(attrs[i], attrs[i + 1] as AttributeValue);
  return out;
}

/** error.type when a failure has no more specific name (semantic conventions' fallback). */
const ERROR_TYPE_OTHER = '_OTHER';

/**
 * error.type of an exchange, undefined when it did not fail, as semantic
 * conventions say; records carry it, and spans take it and their status
 * from there. HTTP: a client fails on 4xx and 5xx, a server on 5xx only (a
 * 4xx is the caller's error); the value is the status code. gRPC with a
 * status: the code's name, for any non-OK code on the client side and for
 * the server errors on the server side (src/otel/grpc.ts). No response at
 * all: why (headertap.unanswered_reason); a status that could not be read:
 * _OTHER.
 */
export function errorType(role: Role, status: number | undefined, grpc: GrpcCall | undefined, unanswered: string | undefined): string | undefined {
  if (status === undefined) return unanswered ?? ERROR_TYPE_OTHER;
  if (grpc?.status !== undefined) return grpcStatusIsError(grpc.status, role) ? grpcStatusName(grpc.status) : undefined;
  if (status === 0) return ERROR_TYPE_OTHER;
  return status >= 500 || (role === 'client' && status >= 400) ? String(status) : undefined;
}

/** scheme://host[:port]path[?query]; the port only when it is not the scheme's own; never userinfo (a Host of `user@host`). */
function fullUrl(scheme: string, host: string, port: number | undefined, path: string, query: string | undefined): string {
  const bare = host.slice(host.lastIndexOf('@') + 1);
  const h = bare.includes(':') ? `[${bare}]` : bare;
  const p = port === undefined || (port === 80 && scheme === 'http') || (port === 443 && scheme === 'https') ? '' : `:${port}`;
  return `${scheme}://${h}${p}${path}${query !== undefined ? `?${query}` : ''}`;
}

/** From the HTTP status (undefined: no response), or a non-OK gRPC status when there is one. */
function severity(status: number | undefined, grpcStatus: number | undefined, role: Role): [SeverityNumber, string] {
  if (status === undefined || status >= 500) return [SeverityNumber.ERROR, 'ERROR'];
  if (grpcStatus) return grpcStatusIsError(grpcStatus, role) ? [SeverityNumber.ERROR, 'ERROR'] : [SeverityNumber.WARN, 'WARN'];
  if (status >= 400) return [SeverityNumber.WARN, 'WARN'];
  return [SeverityNumber.INFO, 'INFO'];
}
