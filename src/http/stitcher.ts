import type { CloseEvent, DataEvent, Direction } from '../source';
import { formatAddress, isV4Mapped } from '../source';
import { Http1StreamParser, type ParseProblem } from './parse';
import type {
  ConnectionInfo,
  HttpExchange,
  HttpMessageHead,
  HttpRequestHead,
  HttpResponseHead,
  Role,
  UnansweredReason,
} from './types';

export interface TrackerOptions {
  /** Bytes of start line + headers kept per message (--max-header-bytes). */
  maxHeaderBytes: number;
  /** Connections tracked at once; the least recently active is evicted beyond. */
  maxConnections?: number;
  /** Requests waiting for a response per connection (pipelining depth). */
  maxPendingRequests?: number;
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
}

interface PendingRequest {
  head: HttpRequestHead;
  role: Role;
}

/** Sequence numbers are mod 2^32: forward distances below 2^31 are gaps. */
const HALF_SEQ = 0x8000_0000;

interface DirectionState {
  parser: Http1StreamParser;
  /** Sequence number the next captured byte should have. */
  nextSeq: number | undefined;
}

interface Connection {
  info: ConnectionInfo;
  egress: DirectionState;
  ingress: DirectionState;
  /** Requests waiting for their response, oldest first. */
  pending: PendingRequest[];
  lastNs: number;
}

function connectionInfo(ev: DataEvent): ConnectionInfo {
  return {
    pid: ev.pid,
    comm: ev.comm,
    networkType: isV4Mapped(ev.localAddr) ? 'ipv4' : 'ipv6',
    local: { address: formatAddress(ev.localAddr), port: ev.localPort },
    remote: { address: formatAddress(ev.remoteAddr), port: ev.remotePort },
    tls: false,
  };
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
  };
}

/**
 * Turns socket events into HTTP exchanges: one parser per direction of each
 * connection, TCP sequence numbers to find bytes that were never captured,
 * and FIFO pairing of requests with responses (HTTP/1.x answers in order,
 * pipelined or not). A process that sends requests is the client.
 */
export class ConnectionTracker {
  readonly counters = newCounters();
  /** Map order is recency: every event moves its connection to the end. */
  private readonly _conns = new Map<number, Connection>();
  private readonly _maxConnections: number;
  private readonly _maxPending: number;

  constructor(private readonly _opts: TrackerOptions) {
    this._maxConnections = _opts.maxConnections ?? 16384;
    this._maxPending = _opts.maxPendingRequests ?? 64;
  }

  /** Connections currently tracked. */
  get size(): number {
    return this._conns.size;
  }

  onData(ev: DataEvent): void {
    const conn = this._connectionFor(ev);
    conn.lastNs = ev.tsNs;
    const dir = ev.direction === 'egress' ? conn.egress : conn.ingress;
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
    const conn = this._conns.get(ev.sockId);
    if (!conn) return;
    this._conns.delete(ev.sockId);
    this.counters.connectionsClosed++;
    this._end(conn, 'connection_closed');
  }

  /** Reports every request still waiting as unanswered and forgets all connections. */
  flush(reason: UnansweredReason = 'agent_stopped'): void {
    for (const conn of this._conns.values()) this._end(conn, reason);
    this._conns.clear();
  }

  /** Evicts connections with no event since `olderThanNs` (CLOCK_MONOTONIC). */
  evictIdle(olderThanNs: number): number {
    let n = 0;
    for (const [id, conn] of this._conns) {
      if (conn.lastNs >= olderThanNs) break; // the rest were active later
      this._evict(id, conn);
      n++;
    }
    return n;
  }

  private _connectionFor(ev: DataEvent): Connection {
    let conn = this._conns.get(ev.sockId);
    if (conn) {
      this._conns.delete(ev.sockId);
      this._conns.set(ev.sockId, conn);
      if (conn.info.pid !== ev.pid) conn.info = connectionInfo(ev); // socket passed to another process
      return conn;
    }
    if (this._conns.size >= this._maxConnections) {
      const [id, oldest] = this._conns.entries().next().value as [number, Connection];
      this._evict(id, oldest);
    }
    conn = this._newConnection(ev);
    this._conns.set(ev.sockId, conn);
    this.counters.connectionsOpened++;
    return conn;
  }

  private _newConnection(ev: DataEvent): Connection {
    const conn: Connection = {
      info: connectionInfo(ev),
      pending: [],
      lastNs: ev.tsNs,
      egress: undefined as unknown as DirectionState,
      ingress: undefined as unknown as DirectionState,
    };
    const direction = (d: Direction): DirectionState => ({
      nextSeq: undefined,
      parser: new Http1StreamParser(
        {
          message: (head) => this._onMessage(conn, d, head),
          problem: (kind) => this.counters.problems[kind]++,
        },
        { maxHeaderBytes: this._opts.maxHeaderBytes, requestMethod: () => conn.pending[0]?.head.method },
      ),
    });
    conn.egress = direction('egress');
    conn.ingress = direction('ingress');
    return conn;
  }

  private _gap(dir: DirectionState, bytes: number): void {
    this.counters.gapBytes += bytes;
    dir.parser.gap(bytes);
  }

  private _evict(id: number, conn: Connection): void {
    this._conns.delete(id);
    this.counters.connectionsEvicted++;
    this._end(conn, 'evicted');
  }

  private _end(conn: Connection, reason: UnansweredReason): void {
    conn.egress.parser.end();
    conn.ingress.parser.end();
    for (const p of conn.pending.splice(0)) this._unanswered(conn, p, reason);
  }

  private _unanswered(conn: Connection, p: PendingRequest, reason: UnansweredReason): void {
    this.counters.unanswered++;
    this.counters.exchanges++;
    this._opts.onExchange({ role: p.role, connection: conn.info, request: p.head, unanswered: reason });
  }

  private _onMessage(conn: Connection, direction: Direction, head: HttpMessageHead): void {
    if (head.truncated) this.counters.truncatedMessages++;
    if (head.kind === 'request') this._onRequest(conn, direction, head);
    else this._onResponse(conn, head);
  }

  private _onRequest(conn: Connection, direction: Direction, head: HttpRequestHead): void {
    this.counters.requests++;
    if (conn.pending.length >= this._maxPending) {
      this._unanswered(conn, conn.pending.shift()!, 'too_many_pending');
    }
    conn.pending.push({ head, role: direction === 'egress' ? 'client' : 'server' });
  }

  private _onResponse(conn: Connection, head: HttpResponseHead): void {
    this.counters.responses++;
    const req = conn.pending.shift();
    if (!req) {
      this.counters.orphanResponses++;
      return;
    }
    this.counters.exchanges++;
    this._opts.onExchange({ role: req.role, connection: conn.info, request: req.head, response: head });
  }
}
