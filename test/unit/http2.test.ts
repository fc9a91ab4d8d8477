import assert from 'node:assert/strict';
import * as http2 from 'node:http2';
import { describe, it } from 'node:test';
import type { HttpExchange } from '../../src/http';
import { sniffHttp2 } from '../../src/http/h2/detect';
import { FrameReader, PREFACE, readFrameHeader, type Frame, type FrameHeader } from '../../src/http/h2/frames';
import { ConnectionSim } from '../helpers/events';
import { asWritev, events, frame, literal, newSim, recordHttp2, request, summary, tracker, type Chunk, type View } from '../helpers/h2';

const VIEWS: View[] = ['client', 'server'];

/** Three GETs with a repeated custom header (indexed after the first), one POST with trailers in the response. */
async function basicConversation(): Promise<Chunk[]> {
  return recordHttp2(
    {
      handler: (req, res) => {
        res.setHeader('x-srv', 'yes');
        if (req.url === '/trailers') {
          res.addTrailers({ 'grpc-status': '0', 'grpc-message': 'fine' });
          res.writeHead(200, { 'content-type': 'application/grpc' });
          res.end('body');
          return;
        }
        res.statusCode = req.url === '/missing' ? 404 : 200;
        res.end('hello');
      },
    },
    async (s) => {
      for (const path of ['/a?x=1', '/b', '/missing']) assert.ok(await request(s, { ':path': path, 'x-custom': 'same', 'x-path': path }));
      assert.equal(await request(s, { ':method': 'POST', ':path': '/trailers', 'content-type': 'application/grpc' }, 'payload'), 200);
    },
  );
}

function run(chunks: Chunk[], view: View, maxHeaderBytes?: number) {
  const { t, exchanges } = tracker(maxHeaderBytes);
  const sim = newSim(view);
  for (const ev of events(chunks, view, sim)) t.onData(ev);
  t.onClose(sim.close());
  return { t, exchanges };
}

/** Regular headers of a head without the ones whose values change per run. */
function stable(headers: string[]): string[] {
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) if (headers[i] !== 'date') out.push(headers[i], headers[i + 1]);
  return out;
}

