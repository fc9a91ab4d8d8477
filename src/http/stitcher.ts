import type { CloseEvent, DataEvent, Direction } from '../source';
import { formatAddress, isV4Mapped } from '../source';
import { SniffingParser, http2Starts, upgradesToH2c, type Http2Evidence } from './h2/detect';
import { HTTP2_PROBLEMS, Http2Session, type DirectionStart, type Http2Problem } from './h2/session';
import { Http1StreamParser, type HeldPiece, type ParseProblem } from './parse';
import { otherDirection, type DirectionParser } from './protocol';
import type {
  ConnectionInfo,
  HttpExchange,
  HttpMessageHead,
  HttpRequestHead,
  HttpResponseHead,
  Role,
  TruncationReason,
  UnansweredReason,
} from './types';

/**
 * The capture filters as the kernel applies them (--pid, --comm, --cgroup,
 * --port), for user space to agree with it: the kernel cannot judge a TLS
 * session whose socket it does not know yet, nor take back bytes it sent
 * before a live filter change (see setFilter).
 */
export interface ConnectionFilter {
  /** --port, either end of the connection; empty or missing: any port. */
  ports?: readonly number[];
  /** false for a process the filters do not want; missing: every process. */
  process?(pid: number, comm: string): boolean;
}

export interface TrackerOptions {
  /** Bytes of start line + headers kept per message (--max-header-bytes; setMaxHeaderBytes changes it). */
  maxHeaderBytes: number;
  /** Connections tracked at once; the least recently active is evicted beyond. */
  maxConnections?: number;
  /** Requests waiting for a response per connection (pipelining depth). */
  maxPendingRequests?: number;
  /**
   * The capture filters. The kernel applies them; a TLS session whose socket
   * was not known when its bytes were captured is checked against --port
   * here, once the socket is known (or dropped, when it never is).
   */
  filter?: ConnectionFilter;
  onExchange(exchange: HttpExchange): void;
}

/** Everything the http stage counts. */
export interface HttpCounters {
  connectionsOpened: number;
  connectionsClosed: number;
  connectionsEvicted: number;
  requests: number;
  responses: number;
  exchanges: number;
  /** Responses with no request to pair with (joined mid-connection, lost events). */
  orphanResponses: number;
  /** Requests reported without a response. */
  unanswered: number;
  /** Bytes known to exist but never captured (copy limit, sendfile, lost events). */
  gapBytes: number;
  /** Messages whose headers are incomplete. */
  truncatedMessages: number;
  /** Parser resyncs by cause. */
  problems: Record<ParseProblem, number>;
  /** TLS sessions seen (plaintext from the TLS library). */
  tlsSessions: number;
  /** Connections ignored because their socket bytes are TLS records (ciphertext). */
  ciphertextConnections: number;
  /**
   * Connections whose bytes the filters exclude in user space (TLS sessions
   * outside --port, known once their socket is; connections a live filter
   * change excluded), and exchanges not reported for that reason (also those
   * of sessions whose socket never became known under --port).
   */
  filtered: number;
  /** Connections found speaking HTTP/2 (preface, SETTINGS, h2c upgrade, or frames mid-connection). */
  http2Connections: number;
  /** HTTP/2 DATA payload bytes skipped. */
  http2DataBytes: number;
  /**
   * Connections switched away from HTTP by a 101 (other than h2c, which
   * stays parsed as HTTP/2) or a 2xx to CONNECT, and the bytes seen on them
   * after the switch, in both directions: ignored, never parsed as HTTP.
   */
  tunnelConnections: number;
  tunnelBytes: number;
  /** HTTP/2 problems by cause (resyncs, undecodable header blocks, …). */
  http2Problems: Record<Http2Problem, number>;
  /** Exchanges reported with headers missing, by the reason on their record. */
  truncatedRecords: Record<TruncationReason, number>;
  /** Header values in reported exchanges that hold characters HTTP forbids (NUL, CR, LF); kept as sent. */
  invalidValues: number;
}

