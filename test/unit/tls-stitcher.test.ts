/**
 * The http stage on TLS events: plaintext from the SSL probes keyed by TLS
 * session, sockets learned late, --port for sessions, and ciphertext on the
 * socket under a session recognised and ignored.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConnectionTracker, type HttpExchange } from '../../src/http';
import { looksLikeTlsRecord } from '../../src/http/stitcher';
import { ConnectionSim } from '../helpers/events';

function tracker(ports?: number[]) {
  const exchanges: HttpExchange[] = [];
  const t = new ConnectionTracker({ maxHeaderBytes: 16384, ...(ports ? { filter: { ports } } : {}), onExchange: (e) => exchanges.push(e) });
  return { t, exchanges };
}

const REQ = (p: string) => `GET ${p} HTTP/1.1\r\nHost: api.example:443\r\nX-Req: ${p}\r\n\r\n`;
const RES = `HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok`;
/** A TLS 1.3 ClientHello record header and the start of its body. */
const CLIENT_HELLO = Buffer.from('16030100f4010000f00303', 'hex');
/** An application-data record, as seen when joining an established session. */
const APP_DATA = Buffer.concat([Buffer.from('1703030040', 'hex'), Buffer.alloc(64, 0x5a)]);

describe('ConnectionTracker: TLS sessions', () => {
  it('pairs TLS plaintext into an exchange marked tls, with the socket addresses', () => {
    const { t, exchanges } = tracker();
    const s = new ConnectionSim({ tls: true, local: ['127.0.0.1', 51000], remote: ['127.0.0.1', 443], comm: 'curl' });
    t.onData(s.data('egress', REQ('/secure')));
    t.onData(s.data('ingress', RES));
    assert.equal(exchanges.length, 1);
    assert.equal(exchanges[0].connection.tls, true);
    assert.equal(exchanges[0].role, 'client');
    assert.deepEqual(exchanges[0].connection.remote, { address: '127.0.0.1', port: 443 });
    assert.equal(t.counters.tlsSessions, 1);
  });

  it('learns the socket of a session from a later event (memory BIO: the first write has none)', () => {
    const { t, exchanges } = tracker();
    const s = new ConnectionSim({ tls: true, local: ['10.0.0.5', 52000], remote: ['10.0.0.9', 8443], comm: 'node' });
    t.onData(s.data('egress', REQ('/first'), { noSocket: true }));
    t.onData(s.data('ingress', RES));
    assert.equal(exchanges.length, 1);
    assert.deepEqual(exchanges[0].connection.local, { address: '10.0.0.5', port: 52000 });
    assert.equal(exchanges[0].connection.networkType, 'ipv4');
  });

  it('reports a session whose socket never became known without addresses', () => {
    const { t, exchanges } = tracker();
    const s = new ConnectionSim({ tls: true });
    t.onData(s.data('egress', REQ('/x'), { noSocket: true }));
    t.onData(s.data('ingress', RES, { noSocket: true }));
    assert.equal(exchanges.length, 1);
    assert.equal(exchanges[0].connection.local, undefined);
    assert.equal(exchanges[0].connection.networkType, undefined);
  });

  it('applies --port to sessions once their socket is known, and drops those never known', () => {
    const { t, exchanges } = tracker([443]);
    const wanted = new ConnectionSim({ tls: true, remote: ['127.0.0.1', 443] });
    t.onData(wanted.data('egress', REQ('/kept'), { noSocket: true }));
    t.onData(wanted.data('ingress', RES));
    const other = new ConnectionSim({ tls: true, remote: ['127.0.0.1', 9443] });
    t.onData(other.data('egress', REQ('/other-port')));
    t.onData(other.data('ingress', RES));
    const unknown = new ConnectionSim({ tls: true });
    t.onData(unknown.data('egress', REQ('/no-socket'), { noSocket: true }));
    t.onData(unknown.data('ingress', RES, { noSocket: true }));
    assert.deepEqual(
      exchanges.map((e) => e.request.target),
      ['/kept'],
    );
    assert.equal(t.counters.filtered, 2);
  });

  it('under --port, TLS traffic of other ports costs no parsing and inflates no counter', () => {
    const { t, exchanges } = tracker([443]);
    // Joined mid-session: a response first, on a port not wanted, then garbage.
    const other = new ConnectionSim({ tls: true, remote: ['127.0.0.1', 9443] });
    t.onData(other.data('ingress', RES));
    t.onData(other.data('ingress', 'not http at all\r\n'));
    // A response from a session whose socket is not known: not counted as an orphan either.
    const unknown = new ConnectionSim({ tls: true });
    t.onData(unknown.data('ingress', RES, { noSocket: true }));
    assert.equal(exchanges.length, 0);
    assert.equal(t.counters.orphanResponses, 0);
    const p = t.counters.problems;
    assert.equal(p.invalid_start_line + p.gap_resync, 0);
    assert.equal(t.counters.filtered, 1, 'the session on port 9443');
  });

  it('keeps session ids and socket ids apart even when the numbers are equal', () => {
    const { t, exchanges } = tracker();
    const plain = new ConnectionSim({ sockId: 77 });
    const tls = new ConnectionSim({ sockId: 77, tls: true });
    t.onData(plain.data('egress', REQ('/plain')));
    t.onData(tls.data('egress', REQ('/tls')));
    t.onData(tls.data('ingress', RES));
    t.onData(plain.data('ingress', RES));
    assert.deepEqual(
      exchanges.map((e) => [e.request.target, e.connection.tls]),
      [
        ['/tls', true],
        ['/plain', false],
      ],
    );
  });

  it('a TLS close event ends the session: a waiting request is reported unanswered', () => {
    const { t, exchanges } = tracker();
    const s = new ConnectionSim({ tls: true, sockId: 5 });
    const plain = new ConnectionSim({ sockId: 5 });
    t.onData(plain.data('egress', REQ('/plain-waits')));
    t.onData(s.data('egress', REQ('/tls-waits')));
    t.onClose(s.close());
    assert.deepEqual(
      exchanges.map((e) => [e.request.target, e.unanswered]),
      [['/tls-waits', 'connection_closed']],
    );
    assert.equal(t.size, 1, 'the plain connection with the same id is still tracked');
  });
});

