/**
 * --record writes captured bytes with secrets masked: built kernel frames go
 * through RecordingMasker, split at every boundary, and the masked stream is
 * both free of the secrets and still replays to the same exchanges.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConnectionTracker, type HttpExchange } from '../../src/http';
import { DEFAULT_CAPTURE_HEADERS, DEFAULT_REDACT_HEADERS, HeaderRules } from '../../src/otel';
import { RecordingMasker } from '../../src/source';
import { eventsOf } from '../../src/source/recording';
import { frame } from '../../src/source/frames';
import { ConnectionSim, readyFrame } from '../helpers/events';

const rules = new HeaderRules({
  capture: DEFAULT_CAPTURE_HEADERS,
  redact: DEFAULT_REDACT_HEADERS,
  hash: ['x-session'],
  hashKey: Buffer.from('0123456789abcdef0123'),
});
const isSecret = (name: string) => rules.isSecret(name);

const REQUEST =
  'GET http://user:PROXY-S3CRET@origin.test/cb?code=1&access_token=QUERY-S3CRET&x=2 HTTP/1.1\r\n' +
  'Host: origin.test\r\n' +
  'Authorization: Bearer AUTH-S3CRET\r\n' +
  'X-Folded-Token: FOLD-S3CRET-1\r\n' +
  ' FOLD-S3CRET-2\r\n' +
  'X-Session: SESSION-S3CRET\r\n' +
  'Referer: https://app.test/p?reset_token=REF-S3CRET#top\r\n' +
  'X-Tenant: acme\r\n' +
  'Content-Length: 5\r\n' +
  '\r\n' +
  'hello';
const RESPONSE = 'HTTP/1.1 200 OK\r\nSet-Cookie: sid=COOKIE-S3CRET; HttpOnly\r\nContent-Length: 2\r\n\r\nok';
const SECRETS = ['PROXY-S3CRET', 'QUERY-S3CRET', 'AUTH-S3CRET', 'FOLD-S3CRET', 'SESSION-S3CRET', 'REF-S3CRET', 'COOKIE-S3CRET'];

/** The loader's output for one exchange, each message cut into pieces of `piece` bytes (one data frame each). */
function capture(piece: number): Buffer {
  const conn = new ConnectionSim({ pid: 50, comm: 'curl', sockId: 12345 });
  const frames = [readyFrame()];
  for (const [dir, text] of [['egress', REQUEST], ['ingress', RESPONSE]] as const) {
    for (let i = 0; i < text.length; i += piece) frames.push(conn.dataFrame(dir, text.slice(i, i + piece)));
  }
  frames.push(conn.closeFrame());
  return Buffer.concat(frames.map(frame));
}

/** Every data event's bytes, in order, as text. */
function streamText(payload: Buffer): string {
  let text = '';
  for (const ev of eventsOf(payload)) if (ev.kind === 'data') text += ev.data.toString('latin1');
  return text;
}

function replay(payload: Buffer): HttpExchange[] {
  const out: HttpExchange[] = [];
  const tracker = new ConnectionTracker({ maxHeaderBytes: 16384, onExchange: (e) => out.push(e) });
  for (const ev of eventsOf(payload)) {
    if (ev.kind === 'data') tracker.onData(ev);
    else if (ev.kind === 'close') tracker.onClose(ev);
  }
  tracker.flush();
  return out;
}