interface PendingRequest {
  head: HttpRequestHead;
  role: Role;
}

/** Whether the filters want a connection; 'unknown' while a TLS session's socket (its ports) is not known. */
type FilterMatch = 'yes' | 'no' | 'unknown';

/** Sequence numbers are mod 2^32: forward distances below 2^31 are gaps. */
const HALF_SEQ = 0x8000_0000;

interface DirectionState {
  /** HTTP/1.x (sniffing for HTTP/2 while it has found no message), or the HTTP/2 session's side. */
  parser: DirectionParser;
  /** The HTTP/1.x parser, also once parser is an HTTP/2 session's side. */
  h1: Http1StreamParser;
  /** Sequence number the next captured byte should have. */
  nextSeq: number | undefined;
}

interface Connection {
  info: ConnectionInfo;
  /** Socket bytes that are TLS records: ignored (the plaintext comes from the TLS probes). */
  ciphertext: boolean;
  /** Outside the filters (a TLS session outside --port, a connection a filter change excluded): its bytes are ignored. */
  filtered?: boolean;
  /** What the filters of generation matchGen say about it (see ConnectionTracker._match). */
  match: FilterMatch;
  matchGen: number;
  egress: DirectionState;
  ingress: DirectionState;
  /** Requests waiting for their response, oldest first (HTTP/1.x). */
  pending: PendingRequest[];
  lastNs: number;
  /** Set once the connection speaks HTTP/2; it then pairs its own streams. */
  h2?: Http2Session;
  /** Switched away from HTTP (101, CONNECT tunnel): its bytes are counted, not parsed. */
  tunnel?: boolean;
}

function connectionInfo(ev: DataEvent): ConnectionInfo {
  if (!ev.hasSocket) return { pid: ev.pid, comm: ev.comm, tls: ev.tls };
  return {
    pid: ev.pid,
    comm: ev.comm,
    networkType: isV4Mapped(ev.localAddr) ? 'ipv4' : 'ipv6',
    local: { address: formatAddress(ev.localAddr), port: ev.localPort },
    remote: { address: formatAddress(ev.remoteAddr), port: ev.remotePort },
    tls: ev.tls,
  };
}

/** The info of a connection needs updating: another process, or a TLS session's socket became known (or changed). */
function infoChanged(info: ConnectionInfo, ev: DataEvent): boolean {
  if (info.pid !== ev.pid) return true;
  if (!ev.hasSocket) return false;
  return info.local?.port !== ev.localPort || info.remote?.port !== ev.remotePort;
}

/**
 * A TLS record header (RFC 8446 §5.1): content type 20-23, legacy version
 * 3.x. No HTTP message starts with these bytes, so a socket stream that does
 * is ciphertext.
 */
export function looksLikeTlsRecord(data: Buffer): boolean {
  return data.length >= 3 && data[0] >= 0x14 && data[0] <= 0x17 && data[1] === 0x03 && data[2] <= 0x04;
}

function newCounters(): HttpCounters {
  return {
    connectionsOpened: 0,
    connectionsClosed: 0,
    connectionsEvicted: 0,
    requests: 0,
    responses: 0,
    exchanges: 0,
    orphanResponses: 0,
    unanswered: 0,
    gapBytes: 0,
    truncatedMessages: 0,
    problems: { invalid_start_line: 0, invalid_framing: 0, invalid_chunk: 0, gap_resync: 0, head_overflow: 0, missed_start: 0 },
    tlsSessions: 0,
    ciphertextConnections: 0,
    filtered: 0,
    http2Connections: 0,
    http2DataBytes: 0,
    tunnelConnections: 0,
    tunnelBytes: 0,
    http2Problems: Object.fromEntries(HTTP2_PROBLEMS.map((k) => [k, 0])) as Record<Http2Problem, number>,
    truncatedRecords: {
      header_limit: 0,
      capture_gap: 0,
      connection_closed: 0,
      malformed_header: 0,
      hpack_state_unknown: 0,
    },
    invalidValues: 0,
  };
}

