/**
 * Property tests of the HTTP/1.x stream parser with fast-check: 100 000+
 * generated inputs per run (binary garbage, HTTP fragments, NUL bytes,
 * invalid UTF-8, huge lines, many headers, arbitrary chunking and gaps). The
 * parser must never throw, never report a header that is not in its input,
 * never keep more than its limits, and parse well-formed messages exactly.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import fc from 'fast-check';
import { Http1StreamParser, type ParseProblem } from '../../src/http/parse';
import type { HttpMessageHead } from '../../src/http/types';

const MAX_HEADER_BYTES = 512;

/** Pieces that make inputs look like HTTP often enough to reach every state. */
const FRAGMENTS = [
  'GET / HTTP/1.1\r\n',
  'POST /x?a=1 HTTP/1.0\r\n',
  'HTTP/1.1 200 OK\r\n',
  'HTTP/1.1 101 Switching Protocols\r\n',
  'HTTP/1.1 204 No Content\r\n',
  'Host: h\r\n',
  'Content-Length: 5\r\n',
  'Content-Length: 99999999999999999999\r\n',
  'Transfer-Encoding: chunked\r\n',
  'Transfer-Encoding: gzip\r\n',
  '5\r\nhello\r\n',
  '0\r\n\r\n',
  'zz\r\n',
  ' folded\r\n',
  ':novalue\r\n',
  'X-A: \u00e9\u00e8\r\n',
  '\r\n',
  '\n',
  '\r',
  ': \t',
  'HTTP/1.',
  '\u0000',
];

const bytes = fc.oneof(
  { weight: 2, arbitrary: fc.uint8Array({ maxLength: 64 }) },
  { weight: 14, arbitrary: fc.constantFrom(...FRAGMENTS).map((s) => Buffer.from(s, s.includes('\u00e9') ? 'utf8' : 'latin1')) },
  { weight: 1, arbitrary: fc.constantFrom(Buffer.from([0xc3, 0x28]), Buffer.from([0xff, 0xfe, 0xfd]), Buffer.from([0xe2, 0x82])) },
  {
    weight: 1,
    arbitrary: fc.integer({ min: 600, max: 20_000 }).map((n) => Buffer.alloc(n, 0x61)), // a line past every limit
  },
);

/** An input stream: pieces, some of them replaced by a gap of their length. */
const stream = fc.array(fc.record({ data: bytes, gap: fc.integer({ min: 0, max: 9 }).map((n) => n === 0) }), { maxLength: 40, size: 'large' });

interface Run {
  heads: HttpMessageHead[];
  problems: ParseProblem[];
}

function runParser(pieces: { data: Uint8Array; gap: boolean }[], end: boolean): Run {
  const heads: HttpMessageHead[] = [];
  const problems: ParseProblem[] = [];
  const parser = new Http1StreamParser(
    { message: (h) => heads.push(h), problem: (p) => problems.push(p) },
    { maxHeaderBytes: MAX_HEADER_BYTES, requestMethod: () => 'GET' },
  );
  let ts = 0;
  for (const p of pieces) {
    if (p.gap) parser.gap(p.data.length);
    else parser.push(Buffer.from(p.data), ++ts);
  }
  if (end) parser.end();
  return { heads, problems };
}

/** Every header name and value token, the method and target, came from the input. */
function assertFromInput(run: Run, input: Buffer): void {
  const latin1 = input.toString('latin1');
  const lower = latin1.toLowerCase();
  const utf8 = input.toString('utf8');
  const has = (s: string) => latin1.includes(s) || utf8.includes(s);
  for (const h of run.heads) {
    if (h.kind === 'request') {
      assert.ok(latin1.includes(`${h.method} ${h.target} HTTP/${h.version}`), `request line ${h.method} ${h.target}`);
    } else {
      assert.ok(latin1.includes(`HTTP/${h.version} ${h.status}`), `status line ${h.status}`);
    }
    let kept = 0;
    for (let i = 0; i < h.headers.length; i += 2) {
      const name = h.headers[i];
      const value = h.headers[i + 1];
      assert.ok(lower.includes(`${name}:`), `header name ${JSON.stringify(name)} is in the input`);
      // obs-fold joins continuation lines with one space: each piece was in the input
      for (const piece of value.split(' ')) assert.ok(has(piece), `header value piece ${JSON.stringify(piece)} is in the input`);
      kept += name.length + value.length;
    }
    assert.ok(kept <= MAX_HEADER_BYTES, `kept ${kept} header bytes, limit ${MAX_HEADER_BYTES}`);
  }
}

