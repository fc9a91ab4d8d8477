/**
 * Safe for the operator, with real eBPF and real programs on loopback:
 *  - hostile bytes in headers, paths and a process's OTEL_SERVICE_NAME
 *    never reach the operator's terminal raw: `run --embedded-receiver`'s
 *    stdout is captured as bytes (no terminal) and checked byte by byte,
 *    pretty and jsonl, while the values stay exact in the OTLP data;
 *  - header values HTTP forbids (CR, NUL; LF in HTTP/2) still make records,
 *    both sides, and are counted;
 *  - the default redaction list hides the secret names real APIs use, in
 *    headers, query parameters and URLs inside headers, in OTLP and in
 *    --record files;
 *  - bad paths and values stop `run` before anything is loaded.
 * Not covered here: TLS (the same parser and printers run on TLS plaintext).
 */
import assert from 'node:assert/strict';
import { chmodSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import type { FlatRecord } from '../../src/common/flat-record';
import { capture, headers } from '../helpers/capture';
import { HEADERTAP, attr, background, freePort, requireEbpf, run, startAgent, waitForPort } from '../helpers/integration';

/**
 * A raw HTTP/1.1 server: answers every request head with a fixed response
 * whose headers hold an ESC sequence and a WWW-Authenticate challenge.
 */
const RAW_SERVER = `
const net = require('net');
const res = Buffer.from('HTTP/1.1 401 Unauthorized\\r\\nWWW-Authenticate: Bearer realm="api", error="invalid_token"\\r\\n' +
  'X-Resp: r\\x1b[2Kr\\r\\nSet-Cookie: sid=COOKIE-S3CRET\\r\\nContent-Length: 0\\r\\nConnection: close\\r\\n\\r\\n', 'latin1');
net.createServer((c) => {
  let head = Buffer.alloc(0);
  c.on('data', (d) => {
    head = Buffer.concat([head, d]);
    if (head.includes('\\r\\n\\r\\n')) c.end(res);
  });
  c.on('error', () => {});
}).listen(Number(process.argv[1]), '127.0.0.1', () => console.log('listening'));
`;

/** A raw client writing header values with a bare CR (a forged record line) and a NUL, which curl refuses to send. */
const RAW_CLIENT = `
const net = require('net');
const s = net.connect(Number(process.argv[1]), '127.0.0.1', () => {
  s.write(Buffer.from('GET /raw HTTP/1.1\\r\\nHost: raw.test\\r\\nX-Cr: a\\rINFO  GET /forged -> 200\\r\\nX-Nul: b\\x00c\\r\\n\\r\\n', 'latin1'));
});
s.on('data', () => {});
s.on('end', () => process.exit(0));
`;

/**
 * HTTP/2 over cleartext, both ends in this script with hand-built frames
 * (real HTTP/2 stacks refuse to send what is tested): a request and a
 * response whose header values hold a LF and a CR LF.
 */
const RAW_H2 = `
const net = require('net');
const frame = (type, flags, stream, payload) => {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3); h[3] = type; h[4] = flags; h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
};
const lit = (name, value) => Buffer.concat([Buffer.from([0, name.length]), Buffer.from(name, 'latin1'), Buffer.from([value.length]), Buffer.from(value, 'latin1')]);
const SETTINGS = frame(4, 0, 0, Buffer.alloc(0));
const ACK = frame(4, 1, 0, Buffer.alloc(0));
const server = net.createServer((c) => {
  let got = Buffer.alloc(0);
  let answered = false;
  c.write(SETTINGS);
  c.on('data', (d) => {
    got = Buffer.concat([got, d]);
    // preface (24) + SETTINGS (9) + HEADERS
    if (!answered && got.length > 24 + 9 + 9) {
      answered = true;
      c.write(Buffer.concat([ACK, frame(1, 5, 1, Buffer.concat([Buffer.from([0x88]), lit('x-resp', 'r\\r\\nX-Injected: 1')]))]));
    }
  });
  c.on('error', () => {});
});
server.listen(Number(process.argv[1]), '127.0.0.1', () => {
  const s = net.connect(Number(process.argv[1]), '127.0.0.1', () => {
    const block = Buffer.concat([Buffer.from([0x82, 0x86, 0x84]), lit(':authority', 'h2.test'), lit('x-forged', 'a\\nINFO  GET /fake -> 200')]);
    s.write(Buffer.concat([Buffer.from('PRI * HTTP/2.0\\r\\n\\r\\nSM\\r\\n\\r\\n', 'latin1'), SETTINGS, frame(1, 5, 1, block)]));
  });
  let got = Buffer.alloc(0);
  s.on('data', (d) => {
    got = Buffer.concat([got, d]);
    if (got.includes(Buffer.from('X-Injected'))) {
      s.write(ACK);
      setTimeout(() => { s.end(); server.close(); process.exit(0); }, 200);
    }
  });
});
`;

/** curl's headers from a file: ESC, BEL, C1 bytes (invalid UTF-8) and a right-to-left override. */
const CURL_HEADERS = Buffer.concat([
  Buffer.from('X-Esc: a\x1b[2J\x1b[1Eb\nX-Bel: \x07i\nX-C1: e', 'latin1'),
  Buffer.from([0x85, 0x9b]),
  Buffer.from('f\nX-Bidi: g\u202eh\u2066\n', 'utf8'),
]);

/** The service name a hostile local process (here the long-running server) gives itself. */
const FORGED_SERVICE = 'svc\nFAKE LINE\x1b[2J\u202e';

/** Characters that must never reach a terminal raw (a line break only between lines). */
function unsafeIn(text: string): string[] {
  const bad: string[] = [];
  for (const ch of text) {
    const c = ch.codePointAt(0)!;
    if (c === 0x0a) continue;
    if (c < 0x20 || (c >= 0x7f && c <= 0x9f) || c === 0x2028 || c === 0x2029 || (c >= 0x202a && c <= 0x202e) || (c >= 0x2066 && c <= 0x2069)) {
      bad.push(`U+${c.toString(16).padStart(4, '0')}`);
    }
  }
  return bad;
}

/** Runs the hostile HTTP/1 traffic against a raw server on `port`: curl and a raw client. */
async function hostileTraffic(port: number): Promise<void> {
  const dir = mkdtempSync(path.join(tmpdir(), 'ht-safety-'));
  const headerFile = path.join(dir, 'headers.txt');
  writeFileSync(headerFile, CURL_HEADERS);
  const curl = await run(
    '/usr/bin/curl',
    ['-s', '-o', '/dev/null', '-H', `@${headerFile}`, '--request-target', '/p\x1b[1Ex?q=1', `http://127.0.0.1:${port}/`],
  );
  assert.equal(curl.code, 0, curl.stderr);
  const raw = await run(process.execPath, ['-e', RAW_CLIENT, String(port)]);
  assert.equal(raw.code, 0, raw.stderr);
}

async function rawServer(t: TestContext): Promise<number> {
  const port = await freePort();
  background(t, process.execPath, ['-e', RAW_SERVER, String(port)], { ...process.env, OTEL_SERVICE_NAME: FORGED_SERVICE });
  await waitForPort(port);
  return port;
}

/** Waits until the agent's stdout satisfies `done`. */
async function waitForOutput(stdout: () => Buffer, done: (text: string) => boolean, what: string): Promise<string> {
  const deadline = Date.now() + 15000;
  for (;;) {
    const text = stdout().toString('utf8');
    if (done(text)) return text;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}; stdout:\n${text}`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

describe('hostile bytes never reach the terminal raw (real eBPF, stdout captured as bytes)', () => {
  it('pretty: one block per record, every control, C1 and bidi character escaped, forged lines stay inside their header line', async (t) => {
    if (!requireEbpf(t)) return;
    const port = await rawServer(t);
    const receiverPort = await freePort();
    const agent = await startAgent(t, ['--embedded-receiver', '--endpoint', `http://127.0.0.1:${receiverPort}`, '--port', String(port), '--no-self-metrics']);
    await hostileTraffic(port);
    const count = (text: string) => text.split('\n').filter((l) => /^\d{4}-\d\d-\d\dT/.test(l)).length;
    await waitForOutput(agent.stdoutBytes, (text) => count(text) >= 4, 'four records (curl and the raw client, both sides)');
    const end = await agent.stop();
    assert.equal(end.code, 0, end.stderr);
    const bytes = agent.stdoutBytes();
    for (let i = 0; i < bytes.length; i++) {
      assert.ok(bytes[i] === 0x0a || (bytes[i] >= 0x20 && bytes[i] !== 0x7f), `byte ${bytes[i]} at ${i}: ${bytes.subarray(Math.max(0, i - 40), i + 10).toString('latin1')}`);
    }
    const text = bytes.toString('utf8');
    assert.deepEqual(unsafeIn(text), [], 'no C1, bidi or line-separator character either');

    // One block per record: a summary line, then lines indented by two spaces; blocks end with a blank line.
    const blocks = text.trimEnd().split('\n\n');
    assert.equal(blocks.length, 4, text);
    for (const block of blocks) {
      const [first, ...rest] = block.split('\n');
      assert.match(first, /^\d{4}-\d\d-\d\dT[\d:.]+Z (INFO |WARN |ERROR) \S/);
      for (const line of rest) assert.match(line, /^ {2}\S/, `a line of the block: ${line}`);
    }
    assert.equal(count(text), 4, 'no forged record line');

    const curlBlocks = blocks.filter((b) => b.includes('GET /p\\x1b[1Ex -> 401'));
    assert.equal(curlBlocks.length, 2, 'the path is shown escaped in the summary line of both sides');
    for (const b of curlBlocks) {
      for (const line of [
        '  > x-esc: a\\x1b[2J\\x1b[1Eb',
        '  > x-bel: \\x07i',
        '  > x-c1: e\\x85\\x9bf',
        '  > x-bidi: g\\u202eh\\u2066',
        '  < x-resp: r\\x1b[2Kr',
        '  query: q=1',
      ]) {
        assert.ok(b.split('\n').includes(line), `${line} in\n${b}`);
      }
    }
    assert.ok(curlBlocks.some((b) => b.includes('  server  node[') && b.includes('service=svc\\x0aFAKE LINE\\x1b[2J\\u202e')), 'the server process\'s service name, escaped');
    const rawBlocks = blocks.filter((b) => b.includes('GET /raw -> 401'));
    assert.equal(rawBlocks.length, 2);
    for (const b of rawBlocks) {
      assert.ok(b.split('\n').includes('  > x-cr: a\\x0dINFO  GET /forged -> 200'), b);
      assert.ok(b.split('\n').includes('  > x-nul: b\\x00c'), b);
    }
    // The values HTTP forbids were counted: x-cr and x-nul, on both sides.
    assert.match(end.stderr, /invalid header values 4;/);
    assert.deepEqual(unsafeIn(end.stderr), [], 'stderr too');
  });

  it('jsonl: the same escaped as standard \\u escapes, and the values exact once parsed (as OTLP carried them)', async (t) => {
    if (!requireEbpf(t)) return;
    const port = await rawServer(t);
    const receiverPort = await freePort();
    const agent = await startAgent(t, ['--embedded-receiver', '--format', 'jsonl', '--endpoint', `http://127.0.0.1:${receiverPort}`, '--port', String(port), '--no-self-metrics']);
    await hostileTraffic(port);
    await waitForOutput(agent.stdoutBytes, (text) => text.split('\n').filter(Boolean).length >= 4, 'four JSON lines');
    const end = await agent.stop();
    assert.equal(end.code, 0, end.stderr);
    const bytes = agent.stdoutBytes();
    const text = bytes.toString('utf8');
    assert.deepEqual(unsafeIn(text), []);
    for (let i = 0; i < bytes.length; i++) assert.ok(bytes[i] === 0x0a || (bytes[i] >= 0x20 && bytes[i] !== 0x7f), `byte ${bytes[i]} at ${i}`);
    const records = text.trimEnd().split('\n').map((l) => JSON.parse(l) as FlatRecord);
    assert.equal(records.length, 4);
    const server = records.find((r) => attr(r, 'url.path') === '/p\x1b[1Ex' && attr(r, 'headertap.role') === 'server')!;
    assert.ok(server, 'the server record of the curl exchange');
    assert.deepEqual(headers(server, 'request', 'x-esc'), ['a\x1b[2J\x1b[1Eb']);
    assert.deepEqual(headers(server, 'request', 'x-bel'), ['\x07i']);
    assert.deepEqual(headers(server, 'request', 'x-c1'), ['e\x85\x9bf']);
    assert.deepEqual(headers(server, 'request', 'x-bidi'), ['g\u202eh\u2066']);
    assert.equal(server.resource['service.name'], FORGED_SERVICE, 'exact in the data');
    const raw = records.find((r) => attr(r, 'url.path') === '/raw' && attr(r, 'headertap.role') === 'server')!;
    assert.deepEqual(headers(raw, 'request', 'x-cr'), ['a\rINFO  GET /forged -> 200']);
    assert.deepEqual(headers(raw, 'request', 'x-nul'), ['b\x00c']);
  });

  it('HTTP/2: a header value with LF or CR LF makes a record on both sides, exact in OTLP, counted', async (t) => {
    if (!requireEbpf(t)) return;
    const port = await freePort();
    const cap = await capture(t, [port]);
    const r = await run(process.execPath, ['-e', RAW_H2, String(port)]);
    assert.equal(r.code, 0, r.stderr);
    await cap.sink.waitFor((rs) => rs.filter((x) => attr(x, 'url.path') === '/').length >= 2, 15000, 'the client and server records');
    const records = await cap.finish();
    const h2 = records.filter((x) => attr(x, 'network.protocol.version') === '2');
    assert.deepEqual(h2.map((x) => attr(x, 'headertap.role')).sort(), ['client', 'server']);
    for (const rec of h2) {
      assert.equal(rec.body, 'GET / -> 200');
      assert.deepEqual(headers(rec, 'request', 'x-forged'), ['a\nINFO  GET /fake -> 200']);
      assert.deepEqual(headers(rec, 'response', 'x-resp'), ['r\r\nX-Injected: 1']);
    }
    assert.match(cap.stderr(), /invalid header values 4;/);
  });
});