/**
 * Turns socket events into HTTP exchanges: one parser per direction of each
 * connection, TCP sequence numbers to find bytes that were never captured,
 * and FIFO pairing of requests with responses (HTTP/1.x answers in order,
 * pipelined or not). A process that sends requests is the client.
 *
 * TLS sessions are tracked like connections, keyed by session id (their own
 * id space), with plaintext offsets in place of sequence numbers; the socket
 * under a session carries ciphertext, which is recognised and ignored.
 *
 * A connection whose bytes turn out to be HTTP/2 (h2/detect.ts) or that an
 * h2c upgrade switches is handed to an Http2Session, which pairs by stream.
 */
export class ConnectionTracker {
  readonly counters = newCounters();
  /** Map order is recency: every event moves its connection to the end. */
  private readonly _conns = new Map<number, Connection>();
  /** TLS sessions by session id, same rules. */
  private readonly _sessions = new Map<number, Connection>();
  private readonly _maxConnections: number;
  private readonly _maxPending: number;
  /** Read by every parser when it needs the limit, so setMaxHeaderBytes reaches them all. */
  private readonly _limits: { maxHeaderBytes: number };
  /** The filters in force: a connection is wanted when one of them wants it (two while a change is under way). */
  private _filters: { ports?: ReadonlySet<number>; process?: (pid: number, comm: string) => boolean }[] = [];
  /** Bumped by setFilter: each connection's cached match is recomputed once. */
  private _filterGen = 0;

  constructor(private readonly _opts: TrackerOptions) {
    this._maxConnections = _opts.maxConnections ?? 16384;
    this._maxPending = _opts.maxPendingRequests ?? 64;
    this._limits = { maxHeaderBytes: _opts.maxHeaderBytes };
    this._useFilter(_opts.filter ? [_opts.filter] : []);
  }

  /**
   * New capture filters, once the kernel applies them too (a live config
   * change). The kernel judges each socket call by one complete filter set,
   * but an exchange spans several calls: a connection the new filters
   * exclude would never see the rest of what it started, and one they newly
   * include is joined mid-stream. So connections the new filters exclude are
   * forgotten here, their waiting requests dropped and counted (filtered),
   * never reported as unanswered; later bytes of theirs, still on the way,
   * are ignored. Newly included ones start like connections seen at agent
   * start (a response whose request was never seen is counted as an orphan,
   * never recorded). Returns how many connections were forgotten.
   */
  setFilter(filter: ConnectionFilter | undefined): number {
    return this._setFilters(filter ? [filter] : []);
  }

  /**
   * While the kernel switches from one filter set to another, keeps what
   * either wants: for a moment the kernel may send a connection that only
   * the new set wants (the switch happened, user space does not know yet);
   * ignoring it would lose the first exchange on it. Then setFilter(next).
   */
  widenFilter(current: ConnectionFilter | undefined, next: ConnectionFilter | undefined): void {
    this._setFilters(current && next ? [current, next] : []);
  }

  private _setFilters(filters: ConnectionFilter[]): number {
    this._useFilter(filters);
    this._filterGen++;
    let forgotten = 0;
    for (const map of [this._conns, this._sessions]) {
      for (const [id, conn] of map) {
        if (this._match(conn) !== 'no') continue;
        map.delete(id);
        forgotten++;
        this._end(conn, 'evicted'); // what it emits now is filtered out in _emit
      }
    }
    return forgotten;
  }

  /** --max-header-bytes for every message from now on (also those whose head is being read). */
  setMaxHeaderBytes(bytes: number): void {
    this._limits.maxHeaderBytes = bytes;
  }