describe('RecordingMasker', () => {
  for (const piece of [1, 2, 3, 7, 16, 64, 10_000]) {
    it(`hides every secret, keeps lengths, still replays (${piece}-byte pieces, odd chunking)`, () => {
      const raw = capture(piece);
      const masker = new RecordingMasker(isSecret);
      // The loader's stdout arrives in arbitrary chunks, not frame by frame.
      const parts: Buffer[] = [];
      for (let i = 0; i < raw.length; i += 13) parts.push(masker.push(raw.subarray(i, i + 13))!);
      const masked = Buffer.concat(parts);

      assert.equal(masked.length, raw.length, 'same bytes count: lengths and sequence numbers still hold');
      // The captured bytes joined up again (a secret split over frames is whole here), and the file as it is.
      const text = streamText(masked);
      const file = masked.toString('latin1');
      assert.ok(streamText(raw).includes('AUTH-S3CRET'), 'the capture had the secrets');
      for (const s of SECRETS) assert.ok(!text.includes(s) && !file.includes(s), `${s} is gone`);
      for (const kept of ['Host: origin.test', 'X-Tenant: acme', '?code=1&access_token=', '&x=2', '?reset_token=', '#top', 'hello']) {
        assert.ok(text.includes(kept), `${kept} is kept`);
      }
      // A URL's authority split over two frames is hidden whole (it might be userinfo); in one frame only userinfo is.
      if (piece === 10_000) for (const kept of ['@origin.test/cb', 'https://app.test/p']) assert.ok(text.includes(kept), `${kept} is kept`);

      const [original] = replay(raw);
      const [again] = replay(masked);
      assert.equal(again.request.method, original.request.method);
      assert.equal(again.response?.status, 200);
      assert.deepEqual(
        again.request.headers.filter((_, i) => i % 2 === 0),
        original.request.headers.filter((_, i) => i % 2 === 0),
        'the same headers, in order',
      );
      assert.match(again.request.target, /^http:\/\/\*+@origin\.test\/cb\?code=1&access_token=\*+&x=2$/);
      assert.match(again.request.headers[again.request.headers.indexOf('authorization') + 1], /^\*+$/);
    });
  }

  it('after bytes it never saw, hides the rest of the line unless a message starts there', () => {
    const conn = new ConnectionSim({ sockId: 777 });
    const masker = new RecordingMasker(isSecret);
    masker.maskFrame(conn.dataFrame('egress', 'GET / HTTP/1.1\r\nAuthorization: Bea'));
    // 10 bytes went by uncaptured, then the rest of a header line (its name unknown to us).
    const tail = masker.maskFrame(conn.dataFrame('egress', 'rer GAP-S3CRET\r\nX-Ok: 1\r\n\r\n', { skipBefore: 10 }));
    assert.match(tail.toString('latin1'), /\*{14}\r\nX-Ok: 1\r\n\r\n$/);
    const next = masker.maskFrame(conn.dataFrame('egress', 'GET /after HTTP/1.1\r\n\r\n', { skipBefore: 500 }));
    assert.match(next.toString('latin1'), /GET \/after HTTP\/1\.1\r\n\r\n$/, 'a message start after a gap is kept');
  });

  it('forgets a connection when it closes: an id used again starts a new stream', () => {
    const conn = new ConnectionSim({ sockId: 778 });
    const masker = new RecordingMasker(isSecret);
    masker.maskFrame(conn.dataFrame('egress', 'GET / HTTP/1.1\r\nAuthorization: Bearer OPEN-'));
    masker.maskFrame(conn.closeFrame());
    // The next socket with that id, its bytes happening to continue the old sequence numbers.
    const next = masker.maskFrame(conn.dataFrame('egress', 'GET /reused HTTP/1.1\r\n\r\n'));
    assert.match(next.toString('latin1'), /GET \/reused HTTP\/1\.1\r\n\r\n$/);
  });

  it('masks TLS plaintext too, as its own stream beside the ciphertext of the same id', () => {
    const plain = new ConnectionSim({ sockId: 4242, tls: true });
    const cipher = new ConnectionSim({ sockId: 4242 });
    const masker = new RecordingMasker(isSecret);
    masker.maskFrame(plain.dataFrame('egress', 'GET /tls HTTP/1.1\r\nAuthori'));
    masker.maskFrame(cipher.dataFrame('egress', Buffer.from([0x17, 0x03, 0x03, 0x00, 0x40])));
    const rest = masker.maskFrame(plain.dataFrame('egress', 'zation: Bearer TLS-S3CRET\r\nX-Ok: 1\r\n\r\n'));
    assert.match(rest.toString('latin1'), /zation:\*{18}\r\nX-Ok: 1\r\n\r\n$/);
  });

  it('hides everything an HTTP/2 connection sends after its preface (HPACK cannot be read by lines)', () => {
    const client = new ConnectionSim({ sockId: 9090 });
    const masker = new RecordingMasker(isSecret);
    // HEADERS frame with a literal, never-indexed 'authorization' (HPACK index 23) and a plain value.
    const literal = Buffer.concat([Buffer.from([0x10 | 0x0f, 23 - 15, 14]), Buffer.from('Bearer H2-S3CR')]);
    const headers = Buffer.concat([Buffer.from([0, 0, literal.length, 0x01, 0x05, 0, 0, 0, 1]), literal]);
    const first = masker.maskFrame(client.dataFrame('egress', Buffer.concat([Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'), headers])));
    const later = masker.maskFrame(client.dataFrame('egress', headers));
    const server = masker.maskFrame(client.dataFrame('ingress', Buffer.from('\x00\x00\x00\x04\x00\x00\x00\x00\x00set-cookie', 'latin1')));
    for (const f of [first, later, server]) assert.ok(!f.toString('latin1').includes('H2-S3CR') && !f.toString('latin1').includes('set-cookie'));
    assert.ok(first.toString('latin1').includes('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n*****'), 'the preface itself is kept');
  });

  it('hides what the records redact: new default names, their query parameters, queries of paths in any header', () => {
    const conn = new ConnectionSim({ sockId: 9191 });
    const masker = new RecordingMasker(isSecret);
    const out = masker
      .maskFrame(
        conn.dataFrame(
          'egress',
          'GET /v1/x?api_key=Q1-S3CRET&q=1 HTTP/1.1\r\n' +
            'X-Goog-Api-Key: H1-S3CRET\r\nApi-Key: H2-S3CRET\r\nX-Session-Id: H3-S3CRET\r\nX-Amz-Security-Token: H4-S3CRET\r\n' +
            'X-Forwarded-Uri: /cb?access_token=U1-S3CRET&state=ok\r\nX-Original-URL: /m?key=U2-S3CRET\r\n' +
            'WWW-Authenticate: Bearer realm="api"\r\n\r\n',
        ),
      )
      .toString('latin1');
    assert.doesNotMatch(out, /S3CRET/);
    for (const kept of ['?api_key=', '&q=1', 'X-Goog-Api-Key:', '&state=ok', 'WWW-Authenticate: Bearer realm="api"']) assert.ok(out.includes(kept), kept);
  });

  it('passes non-data frames through untouched', () => {
    const masker = new RecordingMasker(isSecret);
    const ready = readyFrame();
    assert.equal(masker.maskFrame(ready), ready);
  });
});