describe('HTTP/2: real nghttp2 bytes (Node http2 client and server)', () => {
  for (const view of VIEWS) {
    it(`${view} side: requests paired with responses by stream, pseudo-headers split out, trailers appended`, async () => {
      const { t, exchanges } = run(await basicConversation(), view);
      assert.equal(exchanges.length, 4);
      const role = view;
      assert.deepEqual(
        exchanges.map((e) => `${e.role} ${e.request.method} ${e.request.target} ${e.request.authority} ${e.request.scheme} ${e.request.version} -> ${e.response?.status}`),
        [
          `${role} GET /a?x=1 svc.test:8080 http 2 -> 200`,
          `${role} GET /b svc.test:8080 http 2 -> 200`,
          `${role} GET /missing svc.test:8080 http 2 -> 404`,
          `${role} POST /trailers svc.test:8080 http 2 -> 200`,
        ],
      );
      exchanges.slice(0, 3).forEach((e, i) => {
        assert.deepEqual(e.request.headers, ['x-custom', 'same', 'x-path', ['/a?x=1', '/b', '/missing'][i]]);
        assert.deepEqual(stable(e.response!.headers), ['x-srv', 'yes']);
        assert.equal(e.request.truncated, undefined);
        assert.equal(e.response!.truncated, undefined);
      });
      const grpc = exchanges[3];
      assert.deepEqual(grpc.request.headers, ['content-type', 'application/grpc']);
      assert.deepEqual(stable(grpc.response!.headers), ['x-srv', 'yes', 'content-type', 'application/grpc', 'grpc-status', '0', 'grpc-message', 'fine']);
      assert.ok(grpc.response!.endNs >= grpc.request.startNs);
      assert.equal(t.counters.http2Connections, 1);
      assert.deepEqual(t.counters.http2Problems, { frame_resync: 0, hpack_error: 0, protocol_error: 0, unknown_role: 0 });
      assert.equal(t.counters.orphanResponses, 0);
      assert.equal(t.counters.problems.invalid_start_line, 0, 'the preface never reached the HTTP/1 parser');
      assert.ok(t.counters.http2DataBytes >= 'hello'.length * 3 + 'body'.length + 'payload'.length);
    });
  }

  it('gives the same exchanges whatever the split of either direction into reads and writes', async () => {
    const chunks = await basicConversation();
    for (const view of VIEWS) {
      const expected = run(chunks, view).exchanges.map(summary);
      for (const side of ['client', 'server'] as const) {
        const mine = Buffer.concat(chunks.filter((c) => c.from === side).map((c) => c.data));
        const theirs = Buffer.concat(chunks.filter((c) => c.from !== side).map((c) => c.data));
        // Requests first, then responses: stream ids pair them whatever the interleaving.
        const order = (a: Buffer[], b: Buffer[]): Chunk[] =>
          side === 'client'
            ? [...a.map((data) => ({ from: side, data })), ...b.map((data) => ({ from: 'server' as const, data }))]
            : [...b.map((data) => ({ from: 'client' as const, data })), ...a.map((data) => ({ from: side, data }))];
        for (let k = 1; k < mine.length; k++) {
          const got = run(order([mine.subarray(0, k), mine.subarray(k)], [theirs]), view).exchanges.map(summary);
          assert.deepEqual(got, expected, `${view} view, ${side} bytes split at ${k}`);
        }
      }
    }
  });

  it('reads a header block split into HEADERS + CONTINUATION, and applies --max-header-bytes after decoding', async () => {
    const big = 'v'.repeat(20000);
    const chunks = await recordHttp2(
      { handler: (_req, res) => res.end('ok') },
      async (s) => assert.equal(await request(s, { ':path': '/big', 'x-before': '1', 'x-big': big, 'x-after': '2' }), 200),
    );
    const continuations = Buffer.concat(chunks.filter((c) => c.from === 'client').map((c) => c.data));
    assert.ok(framesOf(continuations.subarray(PREFACE.length)).some((f) => f.type === 0x9), 'nghttp2 sent a CONTINUATION frame');
    const whole = run(chunks, 'server', 65536).exchanges[0];
    assert.deepEqual(whole.request.headers, ['x-before', '1', 'x-big', big, 'x-after', '2']);
    assert.equal(whole.request.truncated, undefined);
    const limited = run(chunks, 'server', 1000).exchanges[0];
    assert.deepEqual(limited.request.headers, ['x-before', '1']);
    assert.equal(limited.request.truncated, 'header_limit');
    assert.equal(limited.request.target, '/big');
    assert.equal(limited.response?.status, 200, 'the table stayed in step: the response decodes');
  });

  it('a header block cut by the 16 KiB copy limit keeps the fields before the cut (capture_gap), then resyncs', async () => {
    const chunks = await recordHttp2(
      { handler: (_req, res) => res.end('ok') },
      async (s) => {
        await request(s, { ':path': '/big', 'x-before': '1', 'x-big': 'v'.repeat(20000) });
        await request(s, { ':path': '/next', 'x-before': '1' });
      },
    );
    // What one writev() per batch looks like to the kernel: consecutive writes of a side joined.
    const writes = asWritev(chunks);
    for (const view of VIEWS) {
      const { t, exchanges } = tracker();
      const sim = newSim(view);
      for (const w of writes) t.onData(sim.data(w.from === view ? 'egress' : 'ingress', w.data, { copied: 16384 }));
      t.onClose(sim.close());
      const [big, next] = exchanges;
      assert.equal(big.request.target, '/big');
      assert.deepEqual(big.request.headers, ['x-before', '1'], 'fields before the cut');
      assert.equal(big.request.truncated, 'capture_gap');
      assert.equal(big.response?.status, 200, 'the other direction is unaffected');
      assert.equal(next.request.target, '/next', 'framing found again at the next write');
      assert.equal(next.request.truncated, 'hpack_state_unknown', 'x-before was indexed in the lost part');
      assert.equal(t.counters.truncatedRecords.capture_gap, 1);
      assert.equal(t.counters.http2Problems.frame_resync, 1);
    }
  });

  it('a block cut by the copy after its fields passed --max-header-bytes is header_limit, not capture_gap', async () => {
    const chunks = await recordHttp2(
      { handler: (_req, res) => res.end('ok') },
      async (s) => {
        await request(s, { ':path': '/big', 'x-before': '1', 'x-mid': 'm'.repeat(3000), 'x-big': 'v'.repeat(20000) });
      },
    );
    const writes = asWritev(chunks);
    for (const view of VIEWS) {
      const { t, exchanges } = tracker(2000);
      const sim = newSim(view);
      for (const w of writes) t.onData(sim.data(w.from === view ? 'egress' : 'ingress', w.data, { copied: 16384 }));
      t.onClose(sim.close());
      const [big] = exchanges;
      assert.equal(big.request.target, '/big');
      assert.deepEqual(big.request.headers, ['x-before', '1'], 'fields up to the limit');
      assert.equal(big.request.truncated, 'header_limit');
      assert.equal(t.counters.truncatedRecords.capture_gap, 0);
    }
  });

  it('strips padding (nghttp2 PADDING_STRATEGY_MAX)', async () => {
    const chunks = await recordHttp2(
      {
        server: { paddingStrategy: http2.constants.PADDING_STRATEGY_MAX },
        client: { paddingStrategy: http2.constants.PADDING_STRATEGY_MAX },
        handler: (_req, res) => {
          res.setHeader('x-padded', 'yes');
          res.end('ok');
        },
      },
      async (s) => {
        await request(s, { ':path': '/p1', 'x-q': '1' });
        await request(s, { ':path': '/p2', 'x-q': '1' });
      },
    );
    const server = Buffer.concat(chunks.filter((c) => c.from === 'server').map((c) => c.data));
    assert.ok(framesOf(server).some((f) => f.type === 0x1 && f.flags & 0x8), 'nghttp2 padded a HEADERS frame');
    for (const view of VIEWS) {
      const { exchanges, t } = run(chunks, view);
      assert.deepEqual(
        exchanges.map((e) => `${e.request.target} ${e.request.headers.join('=')} -> ${e.response?.status} ${stable(e.response!.headers).join('=')}`),
        ['/p1 x-q=1 -> 200 x-padded=yes', '/p2 x-q=1 -> 200 x-padded=yes'],
      );
      assert.equal(t.counters.http2Problems.hpack_error, 0);
    }
  });

  it('skips bytes never captured inside a DATA frame without losing the header state', async () => {
    const body = 'b'.repeat(40000);
    const chunks = await recordHttp2(
      {
        handler: (req, res) => {
          res.setHeader('x-srv', 'same');
          res.end(req.url === '/big' ? body : 'small');
        },
      },
      async (s) => {
        await request(s, { ':path': '/big' });
        await request(s, { ':path': '/after' });
      },
    );
    // Node writes a frame's header and payload with one writev(): 16393 bytes for a full DATA
    // frame, of which the kernel copies 16384. The 9 missing bytes are inside the DATA payload.
    const writes = asWritev(chunks, (last) => last.data.length === 9);
    const { t, exchanges } = tracker();
    const sim = newSim('client');
    for (const w of writes) t.onData(sim.data(w.from === 'client' ? 'egress' : 'ingress', w.data, { copied: 16384 }));
    assert.equal(t.counters.gapBytes, 18, 'two DATA frames were cut');
    assert.equal(t.counters.http2Problems.frame_resync, 0);
    assert.deepEqual(
      exchanges.map((e) => `${e.request.target} -> ${e.response?.status} ${stable(e.response!.headers).join('=')} ${e.response?.truncated ?? ''}`),
      ['/big -> 200 x-srv=same ', '/after -> 200 x-srv=same '],
    );
  });

  it('joined mid-connection: decodes what it can, never a wrong value, marks hpack_state_unknown', async () => {
    const marks: number[] = [];
    const sent: Array<Record<string, string>> = [];
    const received: Array<Record<string, string>> = [];
    const chunks = await recordHttp2(
      {
        handler: (req, res) => {
          res.setHeader('x-srv', 'same');
          res.setHeader(`x-reply-${req.url!.slice(3)}`, 'fresh');
          res.end('ok');
        },
      },
      async (s, log) => {
        for (let i = 0; i < 5; i++) {
          marks.push(log.length);
          const headers = { ':path': `/r/${i}`, 'x-custom': 'same', [`x-req-${i}`]: `v${i}` };
          sent.push(headers);
          await new Promise<void>((resolve, reject) => {
            const req = s.request(headers);
            req.on('response', (h) => received.push(Object.fromEntries(Object.entries(h).map(([k, v]) => [k, String(v)]))));
            req.on('error', reject);
            req.resume();
            req.on('end', () => resolve());
          });
        }
      },
    );
    for (const view of VIEWS) {
      const { t, exchanges } = run(chunks.slice(marks[2]), view);
      assert.equal(exchanges.length, 3, `${view}: the three requests after the join`);
      exchanges.forEach((e, j) => {
        const i = j + 2;
        assert.equal(e.role, view);
        assert.equal(e.request.method, 'GET');
        assert.equal(e.request.target, `/r/${i}`, ':path is a literal with a static name');
        assert.equal(e.request.authority, undefined, ':authority was indexed before the join');
        for (let k = 0; k < e.request.headers.length; k += 2) {
          assert.equal(e.request.headers[k + 1], sent[i][e.request.headers[k]], `request ${e.request.headers[k]}: the value sent`);
        }
        assert.deepEqual(e.request.headers.slice(0, 2), [`x-req-${i}`, `v${i}`], 'a new literal decodes');
        assert.ok(!e.request.headers.includes('x-custom'), 'indexed before the join: left out, not guessed');
        assert.equal(e.request.truncated, 'hpack_state_unknown');
        assert.equal(e.response?.status, 200);
        for (let k = 0; k < e.response!.headers.length; k += 2) {
          assert.equal(e.response!.headers[k + 1], received[i][e.response!.headers[k]], `response ${e.response!.headers[k]}: the value sent`);
        }
        assert.ok(e.response!.headers.includes(`x-reply-${i}`));
        assert.equal(e.response!.truncated, 'hpack_state_unknown');
      });
      assert.equal(t.counters.truncatedRecords.hpack_state_unknown, 3);
      assert.equal(t.counters.http2Problems.hpack_error, 0);
    }
  });

  it('loses the header state when a header block falls in a gap, and says so on later records', async () => {
    const chunks = await recordHttp2(
      { handler: (_req, res) => res.writeHead(200, { 'x-srv': 'same' }).end('ok') },
      async (s) => {
        for (const p of ['/1', '/2', '/3']) await request(s, { ':path': p, 'x-custom': 'same' });
      },
    );
    // The server's response HEADERS to /2 never captured: the kernel saw the bytes go by, unread.
    const { t, exchanges } = tracker();
    const sim = newSim('client');
    let responses = 0;
    for (const ch of chunks) {
      const dir = ch.from === 'client' ? 'egress' : 'ingress';
      const isHeaders = ch.from === 'server' && ch.data[3] === 0x1;
      if (isHeaders && ++responses === 2) {
        sim.data(dir, ch.data); // advances the sequence number: a gap for the tracker
        continue;
      }
      t.onData(sim.data(dir, ch.data));
    }
    t.onClose(sim.close());
    const byPath = new Map(exchanges.map((e) => [e.request.target, e]));
    assert.equal(byPath.get('/1')?.response?.truncated, undefined);
    assert.deepEqual(stable(byPath.get('/1')!.response!.headers), ['x-srv', 'same']);
    assert.equal(byPath.get('/2')?.unanswered, 'connection_closed', 'its response was never seen');
    const third = byPath.get('/3')!;
    assert.equal(third.response?.status, 200);
    assert.equal(third.response?.truncated, 'hpack_state_unknown');
    assert.ok(!third.response!.headers.includes('x-srv'), 'x-srv was indexed: unknown after the gap');
    assert.equal(third.request.truncated, undefined, 'the other direction is unaffected');
    assert.equal(t.counters.http2Problems.frame_resync, 1);
  });
});