  /** `maxHeaderBytes` for a parser's options, read from _limits each time it is used. */
  private _liveLimit(): { readonly maxHeaderBytes: number } {
    const limits = this._limits;
    return {
      get maxHeaderBytes() {
        return limits.maxHeaderBytes;
      },
    };
  }

  private _useFilter(filters: ConnectionFilter[]): void {
    this._filters = filters.map((f) => ({
      ...(f.ports?.length ? { ports: new Set(f.ports) } : {}),
      ...(f.process ? { process: f.process } : {}),
    }));
  }

  /** Connections and TLS sessions currently tracked. */
  get size(): number {
    return this._conns.size + this._sessions.size;
  }

  onData(ev: DataEvent): void {
    const conn = this._connectionFor(ev);
    conn.lastNs = ev.tsNs;
    if (conn.ciphertext) return;
    // Outside the filters (a TLS session on a port --port does not want, known once its socket is): not parsed at all.
    if (this._match(conn) === 'no') {
      if (!conn.filtered) this.counters.filtered++;
      conn.filtered = true;
      return;
    }
    if (conn.tunnel) {
      this.counters.tunnelBytes += ev.msgSize;
      return;
    }
    const dir = ev.direction === 'egress' ? conn.egress : conn.ingress;
    if (!ev.tls && dir.nextSeq === undefined && looksLikeTlsRecord(ev.data)) {
      conn.ciphertext = true;
      this.counters.ciphertextConnections++;
      return;
    }
    if (dir.nextSeq !== undefined && ev.seq !== dir.nextSeq) {
      const ahead = (ev.seq - dir.nextSeq) >>> 0;
      if (ahead < HALF_SEQ) this._gap(dir, ahead);
      else dir.parser.reset(); // bytes went backwards (concurrent callers): start over
    }
    dir.parser.push(ev.data, ev.tsNs);
    if (ev.data.length < ev.msgSize) this._gap(dir, ev.msgSize - ev.data.length);
    dir.nextSeq = (ev.seq + ev.msgSize) >>> 0;
  }

  onClose(ev: CloseEvent): void {
    const map = ev.tls ? this._sessions : this._conns;
    const conn = map.get(ev.sockId);
    if (!conn) return;
    map.delete(ev.sockId);
    this.counters.connectionsClosed++;
    this._end(conn, 'connection_closed');
  }

  /** Reports every request still waiting as unanswered and forgets all connections. */
  flush(reason: UnansweredReason = 'agent_stopped'): void {
    for (const map of [this._conns, this._sessions]) {
      for (const conn of map.values()) this._end(conn, reason);
      map.clear();
    }
  }

  /** Evicts connections with no event since `olderThanNs` (CLOCK_MONOTONIC). */
  evictIdle(olderThanNs: number): number {
    let n = 0;
    for (const map of [this._conns, this._sessions]) {
      for (const [id, conn] of map) {
        if (conn.lastNs >= olderThanNs) break; // the rest were active later
        this._evict(map, id, conn);
        n++;
      }
    }
    return n;
  }

  private _connectionFor(ev: DataEvent): Connection {
    const map = ev.tls ? this._sessions : this._conns;
    let conn = map.get(ev.sockId);
    if (conn) {
      map.delete(ev.sockId);
      map.set(ev.sockId, conn);
      // Socket passed to another process, or a TLS session's socket became known.
      if (infoChanged(conn.info, ev)) {
        conn.info = connectionInfo(ev);
        conn.matchGen = -1;
      }
      return conn;
    }
    if (map.size >= this._maxConnections) {
      const [id, oldest] = map.entries().next().value as [number, Connection];
      this._evict(map, id, oldest);
    }
    conn = this._newConnection(ev);
    map.set(ev.sockId, conn);
    this.counters.connectionsOpened++;
    if (ev.tls) this.counters.tlsSessions++;
    return conn;
  }

