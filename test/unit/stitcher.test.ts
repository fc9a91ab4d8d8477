import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConnectionTracker, type HttpExchange } from '../../src/http';
import { CONSTANTS as C } from '../../src/source/layout';
import { ConnectionSim } from '../helpers/events';

function tracker(opts: { maxConnections?: number; maxHeaderBytes?: number } = {}) {
  const exchanges: HttpExchange[] = [];
  const t = new ConnectionTracker({
    maxHeaderBytes: opts.maxHeaderBytes ?? 16384,
    maxConnections: opts.maxConnections,
    onExchange: (e) => exchanges.push(e),
  });
  return { t, exchanges };
}

const REQ = (path: string) => `GET ${path} HTTP/1.1\r\nHost: svc:8080\r\nX-Req: ${path}\r\n\r\n`;
const RES = (status: number, body = 'ok') => `HTTP/1.1 ${status} X\r\nContent-Length: ${body.length}\r\n\r\n${body}`;

describe('ConnectionTracker', () => {
  it('pairs a request the process sent with the response it read: role client', () => {
    const { t, exchanges } = tracker();
    const c = new ConnectionSim({ local: ['127.0.0.1', 40000], remote: ['127.0.0.1', 8080], comm: 'curl', pid: 77 });
    const req = c.data('egress', REQ('/a'));
    const res = c.data('ingress', RES(200), { afterNs: 5_000_000 });
    t.onData(req);
    t.onData(res);
    assert.equal(exchanges.length, 1);
    const ex = exchanges[0];
    assert.equal(ex.role, 'client');
    assert.equal(ex.request.target, '/a');
    assert.equal(ex.response?.status, 200);
    assert.equal(ex.request.startNs, req.tsNs);
    assert.equal(ex.response?.endNs, res.tsNs);
    assert.deepEqual(ex.connection, {
      pid: 77,
      comm: 'curl',
      networkType: 'ipv4',
      local: { address: '127.0.0.1', port: 40000 },
      remote: { address: '127.0.0.1', port: 8080 },
      tls: false,
    });
  });

  it('counts header values with NUL or CR in the exchanges it reports, and keeps them', () => {
    const { t, exchanges } = tracker();
    const c = new ConnectionSim();
    t.onData(c.data('egress', 'GET / HTTP/1.1\r\nX-A: 1\r2\r\n\r\n'));
    t.onData(c.data('ingress', 'HTTP/1.1 200 OK\r\nX-B: \x00\r\nContent-Length: 0\r\n\r\n'));
    assert.deepEqual([exchanges[0].request.headers, exchanges[0].response?.headers], [['x-a', '1\r2'], ['x-b', '\x00', 'content-length', '0']]);
    assert.equal(t.counters.invalidValues, 2);
  });

  it('a process that reads the request is the server', () => {
    const { t, exchanges } = tracker();
    const c = new ConnectionSim({ local: ['::1', 8080], remote: ['::1', 50000] });
    t.onData(c.data('ingress', REQ('/srv')));
    t.onData(c.data('egress', RES(404)));
    assert.equal(exchanges[0].role, 'server');
    assert.equal(exchanges[0].connection.networkType, 'ipv6');
    assert.equal(exchanges[0].connection.local?.address, '::1');
  });

  it('keeps exchanges of one keep-alive connection in order, and pipelined ones too', () => {
    const { t, exchanges } = tracker();
    const c = new ConnectionSim();
    t.onData(c.data('egress', REQ('/1') + REQ('/2'))); // two requests, one write
    t.onData(c.data('ingress', RES(200, 'one')));
    t.onData(c.data('ingress', RES(201, 'two') + RES(202, 'three').slice(0, 10)));
    t.onData(c.data('egress', REQ('/3')));
    t.onData(c.data('ingress', RES(202, 'three').slice(10)));
    assert.deepEqual(
      exchanges.map((e) => `${e.request.target} ${e.response?.status}`),
      ['/1 200', '/2 201', '/3 202'],
    );
  });

  it('reassembles a request written one byte per syscall', () => {
    const { t, exchanges } = tracker();
    const c = new ConnectionSim();
    for (const ch of REQ('/bytes')) t.onData(c.data('egress', ch));
    t.onData(c.data('ingress', RES(200)));
    assert.equal(exchanges.length, 1);
    assert.deepEqual(exchanges[0].request.headers, ['host', 'svc:8080', 'x-req', '/bytes']);
  });

  it('skips bytes it never saw, known from the TCP sequence numbers (sendfile bodies)', () => {
    const { t, exchanges } = tracker();
    const c = new ConnectionSim();
    t.onData(c.data('ingress', REQ('/file')));
    t.onData(c.data('egress', 'HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n'));
    // the body went out by sendfile(): no event, the next write's seq is 100000 further
    t.onData(c.data('ingress', REQ('/next')));
    t.onData(c.data('egress', RES(200), { skipBefore: 100000 }));
    assert.deepEqual(
      exchanges.map((e) => e.request.target),
      ['/file', '/next'],
    );
    assert.equal(t.counters.gapBytes, 100000);
  });

  it('counts a copy cut at the capture limit as a gap, not as glued bytes', () => {
    const { t, exchanges } = tracker();
    const c = new ConnectionSim();
    t.onData(c.data('egress', REQ('/up')));
    const body = 'b'.repeat(50_000);
    t.onData(c.data('ingress', `HTTP/1.1 200 OK\r\nContent-Length: ${body.length}\r\n\r\n${body}`, { copied: 16384 }));
    t.onData(c.data('egress', REQ('/after')));
    t.onData(c.data('ingress', RES(200)));
    assert.deepEqual(
      exchanges.map((e) => e.request.target),
      ['/up', '/after'],
    );
  });

  it('a call the kernel sent in several events (HT_FLAG_MORE) reads as one stream', () => {
    const { t, exchanges } = tracker({ maxHeaderBytes: 65536 });
    const c = new ConnectionSim();
    t.onData(c.data('egress', REQ('/big-head')));
    const head = `HTTP/1.1 200 OK\r\n${Array.from({ length: 80 }, (_, i) => `X-Big-${i}: ${'b'.repeat(500)}\r\n`).join('')}Content-Length: 2\r\n\r\nok`;
    const bytes = Buffer.from(head, 'latin1');
    // ht_copy_steps cuts one 40 KiB read into events of HT_MAX_DATA: each stands for its own bytes,
    // the last one for the rest of the call.
    for (let at = 0; at < bytes.length; at += C.HT_MAX_DATA) {
      t.onData(c.data('ingress', bytes.subarray(at, at + C.HT_MAX_DATA), { more: at + C.HT_MAX_DATA < bytes.length }));
    }
    t.onData(c.data('egress', REQ('/after')));
    t.onData(c.data('ingress', RES(200)));
    assert.deepEqual(
      exchanges.map((e) => e.request.target),
      ['/big-head', '/after'],
    );
    const big = exchanges[0].response!;
    assert.equal(big.truncated, undefined);
    assert.equal(big.headers.length, 2 * 81);
    assert.deepEqual(big.headers.slice(-4), ['x-big-79', 'b'.repeat(500), 'content-length', '2']);
    assert.equal(t.counters.gapBytes, 0);
  });

  it('joining mid-connection: ignores the orphan response, then pairs normally', () => {
    const { t, exchanges } = tracker();
    const c = new ConnectionSim();
    t.onData(c.data('ingress', 'tail of some body\r\n' + RES(200)));
    t.onData(c.data('egress', REQ('/x')));
    t.onData(c.data('ingress', RES(201)));
    assert.equal(t.counters.orphanResponses, 1);
    assert.deepEqual(
      exchanges.map((e) => `${e.request.target} ${e.response?.status}`),
      ['/x 201'],
    );
  });

  it('reports a request whose connection closed unanswered', () => {
    const { t, exchanges } = tracker();
    const c = new ConnectionSim();
    t.onData(c.data('ingress', REQ('/hang')));
    t.onClose(c.close());
    assert.equal(exchanges.length, 1);
    assert.equal(exchanges[0].response, undefined);
    assert.equal(exchanges[0].unanswered, 'connection_closed');
    assert.equal(t.size, 0);
  });

  it('flush() reports waiting requests as agent_stopped', () => {
    const { t, exchanges } = tracker();
    t.onData(new ConnectionSim().data('egress', REQ('/pending')));
    t.flush();
    assert.equal(exchanges[0].unanswered, 'agent_stopped');
  });

  it('separates connections by socket and evicts the least recently active beyond the limit', () => {
    const { t, exchanges } = tracker({ maxConnections: 2 });
    const a = new ConnectionSim();
    const b = new ConnectionSim();
    const c = new ConnectionSim();
    t.onData(a.data('egress', REQ('/a')));
    t.onData(b.data('egress', REQ('/b')));
    t.onData(a.data('ingress', RES(200))); // a is now the most recent
    t.onData(c.data('egress', REQ('/c'))); // evicts b
    assert.equal(t.size, 2);
    assert.equal(t.counters.connectionsEvicted, 1);
    assert.deepEqual(
      exchanges.map((e) => `${e.request.target} ${e.response?.status ?? e.unanswered}`),
      ['/a 200', '/b evicted'],
    );
  });

  it('evictIdle() drops connections quiet since a given time', () => {
    const { t, exchanges } = tracker();
    const old = new ConnectionSim();
    t.onData(old.data('egress', REQ('/old')));
    const cutoff = ConnectionSim.now() + 1;
    const fresh = new ConnectionSim();
    t.onData(fresh.data('egress', REQ('/fresh'), { afterNs: 10 }));
    assert.equal(t.evictIdle(cutoff), 1);
    assert.deepEqual(
      exchanges.map((e) => e.request.target),
      ['/old'],
    );
    assert.equal(t.size, 1);
  });

  it('a socket reused after close starts a fresh connection', () => {
    const { t, exchanges } = tracker();
    const c = new ConnectionSim({ sockId: 12345 });
    t.onData(c.data('egress', REQ('/first').slice(0, 10)));
    t.onClose(c.close());
    const again = new ConnectionSim({ sockId: 12345, egressSeq: 77, ingressSeq: 88 });
    t.onData(again.data('egress', REQ('/second')));
    t.onData(again.data('ingress', RES(200)));
    assert.deepEqual(
      exchanges.map((e) => e.request.target),
      ['/second'],
    );
  });
});