/** Frames of a byte string known to start at a frame boundary. */
function framesOf(buf: Buffer): FrameHeader[] {
  const out: FrameHeader[] = [];
  for (let at = 0; at + 9 <= buf.length; at += 9 + buf.readUIntBE(at, 3)) out.push(readFrameHeader(buf, at));
  return out;
}

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const GET_ROOT = hex('82 86 84'); // :method GET, :scheme http, :path /

describe('HTTP/2 frame reader', () => {
  const stream = Buffer.concat([
    frame(0x4, 0, 0, hex('0001 0000 1000 0005 0000 4000')), // SETTINGS
    frame(0x8, 0, 0, hex('0000 ffff')), // WINDOW_UPDATE
    frame(0x1, 0x20 | 0x8, 1, Buffer.concat([Buffer.from([3]), hex('8000 0003 10'), GET_ROOT, Buffer.alloc(3)])), // PADDED+PRIORITY, no END_HEADERS
    frame(0x9, 0x4, 1, literal('x-a', '1')), // CONTINUATION, END_HEADERS
    frame(0x0, 0x8 | 0x1, 1, Buffer.concat([Buffer.from([2]), Buffer.from('data'), Buffer.alloc(2)])), // DATA PADDED END_STREAM
    frame(0x6, 0, 0, Buffer.alloc(8)), // PING
    frame(0x2, 0, 3, hex('0000 0001 20')), // PRIORITY
    frame(0x3, 0, 3, hex('0000 0008')), // RST_STREAM
    frame(0x7, 0, 0, hex('0000 0003 0000 0000')), // GOAWAY
  ]);

  function read(pieces: Buffer[]): string[] {
    const seen: string[] = [];
    const reader = new FrameReader(
      {
        frame: (f: Frame) => seen.push(`${f.type}/${f.flags}/${f.streamId}/${f.payload.toString('hex')}`),
        header: (h: FrameHeader) => h.type === 0 && seen.push(`data ${h.length}/${h.flags}/${h.streamId}`),
        lost: () => seen.push('lost'),
        oversized: () => seen.push('oversized'),
      },
      true,
    );
    pieces.forEach((p, i) => reader.push(p, i));
    return seen;
  }

  it('keeps header-related payloads and announces DATA without its bytes', () => {
    const seen = read([stream]);
    assert.deepEqual(seen.map((s) => s.split('/')[0]), ['4', '1', '9', 'data 7', '3', '7']);
    assert.equal(seen[1], '1/40/1/038000000310828684000000', 'the HEADERS payload as sent: the session strips padding');
  });

  it('gives the same frames whatever the split, down to one byte per push', () => {
    const expected = read([stream]);
    for (let k = 1; k < stream.length; k++) assert.deepEqual(read([stream.subarray(0, k), stream.subarray(k)]), expected, `split at ${k}`);
    assert.deepEqual(read([...stream].map((b) => Buffer.from([b]))), expected);
  });

  it('finds frames again after lost bytes, also when a frame header and its payload come in separate writes', () => {
    const seen: string[] = [];
    const reader = new FrameReader(
      { frame: (f: Frame) => seen.push(`${f.type}/${f.streamId}`), header: () => {}, lost: () => seen.push('lost'), oversized: () => {} },
      false,
    );
    const headers = frame(0x1, 0x4, 7, GET_ROOT);
    reader.push(Buffer.from('tail of a frame before the join'), 1); // dropped: not a frame start
    reader.push(headers.subarray(0, 9), 2); // plausible header alone: held
    reader.push(headers.subarray(9), 3);
    reader.push(frame(0x3, 0, 7, hex('0000 0008')), 4);
    assert.deepEqual(seen, ['1/7', '3/7']);
  });

  it('never throws on random bytes, in sync or not', () => {
    let seed = 11;
    const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 8;
    for (let n = 0; n < 500; n++) {
      const reader = new FrameReader({ frame: () => {}, header: () => {}, lost: () => {}, oversized: () => {} }, n % 2 === 0);
      for (let k = 0; k < 8; k++) {
        const buf = Buffer.alloc(rand() % 300);
        for (let i = 0; i < buf.length; i++) buf[i] = rand() & (k % 2 ? 0x0f : 0xff);
        reader.push(buf, k);
        if (k === 5) reader.gap(rand() % 100);
      }
    }
  });
});