  private _newConnection(ev: DataEvent): Connection {
    const conn: Connection = {
      info: connectionInfo(ev),
      ciphertext: false,
      pending: [],
      lastNs: ev.tsNs,
      match: 'yes',
      matchGen: -1,
      egress: undefined as unknown as DirectionState,
      ingress: undefined as unknown as DirectionState,
    };
    const direction = (d: Direction): DirectionState => {
      const h1 = new Http1StreamParser(
        {
          message: (head) => this._onMessage(conn, d, head),
          problem: (kind) => this.counters.problems[kind]++,
          // After a 101 or a 2xx to CONNECT, the rest of the same read or write: HTTP/2 frames
          // after an h2c upgrade, else bytes of the tunnel.
          tunnel: (rest, tsNs) => {
            if (conn.h2) conn.h2.direction(d).push(rest, tsNs);
            else this.counters.tunnelBytes += rest.length;
          },
        },
        Object.assign(this._liveLimit(), { requestMethod: () => conn.pending[0]?.head.method }),
      );
      const parser = new SniffingParser(h1, (evidence, bytes, tsNs) => this._sniffedHttp2(conn, d, evidence, bytes, tsNs));
      return { nextSeq: undefined, parser, h1 };
    };
    conn.egress = direction('egress');
    conn.ingress = direction('ingress');
    return conn;
  }

  private _gap(dir: DirectionState, bytes: number): void {
    this.counters.gapBytes += bytes;
    dir.parser.gap(bytes);
  }

  private _evict(map: Map<number, Connection>, id: number, conn: Connection): void {
    map.delete(id);
    this.counters.connectionsEvicted++;
    this._end(conn, 'evicted');
  }

  private _end(conn: Connection, reason: UnansweredReason): void {
    conn.egress.parser.end();
    conn.ingress.parser.end();
    conn.h2?.close(reason);
    for (const p of conn.pending.splice(0)) this._unanswered(conn, p, reason);
  }

  private _unanswered(conn: Connection, p: PendingRequest, reason: UnansweredReason): void {
    this._emit(conn, { role: p.role, request: p.head, unanswered: reason });
  }

  private _emit(conn: Connection, ex: Omit<HttpExchange, 'connection'>): void {
    if (!this._wanted(conn)) return;
    this.counters.exchanges++;
    if (ex.unanswered) this.counters.unanswered++;
    const truncated = ex.request.truncated ?? ex.response?.truncated;
    if (truncated) this.counters.truncatedRecords[truncated]++;
    const invalid = (ex.request.invalidValues ?? 0) + (ex.response?.invalidValues ?? 0);
    if (invalid) this.counters.invalidValues += invalid;
    // The exchange objects are made here and in Http2Session for this call only: complete it, no copy.
    const exchange = ex as HttpExchange;
    exchange.connection = conn.info;
    this._opts.onExchange(exchange);
  }

  /** The first bytes of direction `d` are HTTP/2: hand the connection to a session. */
  private _sniffedHttp2(conn: Connection, d: Direction, evidence: Http2Evidence, bytes: Buffer, tsNs: number): void {
    // The other direction is seen from its start only if none of its bytes went by yet.
    const otherFresh = conn[otherDirection(d)].nextSeq === undefined;
    this._useHttp2(conn, http2Starts(d, evidence, otherFresh), evidence === 'preface' ? d : undefined);
    conn[d].parser.push(bytes, tsNs);
  }

  private _useHttp2(conn: Connection, starts: Record<Direction, DirectionStart>, clientDirection?: Direction): Http2Session {
    this.counters.http2Connections++;
    const c = this.counters;
    const session = new Http2Session(
      {
        message: (head) => this._countMessage(head),
        exchange: (ex) => this._emit(conn, ex),
        orphanResponse: () => this._orphan(conn),
        problem: (kind) => c.http2Problems[kind]++,
        data: (bytes) => (c.http2DataBytes += bytes),
      },
      Object.assign(this._liveLimit(), starts, clientDirection ? { clientDirection } : {}),
    );
    conn.h2 = session;
    conn.egress.parser = session.egress;
    conn.ingress.parser = session.ingress;
    return session;
  }

