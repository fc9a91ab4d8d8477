import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConnectionTracker, type HttpExchange } from '../../src/http';
import { MAX_HELD_BYTES } from '../../src/http/parse';
import { ConnectionSim } from '../helpers/events';

function tracker() {
  const exchanges: HttpExchange[] = [];
  const t = new ConnectionTracker({ maxHeaderBytes: 16384, onExchange: (e) => exchanges.push(e) });
  return { t, exchanges };
}

const summary = (e: HttpExchange) => `${e.role} ${e.request.method} ${e.request.target} -> ${e.response?.status ?? e.unanswered}`;

const UPGRADE = 'GET /ws HTTP/1.1\r\nHost: ws.test\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n';
const SWITCH = 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=\r\n\r\n';
const FAKE_REQ = 'GET /x HTTP/1.1\r\nHost: fake\r\n\r\n';
const FAKE_RES = 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n';

/** A masked client frame with mask key 0: its payload travels as plain text (RFC 6455 §5.3). */
function clientFrame(text: string): Buffer {
  const payload = Buffer.from(text, 'latin1');
  return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length, 0, 0, 0, 0]), payload]);
}
function serverFrame(text: string): Buffer {
  const payload = Buffer.from(text, 'latin1');
  return Buffer.concat([Buffer.from([0x81, payload.length]), payload]);
}

describe('protocol switches: a connection stops being HTTP', () => {
  for (const role of ['client', 'server'] as const) {
    it(`${role} side: after 101, frames that hold HTTP text give no records; their bytes are counted`, () => {
      const { t, exchanges } = tracker();
      const c = new ConnectionSim();
      const out = role === 'client' ? 'egress' : 'ingress';
      const back = role === 'client' ? 'ingress' : 'egress';
      t.onData(c.data(out, UPGRADE));
      t.onData(c.data(back, SWITCH));
      const frames = [clientFrame(FAKE_REQ), serverFrame(FAKE_RES), clientFrame(FAKE_REQ + FAKE_REQ)];
      t.onData(c.data(out, frames[0]));
      t.onData(c.data(back, frames[1]));
      t.onData(c.data(out, frames[2], { copied: 10 })); // a call cut by the kernel's copy limit: still counted
      t.onClose(c.close());
      assert.deepEqual(exchanges.map(summary), [`${role} GET /ws -> 101`]);
      assert.equal(t.counters.tunnelConnections, 1);
      assert.equal(t.counters.tunnelBytes, frames.reduce((n, f) => n + f.length, 0));
      assert.equal(t.counters.requests, 1);
      assert.equal(t.counters.gapBytes, 0, 'bytes after the switch are not a capture gap');
    });
  }

  it('bytes in the same read as the 101, or sent before it arrived, are never parsed', () => {
    const { t, exchanges } = tracker();
    const c = new ConnectionSim();
    const early = clientFrame(FAKE_REQ);
    // The server reads the upgrade request and the client's first frame in one call.
    t.onData(c.data('ingress', Buffer.concat([Buffer.from(UPGRADE), early])));
    const late = serverFrame(FAKE_RES);
    t.onData(c.data('egress', Buffer.concat([Buffer.from(SWITCH), late])));
    t.onData(c.data('ingress', clientFrame(FAKE_REQ)));
    assert.deepEqual(exchanges.map(summary), ['server GET /ws -> 101']);
    assert.equal(t.counters.tunnelBytes, early.length + late.length + clientFrame(FAKE_REQ).length);
  });

  it('an Upgrade answered without a switch: what followed it is parsed as HTTP again', () => {
    const { t, exchanges } = tracker();
    const c = new ConnectionSim();
    // The client pipelines a second request before the answer to the first.
    t.onData(c.data('egress', UPGRADE));
    t.onData(c.data('egress', 'GET /next HTTP/1.1\r\nHost: ws.test\r\n\r\n'));
    t.onData(c.data('ingress', 'HTTP/1.1 426 Upgrade Required\r\nContent-Length: 0\r\n\r\n'));
    t.onData(c.data('ingress', 'HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok'));
    assert.deepEqual(exchanges.map(summary), ['client GET /ws -> 426', 'client GET /next -> 200']);
    assert.equal(exchanges[1].request.headers[1], 'ws.test');
    assert.equal(t.counters.tunnelConnections, 0);
  });

  it('CONNECT: a 2xx makes a tunnel, a refusal does not', () => {
    const tunnel = tracker();
    const c = new ConnectionSim();
    tunnel.t.onData(c.data('egress', 'CONNECT db.test:443 HTTP/1.1\r\nHost: db.test:443\r\n\r\n'));
    tunnel.t.onData(c.data('ingress', 'HTTP/1.1 200 Connection Established\r\n\r\n'));
    tunnel.t.onData(c.data('egress', FAKE_REQ));
    tunnel.t.onData(c.data('ingress', FAKE_RES));
    assert.deepEqual(tunnel.exchanges.map(summary), ['client CONNECT db.test:443 -> 200']);
    assert.equal(tunnel.t.counters.tunnelBytes, FAKE_REQ.length + FAKE_RES.length);

    const refused = tracker();
    const d = new ConnectionSim();
    refused.t.onData(d.data('egress', 'CONNECT db.test:443 HTTP/1.1\r\nHost: db.test:443\r\n\r\n'));
    refused.t.onData(d.data('ingress', 'HTTP/1.1 407 Proxy Authentication Required\r\nContent-Length: 0\r\n\r\n'));
    refused.t.onData(d.data('egress', FAKE_REQ));
    refused.t.onData(d.data('ingress', FAKE_RES));
    assert.deepEqual(refused.exchanges.map(summary), ['client CONNECT db.test:443 -> 407', 'client GET /x -> 200']);
    assert.equal(refused.t.counters.tunnelConnections, 0);
  });

  it('a held direction keeps at most MAX_HELD_BYTES; the rest is a gap, and still never a fake record', () => {
    const { t, exchanges } = tracker();
    const c = new ConnectionSim();
    t.onData(c.data('egress', UPGRADE));
    const chunk = Buffer.concat([clientFrame(FAKE_REQ), Buffer.alloc(MAX_HELD_BYTES)]);
    t.onData(c.data('egress', chunk));
    t.onData(c.data('ingress', SWITCH));
    assert.deepEqual(exchanges.map(summary), ['client GET /ws -> 101']);
    assert.equal(t.counters.tunnelBytes, chunk.length);
  });

  it('h2c keeps working: bytes held after the upgrade request go to HTTP/2', () => {
    const { t, exchanges } = tracker();
    const c = new ConnectionSim();
    t.onData(c.data('egress', 'GET /up HTTP/1.1\r\nHost: up.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAEAABAA\r\n\r\n'));
    t.onData(c.data('ingress', 'HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n'));
    assert.equal(t.counters.http2Connections, 1);
    assert.equal(t.counters.tunnelConnections, 0);
    assert.equal(exchanges.length, 0, 'the upgraded request is answered on stream 1');
  });
});