describe('HTTP/2 detection from the bytes', () => {
  it('finds the preface (also a byte at a time), a first SETTINGS, and frames mid-stream', () => {
    assert.equal(sniffHttp2(PREFACE), 'preface');
    assert.equal(sniffHttp2(PREFACE.subarray(0, 5)), 'more');
    assert.equal(sniffHttp2(frame(0x4, 0, 0, hex('0003 0000 0064'))), 'start');
    assert.equal(sniffHttp2(hex('00 00')), 'more');
    assert.equal(sniffHttp2(Buffer.concat([frame(0x1, 0x4, 5, GET_ROOT), frame(0x0, 0x1, 5, 'x')])), 'frames');
  });

  it('leaves HTTP/1 and other bytes alone', () => {
    for (const s of ['GET / HTTP/1.1\r\n', 'HTTP/1.1 200 OK\r\n', 'PRI * HTTP/1.1\r\n', '\u0016\u0003\u0001\u0002\u0000', 'x']) {
      assert.equal(sniffHttp2(Buffer.from(s, 'latin1')), undefined, JSON.stringify(s));
    }
    assert.equal(sniffHttp2(frame(0x1, 0x4, 0, GET_ROOT)), undefined, 'HEADERS on stream 0');
    assert.equal(sniffHttp2(frame(0x1, 0x4, 1, GET_ROOT).subarray(0, 9)), 'more', 'a frame header written on its own');
    assert.equal(sniffHttp2(frame(0x0, 0x0, 1, Buffer.alloc(200)).subarray(0, 100)), undefined, 'no whole frame in 100 bytes');
  });

  it('HTTP/1.1 requests are not taken for HTTP/2 and still parse', () => {
    const { t, exchanges } = tracker();
    const c = new ConnectionSim();
    t.onData(c.data('egress', 'GET /h1 HTTP/1.1\r\nHost: x\r\n\r\n'));
    t.onData(c.data('ingress', 'HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n'));
    assert.equal(exchanges[0].request.version, '1.1');
    assert.equal(t.counters.http2Connections, 0);
  });
});