  /**
   * What the filters say about a connection, computed once per filter
   * generation (and again when its info changes). The kernel filtered every
   * socket already; this matters for TLS sessions whose socket was not known
   * then ('unknown' until it is) and after a live filter change.
   */
  private _match(conn: Connection): FilterMatch {
    if (conn.matchGen === this._filterGen) return conn.match;
    const { pid, comm, local, remote } = conn.info;
    let match: FilterMatch = this._filters.length ? 'no' : 'yes';
    for (const f of this._filters) {
      let m: FilterMatch = 'yes';
      if (f.process && !f.process(pid, comm)) m = 'no';
      else if (f.ports) m = !local || !remote ? 'unknown' : f.ports.has(local.port) || f.ports.has(remote.port) ? 'yes' : 'no';
      if (m === 'yes') {
        match = 'yes';
        break;
      }
      if (m === 'unknown') match = 'unknown';
    }
    conn.match = match;
    conn.matchGen = this._filterGen;
    return match;
  }

  /** An exchange goes out only from a connection the filters want. */
  private _wanted(conn: Connection): boolean {
    if (this._match(conn) === 'yes') return true;
    this.counters.filtered++;
    return false;
  }

  /** A response with no request: counted only where the filters want the traffic. */
  private _orphan(conn: Connection): void {
    if (this._match(conn) === 'yes') this.counters.orphanResponses++;
  }

  /** Every decoded head, HTTP/1.x or HTTP/2, is counted here. */
  private _countMessage(head: HttpMessageHead): void {
    if (head.kind === 'request') this.counters.requests++;
    else this.counters.responses++;
    if (head.truncated) this.counters.truncatedMessages++;
  }

  private _onMessage(conn: Connection, direction: Direction, head: HttpMessageHead): void {
    this._countMessage(head);
    if (head.kind === 'request') this._onRequest(conn, direction, head);
    else this._onResponse(conn, direction, head);
  }

  private _onRequest(conn: Connection, direction: Direction, head: HttpRequestHead): void {
    if (conn.pending.length >= this._maxPending) {
      this._unanswered(conn, conn.pending.shift()!, 'too_many_pending');
    }
    conn.pending.push({ head, role: direction === 'egress' ? 'client' : 'server' });
  }

  private _onResponse(conn: Connection, direction: Direction, head: HttpResponseHead): void {
    const req = conn.pending.shift();
    const requests = conn[otherDirection(direction)].h1;
    // The same rule as the parser's framing: after these, the response's direction is a tunnel already.
    const switched = head.status === 101 || (req?.head.method === 'CONNECT' && head.status >= 200 && head.status < 300);
    if (!req) {
      this._orphan(conn);
      if (switched) this._useTunnel(conn, requests.release());
      return;
    }
    if (upgradesToH2c(head)) {
      // The answer to the upgraded request comes as HTTP/2 stream 1; the client sends a preface first.
      const held = requests.release();
      this._useHttp2(conn, http2Starts(direction, 'start', true), otherDirection(direction)).seedUpgrade(req.head);
      const next = conn[otherDirection(direction)].parser;
      for (const p of held) {
        if (typeof p === 'number') next.gap(p);
        else next.push(p.data, p.tsNs);
      }
      return;
    }
    this._emit(conn, { role: req.role, request: req.head, response: head });
    if (switched) this._useTunnel(conn, requests.release());
    // A request that could have switched was answered without a switch: what followed it is HTTP.
    else if (conn.pending.length === 0) requests.resume();
  }

  /** The connection left HTTP: from now on its bytes (and those held after the request) are only counted. */
  private _useTunnel(conn: Connection, held: HeldPiece[]): void {
    conn.tunnel = true;
    this.counters.tunnelConnections++;
    for (const p of held) this.counters.tunnelBytes += typeof p === 'number' ? p : p.data.length;
  }
}
