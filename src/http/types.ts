/**
 * What the http stage produces: HTTP/1.x message heads and request/response
 * exchanges. Nothing here knows about OpenTelemetry.
 */

/**
 * Header fields in wire order as a flat list: [name0, value0, name1, value1, …].
 * Names are lower-case; values are as sent, without surrounding whitespace.
 */
export type HeaderList = string[];

/** Why a message's headers are incomplete. */
export type TruncationReason =
  /** the head was longer than --max-header-bytes */
  | 'header_limit'
  /** bytes of the head were never captured (copy limit, lost events) */
  | 'capture_gap'
  /** the connection ended inside the head */
  | 'connection_closed'
  /** a header line could not be parsed and was skipped */
  | 'malformed_header';

interface MessageHeadBase {
  /** '1.0' or '1.1', from the start line. */
  version: string;
  headers: HeaderList;
  /** Bytes of the start line and header lines, CRLFs included. */
  headBytes: number;
  /** Set when some headers are missing; the reason says why. */
  truncated?: TruncationReason;
  /** CLOCK_MONOTONIC ns of the syscall that carried the first byte. */
  startNs: number;
  /** CLOCK_MONOTONIC ns of the syscall that carried the head's last byte. */
  endNs: number;
}

export interface HttpRequestHead extends MessageHeadBase {
  kind: 'request';
  method: string;
  /** The request-target as sent: /path?query, an absolute URL, host:port or *. */
  target: string;
}

export interface HttpResponseHead extends MessageHeadBase {
  kind: 'response';
  status: number;
  reason: string;
}

export type HttpMessageHead = HttpRequestHead | HttpResponseHead;

/** Which end of the connection the observed process is. */
export type Role = 'client' | 'server';

/** Why a request has no response. */
export type UnansweredReason = 'connection_closed' | 'agent_stopped' | 'evicted' | 'too_many_pending';

export interface Endpoint {
  address: string;
  port: number;
}

/**
 * The connection as the observed process sees it. The addresses are missing
 * only for TLS sessions whose socket was never identified.
 */
export interface ConnectionInfo {
  pid: number;
  comm: string;
  /** 'ipv4' also for IPv4 carried on a dual-stack IPv6 socket. */
  networkType?: 'ipv4' | 'ipv6';
  local?: Endpoint;
  remote?: Endpoint;
  /** The bytes were TLS plaintext (url.scheme https). */
  tls: boolean;
}

/** One request and its response (if one came), seen by one process. */
export interface HttpExchange {
  role: Role;
  connection: ConnectionInfo;
  request: HttpRequestHead;
  response?: HttpResponseHead;
  unanswered?: UnansweredReason;
}
