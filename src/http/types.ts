/**
 * What the http stage produces: HTTP/1.x and HTTP/2 message heads and
 * request/response exchanges. Nothing here knows about OpenTelemetry.
 */

/**
 * Header fields in wire order as a flat list: [name0, value0, name1, value1, …].
 * Names are lower-case; values are as sent, without surrounding whitespace.
 */
export type HeaderList = string[];

/** Why a message's headers are incomplete. */
export type TruncationReason =
  /** the head was longer than --max-header-bytes (also when the bytes past the limit were never captured) */
  | 'header_limit'
  /** bytes of the head before --max-header-bytes were never captured (lost events, a call beyond the kernel's copy) */
  | 'capture_gap'
  /** the connection ended inside the head */
  | 'connection_closed'
  /** a header line could not be parsed and was skipped */
  | 'malformed_header'
  /**
   * HTTP/2: a header referred to an HPACK dynamic-table entry added before
   * headertap saw the connection (or in bytes it missed); it is left out
   */
  | 'hpack_state_unknown';

interface MessageHeadBase {
  /** '1.0' or '1.1' from the start line; '2' for HTTP/2. */
  version: string;
  /** HTTP/2: regular fields only; pseudo-headers fill the fields of the head. Trailers follow the headers. */
  headers: HeaderList;
  /** Bytes of the start line and header lines, CRLFs included; HTTP/2: HPACK-coded header block bytes. */
  headBytes: number;
  /** Set when some headers are missing; the reason says why. */
  truncated?: TruncationReason;
  /**
   * Header values holding characters HTTP forbids in a field (NUL, CR; LF
   * in HTTP/2): kept as sent, counted here. Absent when there are none.
   */
  invalidValues?: number;
  /** CLOCK_MONOTONIC ns of the syscall that carried the first byte. */
  startNs: number;
  /** CLOCK_MONOTONIC ns of the syscall that carried the head's last byte. */
  endNs: number;
}

export interface HttpRequestHead extends MessageHeadBase {
  kind: 'request';
  /** '' when it could not be decoded (HTTP/2, see truncated). */
  method: string;
  /**
   * The request-target as sent: /path?query, an absolute URL, host:port or *.
   * HTTP/2: :path (:authority for CONNECT); '' when it could not be decoded.
   */
  target: string;
  /** HTTP/2 :authority. */
  authority?: string;
  /** HTTP/2 :scheme. */
  scheme?: string;
}

export interface HttpResponseHead extends MessageHeadBase {
  kind: 'response';
  /** 0 when it could not be decoded (HTTP/2, see truncated). */
  status: number;
  reason: string;
}

export type HttpMessageHead = HttpRequestHead | HttpResponseHead;

/** Which end of the connection the observed process is. */
export type Role = 'client' | 'server';

/**
 * Why a request has no response. stream_reset: HTTP/2 RST_STREAM, or a
 * GOAWAY that says the server never processed the stream.
 */
export type UnansweredReason = 'connection_closed' | 'agent_stopped' | 'evicted' | 'too_many_pending' | 'stream_reset';

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