describe('ConnectionTracker: ciphertext on sockets', () => {
  it('ignores a socket whose stream starts with a TLS handshake record: no record, no parser problem', () => {
    const { t, exchanges } = tracker();
    const c = new ConnectionSim();
    t.onData(c.data('egress', CLIENT_HELLO));
    t.onData(c.data('ingress', Buffer.from('160303007a020000760303', 'hex')));
    // Even bytes that would parse as HTTP are ignored once the socket is known to carry TLS.
    t.onData(c.data('egress', REQ('/looks-plain')));
    t.onData(c.data('ingress', RES));
    assert.equal(exchanges.length, 0);
    assert.equal(t.counters.ciphertextConnections, 1);
    const p = t.counters.problems;
    assert.equal(p.invalid_start_line + p.gap_resync + p.invalid_framing + p.invalid_chunk + p.head_overflow, 0);
  });

  it('recognises application-data records when joining an established TLS connection', () => {
    const { t } = tracker();
    const c = new ConnectionSim();
    t.onData(c.data('ingress', APP_DATA));
    assert.equal(t.counters.ciphertextConnections, 1);
  });

  it('looksLikeTlsRecord accepts record headers and nothing HTTP', () => {
    assert.equal(looksLikeTlsRecord(CLIENT_HELLO), true);
    assert.equal(looksLikeTlsRecord(APP_DATA), true);
    assert.equal(looksLikeTlsRecord(Buffer.from('150303', 'hex')), true); // alert
    for (const text of ['GET / HTTP/1.1\r\n', 'HTTP/1.1 200 OK\r\n', 'PRI * HTTP/2.0\r\n', '\x16\x03', '\x18\x03\x03']) {
      assert.equal(looksLikeTlsRecord(Buffer.from(text, 'latin1')), false, JSON.stringify(text));
    }
  });
});
