/**
 * HTTP/2 bytes for unit tests: real ones, written by Node's own HTTP/2
 * (nghttp2) client and server talking over an in-memory pipe, and
 * hand-built frames for what real peers rarely send (CONTINUATION,
 * padding, upgrade). No sockets, no root.
 */
import * as http2 from 'node:http2';
import { Duplex } from 'node:stream';
import { ConnectionTracker, type HttpExchange } from '../../src/http';
import { ConnectionSim } from './events';

export interface Chunk {
  from: 'client' | 'server';
  data: Buffer;
}

/** Two connected in-memory streams that log every write in order. */
function pipePair(log: Chunk[]): [Duplex, Duplex] {
  const make = (from: Chunk['from'], peer: () => Duplex) =>
    new Duplex({
      read() {},
      write(chunk: Buffer, _enc, cb) {
        log.push({ from, data: Buffer.from(chunk) });
        peer().push(chunk);
        cb();
      },
      final(cb) {
        peer().push(null);
        cb();
      },
    });
  const client: Duplex = make('client', () => server);
  const server: Duplex = make('server', () => client);
  return [client, server];
}

export interface RecordOptions {
  server?: http2.ServerOptions;
  client?: http2.ClientSessionOptions;
  handler: (req: http2.Http2ServerRequest, res: http2.Http2ServerResponse) => void;
}

/**
 * Runs `script` against a real Node HTTP/2 server and returns what each side
 * wrote, in order. The script sees the log as it grows (to mark where a
 * request starts).
 */
export async function recordHttp2(
  opts: RecordOptions,
  script: (session: http2.ClientHttp2Session, log: readonly Chunk[]) => Promise<void>,
): Promise<Chunk[]> {
  const log: Chunk[] = [];
  const [c, s] = pipePair(log);
  const server = http2.createServer(opts.server ?? {}, opts.handler);
  server.emit('connection', s);
  const session = http2.connect('http://svc.test:8080', { ...opts.client, createConnection: () => c });
  try {
    await script(session, log);
  } finally {
    await new Promise<void>((resolve) => session.close(() => resolve()));
    await new Promise((r) => setImmediate(r));
  }
  return log;
}

/** One request on a session; resolves with the status once the response (and its trailers) ended. */
export function request(session: http2.ClientHttp2Session, headers: http2.OutgoingHttpHeaders, body?: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = session.request(headers, { endStream: body === undefined });
    let status = 0;
    req.on('response', (h) => (status = Number(h[':status'])));
    req.on('error', reject);
    req.resume();
    req.on('end', () => resolve(status));
    if (body !== undefined) req.end(body);
  });
}

export type View = 'client' | 'server';

/**
 * Joins consecutive writes of one side the way one writev() would send them
 * (Node writes a frame header and its payload as two chunks here).
 * `join(last, next)` says whether `next` goes with `last`.
 */
export function asWritev(chunks: Chunk[], join: (last: Chunk, next: Chunk) => boolean = () => true): Chunk[] {
  const writes: Chunk[] = [];
  for (const ch of chunks) {
    const last = writes[writes.length - 1];
    if (last && last.from === ch.from && join(last, ch)) last.data = Buffer.concat([last.data, ch.data]);
    else writes.push({ ...ch });
  }
  return writes;
}

/** The same bytes as the client or the server process sees them: its writes are egress. */
export function events(chunks: Chunk[], view: View, sim: ConnectionSim) {
  return chunks.map((ch) => sim.data(ch.from === view ? 'egress' : 'ingress', ch.data));
}

export function newSim(view: View): ConnectionSim {
  return view === 'client'
    ? new ConnectionSim({ local: ['127.0.0.1', 40000], remote: ['127.0.0.1', 8080], comm: 'client' })
    : new ConnectionSim({ local: ['127.0.0.1', 8080], remote: ['127.0.0.1', 40000], comm: 'server' });
}

export function tracker(maxHeaderBytes = 16384) {
  const exchanges: HttpExchange[] = [];
  const t = new ConnectionTracker({ maxHeaderBytes, onExchange: (e) => exchanges.push(e) });
  return { t, exchanges };
}

/** A frame as RFC 9113 §4.1 lays it out. */
export function frame(type: number, flags: number, streamId: number, payload: Buffer | string = Buffer.alloc(0)): Buffer {
  const p = typeof payload === 'string' ? Buffer.from(payload, 'latin1') : payload;
  const h = Buffer.alloc(9);
  h.writeUIntBE(p.length, 0, 3);
  h[3] = type;
  h[4] = flags;
  h.writeUInt32BE(streamId, 5);
  return Buffer.concat([h, p]);
}

/** HPACK literal field with a literal name, raw strings (RFC 7541 §6.2): with incremental indexing or not. */
export function literal(name: string, value: string, indexing = false): Buffer {
  const str = (s: string) => {
    const b = Buffer.from(s, 'latin1');
    if (b.length > 126) throw new Error('test literal too long');
    return Buffer.concat([Buffer.from([b.length]), b]);
  };
  return Buffer.concat([Buffer.from([indexing ? 0x40 : 0x00]), str(name), str(value)]);
}

/** A line per exchange, for comparing whole results. */
export function summary(ex: HttpExchange): string {
  const req = ex.request;
  const res = ex.response;
  const h = (l: string[]) => l.map((v, i) => (i % 2 ? `=${v}` : `${i ? ' ' : ''}${v}`)).join('');
  return (
    `${ex.role} ${req.method} ${req.target} ${req.authority ?? ''} [${h(req.headers)}]${req.truncated ? ` !${req.truncated}` : ''} -> ` +
    (res ? `${res.status} [${h(res.headers)}]${res.truncated ? ` !${res.truncated}` : ''}` : `(${ex.unanswered})`)
  );
}