/** An h2c upgrade, byte for byte as RFC 7540 §3.2 has it, then one more request on stream 3. */
function upgradeConversation(): Chunk[] {
  const settings = frame(0x4, 0, 0, hex('0003 0000 0064'));
  return [
    {
      from: 'client',
      data: Buffer.from(
        'GET /up HTTP/1.1\r\nHost: up.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAEAABAA\r\nX-Up: 1\r\n\r\n',
      ),
    },
    {
      from: 'server',
      data: Buffer.concat([
        Buffer.from('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: h2c\r\n\r\n'),
        settings,
        frame(0x1, 0x4, 1, Buffer.concat([hex('88'), literal('x-upgraded', 'yes', true)])),
        frame(0x0, 0x1, 1, 'hello'),
      ]),
    },
    { from: 'client', data: Buffer.concat([PREFACE, settings, frame(0x4, 0x1, 0)]) },
    { from: 'client', data: frame(0x1, 0x5, 3, Buffer.concat([GET_ROOT, literal(':authority', 'up.test')])) },
    { from: 'server', data: frame(0x1, 0x5, 3, hex('8d be')) }, // :status 404, x-upgraded: yes from the table
  ];
}

describe('HTTP/2 after an h2c upgrade', () => {
  for (const view of VIEWS) {
    it(`${view} side: the upgraded request gets its HTTP/2 answer on stream 1, then HTTP/2 goes on`, () => {
      const { t, exchanges } = run(upgradeConversation(), view);
      assert.deepEqual(exchanges.map(summary), [
        `${view} GET /up  [host=up.test connection=Upgrade, HTTP2-Settings upgrade=h2c http2-settings=AAMAAABkAAEAABAA x-up=1] -> 200 [x-upgraded=yes]`,
        `${view} GET / up.test [] -> 404 [x-upgraded=yes]`,
      ]);
      assert.equal(exchanges[0].request.version, '1.1');
      assert.equal(exchanges[1].request.version, '2');
      assert.equal(t.counters.http2Connections, 1);
      assert.deepEqual(t.counters.http2Problems, { frame_resync: 0, hpack_error: 0, protocol_error: 0, unknown_role: 0 });
      assert.equal(t.counters.problems.invalid_start_line, 0);
    });
  }

  it('a 101 to something else (websocket) stays out of HTTP/2', () => {
    const { t, exchanges } = tracker();
    const c = new ConnectionSim();
    t.onData(c.data('egress', 'GET /ws HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\r\n'));
    t.onData(c.data('ingress', 'HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\u0081\u0002hi'));
    assert.equal(exchanges[0].response?.status, 101);
    assert.equal(t.counters.http2Connections, 0);
  });
});