/** Request headers holding secrets (the values' *-S3CRET parts must appear nowhere). */
const SECRET_HEADERS = {
  'X-Goog-Api-Key': 'GOOG-S3CRET',
  'Api-Key': 'APIKEY-S3CRET',
  'X-Session-Id': 'SESSION-S3CRET',
  'X-Amz-Security-Token': 'AMZ-S3CRET',
  'X-CSRF-Token': 'CSRF-S3CRET',
  'X-Internal-Sig': 'INTERNAL-S3CRET',
  'X-Forwarded-Uri': '/cb?access_token=FWD-S3CRET&state=ok',
  'X-Original-URL': '/maps?key=ORIG-S3CRET&q=paris',
};

describe('default redaction of the secret names real APIs use (real eBPF)', () => {
  it('headers, query parameters and URLs in headers: [REDACTED] in OTLP, masked in --record; +GLOB and !GLOB work', async (t) => {
    if (!requireEbpf(t)) return;
    const port = await rawServer(t);
    const dir = mkdtempSync(path.join(tmpdir(), 'ht-redact-'));
    const recording = path.join(dir, 'capture.htrec');
    const cap = await capture(t, [port], ['--record', recording, '--redact-headers', '+x-internal-sig,!x-session-affinity']);
    const args = ['-s', '-o', '/dev/null'];
    for (const [name, value] of Object.entries(SECRET_HEADERS)) args.push('-H', `${name}: ${value}`);
    args.push('-H', 'X-Session-Affinity: node-7', `http://127.0.0.1:${port}/v1/items?api_key=QUERY-S3CRET&apikey=Q2-S3CRET&page=2`);
    const curl = await run('/usr/bin/curl', args);
    assert.equal(curl.code, 0, curl.stderr);
    await cap.sink.waitFor((rs) => rs.length >= 2, 15000, 'both sides');
    const records = await cap.finish();
    const all = Buffer.concat(cap.sink.batches.map((b) => b.raw)).toString('latin1');
    const file = readFileSync(recording).toString('latin1');
    const secrets = [...Object.values(SECRET_HEADERS).join(' ').matchAll(/[A-Z0-9]+-S3CRET/g)].map((m) => m[0]);
    assert.equal(secrets.length, Object.keys(SECRET_HEADERS).length);
    for (const secret of [...secrets, 'QUERY-S3CRET', 'Q2-S3CRET', 'COOKIE-S3CRET']) {
      assert.ok(!all.includes(secret), `${secret} is not in the OTLP bytes`);
      assert.ok(!file.includes(secret), `${secret} is not in the recording`);
    }
    for (const rec of records) {
      for (const name of ['x-goog-api-key', 'api-key', 'x-session-id', 'x-amz-security-token', 'x-csrf-token', 'x-internal-sig']) {
        assert.deepEqual(headers(rec, 'request', name), ['[REDACTED]'], name);
      }
      assert.deepEqual(headers(rec, 'request', 'x-forwarded-uri'), ['/cb?access_token=[REDACTED]&state=ok']);
      assert.deepEqual(headers(rec, 'request', 'x-original-url'), ['/maps?key=[REDACTED]&q=paris']);
      assert.deepEqual(headers(rec, 'request', 'x-session-affinity'), ['node-7'], 'an exception keeps it readable');
      assert.equal(attr(rec, 'url.query'), 'api_key=[REDACTED]&apikey=[REDACTED]&page=2');
      assert.deepEqual(headers(rec, 'response', 'www-authenticate'), ['Bearer realm="api", error="invalid_token"'], 'a challenge stays readable');
      assert.deepEqual(headers(rec, 'response', 'set-cookie'), ['[REDACTED]']);
    }
  });
});