describe('HTTP parser properties (fast-check)', () => {
  it('arbitrary bytes, chunking and gaps (60 000 inputs): no throw, every header from the input, limits hold', () => {
    let runs = 0;
    let headers = 0;
    fc.assert(
      fc.property(stream, fc.boolean(), (pieces, end) => {
        runs++;
        const input = Buffer.concat(pieces.filter((p) => !p.gap).map((p) => p.data));
        const run = runParser(pieces, end);
        for (const h of run.heads) headers += h.headers.length / 2;
        assertFromInput(run, input);
      }),
      { numRuns: 60_000 },
    );
    assert.equal(runs, 60_000);
    assert.ok(headers > 10_000, `the inputs reach header parsing (${headers} headers parsed)`);
  });

  const token = fc.stringMatching(/^[a-z][a-z0-9-]{0,15}$/);
  const value = fc.oneof(fc.stringMatching(/^[\x21-\x7e]([\x20-\x7e]{0,30}[\x21-\x7e])?$/), fc.constantFrom('é', '日本', 'a\u00a0b'));
  const message = fc.record({
    method: fc.constantFrom('GET', 'POST', 'PUT', 'DELETE', 'PATCH', 'OPTIONS'),
    path: fc.stringMatching(/^\/[A-Za-z0-9._~/?=&%-]{0,40}$/),
    headers: fc.array(fc.tuple(token, value), { maxLength: 12 }),
    body: fc.uint8Array({ maxLength: 40 }),
  });

  it('well-formed requests split anywhere (40 000 inputs): parsed exactly, in order, bodies skipped', () => {
    let runs = 0;
    fc.assert(
      fc.property(fc.array(message, { minLength: 1, maxLength: 4 }), fc.array(fc.integer({ min: 1, max: 64 }), { maxLength: 20 }), (msgs, cuts) => {
        const wire = Buffer.concat(
          msgs.map((m) => {
            const fields = m.headers.filter(([n]) => n !== 'content-length' && n !== 'transfer-encoding');
            const head = [`${m.method} ${m.path} HTTP/1.1`, ...fields.map(([n, v]) => `${n}: ${v}`), `content-length: ${m.body.length}`, '', ''].join('\r\n');
            return Buffer.concat([Buffer.from(head, 'utf8'), Buffer.from(m.body)]);
          }),
        );
        const pieces: { data: Uint8Array; gap: boolean }[] = [];
        let at = 0;
        for (const c of cuts) {
          if (at >= wire.length) break;
          pieces.push({ data: wire.subarray(at, at + c), gap: false });
          at += c;
        }
        if (at < wire.length) pieces.push({ data: wire.subarray(at), gap: false });
        runs++;
        const run = runParser(pieces, false);
        assert.deepEqual(run.problems, []);
        assert.equal(run.heads.length, msgs.length);
        run.heads.forEach((h, i) => {
          const m = msgs[i];
          assert.equal(h.kind, 'request');
          assert.equal(h.kind === 'request' && h.method, m.method);
          assert.equal(h.kind === 'request' && h.target, m.path);
          const expected = m.headers.filter(([n]) => n !== 'content-length' && n !== 'transfer-encoding').flatMap(([n, v]) => [n, v]);
          if (!h.truncated) assert.deepEqual(h.headers.slice(0, -2), expected);
        });
      }),
      { numRuns: 40_000 },
    );
    assert.equal(runs, 40_000);
  });

  it('hostile shapes: 1 MB header lines, 100 000 headers, no CRLF at all, NUL floods', () => {
    const cases: [string, Buffer][] = [
      ['1 MB header line', Buffer.concat([Buffer.from('GET / HTTP/1.1\r\nX-Big: '), Buffer.alloc(1 << 20, 0x62), Buffer.from('\r\nHost: a\r\n\r\n')])],
      ['100 000 headers', Buffer.from(`GET / HTTP/1.1\r\n${'a: b\r\n'.repeat(100_000)}\r\n`)],
      ['no CRLF', Buffer.alloc(2 << 20, 0x41)],
      ['NUL bytes', Buffer.concat([Buffer.from('GET / HTTP/1.1\r\nX: \u0000\u0000\r\n'), Buffer.alloc(100_000, 0), Buffer.from('\r\n\r\n')])],
    ];
    for (const [name, input] of cases) {
      const run = runParser([{ data: input, gap: false }], true);
      assertFromInput(run, input);
      for (const h of run.heads) assert.ok(h.headers.length <= MAX_HEADER_BYTES, `${name}: header count bounded (${h.headers.length / 2})`);
      // and it still parses a normal request afterwards on a fresh stream position
      const after = runParser(
        [
          { data: input, gap: false },
          { data: Buffer.from('\r\n\r\nGET /after HTTP/1.1\r\nHost: ok\r\n\r\n'), gap: false },
        ],
        false,
      );
      assert.ok(
        after.heads.some((h) => h.kind === 'request' && h.target === '/after'),
        `${name}: a normal request after it is still parsed`,
      );
    }
  });
});