describe('HTTP/2 streams', () => {
  function conversation(parts: Array<[View, Buffer]>, maxHeaderBytes?: number): { t: ReturnType<typeof tracker>['t']; exchanges: HttpExchange[] } {
    const { t, exchanges } = tracker(maxHeaderBytes);
    const sim = newSim('client');
    t.onData(sim.data('egress', PREFACE));
    for (const [from, data] of parts) t.onData(sim.data(from === 'client' ? 'egress' : 'ingress', data));
    t.onClose(sim.close());
    return { t, exchanges };
  }

  it('RST_STREAM ends a stream without a response as stream_reset; GOAWAY refuses streams above its last id', () => {
    const { exchanges } = conversation([
      ['client', frame(0x1, 0x5, 1, GET_ROOT)],
      ['client', frame(0x1, 0x5, 3, GET_ROOT)],
      ['client', frame(0x1, 0x5, 5, GET_ROOT)],
      ['server', frame(0x3, 0, 1, hex('0000 0008'))],
      ['server', frame(0x7, 0, 0, hex('0000 0003 0000 0000'))],
      ['server', frame(0x1, 0x5, 3, hex('88'))],
    ]);
    assert.deepEqual(
      exchanges.map((e) => `${e.response?.status ?? e.unanswered}`),
      ['stream_reset', 'stream_reset', '200'],
    );
  });

  it('a header value with LF, CR or NUL (which HTTP forbids) is kept in the record, trailers included, and counted', () => {
    const { t, exchanges } = conversation([
      ['client', frame(0x1, 0x5, 1, Buffer.concat([GET_ROOT, literal('x-forged', 'a\nINFO  GET /fake -> 200'), literal('x-nul', 'b\x00c')]))],
      ['server', frame(0x1, 0x4, 1, Buffer.concat([hex('88'), literal('x-cr', 'd\re')]))],
      ['server', frame(0x1, 0x5, 1, literal('grpc-message', 'f\ng'))],
    ]);
    assert.equal(exchanges.length, 1, 'the stream still makes a record');
    assert.deepEqual(exchanges[0].request.headers, ['x-forged', 'a\nINFO  GET /fake -> 200', 'x-nul', 'b\x00c']);
    assert.deepEqual(exchanges[0].response?.headers, ['x-cr', 'd\re', 'grpc-message', 'f\ng']);
    assert.equal(exchanges[0].request.invalidValues, 2);
    assert.equal(exchanges[0].response?.invalidValues, 2);
    assert.equal(t.counters.invalidValues, 4);
    assert.equal(t.counters.http2Problems.hpack_error, 0, 'not a decoding error');
  });

  it('skips interim 1xx responses; a response without a request is an orphan', () => {
    const { t, exchanges } = conversation([
      ['client', frame(0x1, 0x4, 1, GET_ROOT)],
      ['server', frame(0x1, 0x4, 1, literal(':status', '100'))],
      ['server', frame(0x1, 0x5, 1, hex('89'))],
      ['server', frame(0x1, 0x5, 7, hex('88'))],
    ]);
    assert.deepEqual(exchanges.map((e) => e.response?.status), [204]);
    assert.equal(t.counters.orphanResponses, 1);
  });

  it('reports a stream still waiting at close as connection_closed, one with a response as answered', () => {
    const { exchanges } = conversation([
      ['client', frame(0x1, 0x4, 1, GET_ROOT)],
      ['client', frame(0x1, 0x4, 3, GET_ROOT)],
      ['server', frame(0x1, 0x4, 3, hex('88'))], // streaming: no END_STREAM yet
    ]);
    assert.deepEqual(
      exchanges.map((e) => `${e.request.target} ${e.response?.status ?? e.unanswered}`),
      ['/ connection_closed', '/ 200'],
    );
  });

  it('a header block over 1 MiB keeps its first fields (header_limit) and nothing more in memory', () => {
    const size = 1_200_000;
    // x-a: 1, then a literal whose value runs through every CONTINUATION.
    const varint = (n: number): number[] => (n < 128 ? [n] : [(n % 128) | 0x80, ...varint(Math.floor(n / 128))]);
    const length = Buffer.from([0x7f, ...varint(size - 127)]); // RFC 7541 §5.1, 7-bit prefix
    const block = Buffer.concat([GET_ROOT, literal('x-a', '1'), Buffer.from([0x00, 5]), Buffer.from('x-big'), length, Buffer.alloc(size, 0x76)]);
    const parts: Array<[View, Buffer]> = [];
    for (let at = 0, first = true; at < block.length; at += 16384, first = false) {
      const last = at + 16384 >= block.length;
      parts.push(['client', frame(first ? 0x1 : 0x9, (last ? 0x4 : 0) | (first ? 0x1 : 0), 1, block.subarray(at, at + 16384))]);
    }
    parts.push(['server', frame(0x1, 0x5, 1, hex('88'))]);
    const { t, exchanges } = conversation(parts, 4 << 20); // --max-header-bytes would allow it all
    assert.equal(exchanges.length, 1);
    assert.deepEqual(exchanges[0].request.headers, ['x-a', '1']);
    assert.equal(exchanges[0].request.truncated, 'header_limit');
    assert.equal(exchanges[0].response?.status, 200);
    assert.equal(t.counters.http2Problems.protocol_error, 0);
  });

  it('a frame between HEADERS and its CONTINUATION is a protocol error: the block and the table are dropped', () => {
    const { t, exchanges } = conversation([
      ['client', frame(0x1, 0x0, 1, GET_ROOT)],
      ['client', frame(0x6, 0, 0, Buffer.alloc(8))],
      ['client', frame(0x9, 0x4, 1, literal('x-a', '1'))],
      ['client', frame(0x1, 0x5, 3, Buffer.concat([GET_ROOT, hex('be')]))],
      ['server', frame(0x1, 0x5, 3, hex('88'))],
    ]);
    assert.equal(t.counters.http2Problems.protocol_error, 1);
    assert.equal(exchanges.length, 1);
    assert.equal(exchanges[0].request.truncated, 'hpack_state_unknown', 'index 62 after a lost block is unknown');
  });

  it('never throws on garbage after the preface or on a corrupted real conversation', async () => {
    const chunks = await basicConversation();
    let seed = 3;
    const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 8;
    for (let n = 0; n < 300; n++) {
      const { t } = tracker();
      const sim = newSim(n % 2 ? 'client' : 'server');
      for (const ch of chunks) {
        const data = Buffer.from(ch.data);
        if (rand() % 3 === 0) data[rand() % data.length] = rand() & 0xff;
        t.onData(sim.data(ch.from === (n % 2 ? 'client' : 'server') ? 'egress' : 'ingress', data, rand() % 7 === 0 ? { skipBefore: rand() % 50 } : {}));
      }
      t.onClose(sim.close());
    }
  });
});