describe('bad paths and values stop `run` before anything is loaded (as root, live capture)', () => {
  it('a --spool-dir others can write to, --record in a missing directory, an empty --comm or --port: exit 2, one line, never ready', async (t) => {
    if (!requireEbpf(t)) return;
    const open = mkdtempSync(path.join(tmpdir(), 'ht-open-spool-'));
    chmodSync(open, 0o777);
    const cases: [string[], RegExp][] = [
      [['--spool-dir', open], /^headertap: --spool-dir \S+: \S+ is writable by group or others \(mode 0777\); another user could plant records in it: chmod go-w/],
      [['--record', '/nonexistent/dir/x.bin'], /^headertap: cannot write --record \/nonexistent\/dir\/x\.bin: its directory \/nonexistent\/dir does not exist/],
      [['--comm', ''], /^headertap: --comm '' has an empty process name/],
      [['--port', ''], /^headertap: --port '' has an empty port/],
    ];
    for (const [args, re] of cases) {
      const r = await run(process.execPath, [HEADERTAP, 'run', '--endpoint', 'http://127.0.0.1:9', ...args], { timeoutMs: 20000 });
      assert.equal(r.code, 2, `${args.join(' ')}: ${r.stderr}`);
      const lines = r.stderr.trimEnd().split('\n');
      assert.equal(lines.length, 1, r.stderr);
      assert.match(lines[0], re);
      assert.doesNotMatch(r.stderr, /headertap ready/);
    }
  });
});
