import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { Http1StreamParser, parseContentLength, parseStartLine, type ParseProblem } from '../../src/http/parse';
import { findStartLine } from '../../src/http/parse';
import type { HttpMessageHead } from '../../src/http';

interface Run {
  messages: HttpMessageHead[];
  problems: ParseProblem[];
  parser: Http1StreamParser;
}

function parser(opts: { maxHeaderBytes?: number; method?: () => string | undefined } = {}): Run {
  const run: Run = { messages: [], problems: [], parser: undefined as unknown as Http1StreamParser };
  run.parser = new Http1StreamParser(
    { message: (m) => run.messages.push(m), problem: (p) => run.problems.push(p) },
    { maxHeaderBytes: opts.maxHeaderBytes ?? 16384, requestMethod: opts.method },
  );
  return run;
}

function feed(input: string | Buffer, chunks?: number[], opts?: Parameters<typeof parser>[0]): Run {
  const run = parser(opts);
  const buf = typeof input === 'string' ? Buffer.from(input, 'latin1') : input;
  let pos = 0;
  for (const size of chunks ?? [buf.length]) {
    run.parser.push(buf.subarray(pos, pos + size), pos);
    pos += size;
  }
  if (pos < buf.length) run.parser.push(buf.subarray(pos), pos);
  return run;
}

/** What a test compares: the parts of a head that do not depend on chunking. */
function shape(m: HttpMessageHead) {
  return m.kind === 'request'
    ? { kind: m.kind, method: m.method, target: m.target, version: m.version, headers: m.headers, truncated: m.truncated, headBytes: m.headBytes }
    : { kind: m.kind, status: m.status, reason: m.reason, version: m.version, headers: m.headers, truncated: m.truncated, headBytes: m.headBytes };
}

const GET = 'GET /api/items?limit=5 HTTP/1.1\r\nHost: example.test\r\nX-Tenant: acme\r\nAccept: */*\r\n\r\n';
const OK = 'HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 5\r\n\r\nhello';
const CHUNKED =
  'HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nX-A: 1\r\n\r\n' +
  '5;ext=1\r\nhello\r\n1a\r\nabcdefghijklmnopqrstuvwxyz\r\n0\r\nX-Trailer: t\r\n\r\n';

describe('parseStartLine', () => {
  it('splits request and status lines', () => {
    assert.deepEqual(parseStartLine('GET /a?b=1 HTTP/1.1'), { kind: 'request', method: 'GET', target: '/a?b=1', version: '1.1' });
    assert.deepEqual(parseStartLine('HTTP/1.0 404 Not Found'), { kind: 'response', version: '1.0', status: 404, reason: 'Not Found' });
    assert.deepEqual(parseStartLine('HTTP/1.1 204'), { kind: 'response', version: '1.1', status: 204, reason: '' });
  });

  it('rejects lines that only look similar', () => {
    for (const line of ['get / HTTP/1.1', 'GET / HTTP/2.0', 'GET /  HTTP/1.1', 'HTTP/1.1 20 OK', 'HTTP/1.1 999999', '', 'GET', '\u0000\u0001']) {
      assert.equal(parseStartLine(line), undefined, line);
    }
  });
});

describe('parseContentLength', () => {
  it('accepts repeated equal values and rejects conflicts', () => {
    assert.equal(parseContentLength(['12']), 12);
    assert.equal(parseContentLength(['12', '12']), 12);
    assert.equal(parseContentLength(['12, 12']), 12);
    assert.equal(parseContentLength(['12', '13']), undefined);
    assert.equal(parseContentLength(['-1']), undefined);
    assert.equal(parseContentLength(['1e3']), undefined);
  });
});

describe('Http1StreamParser', () => {
  it('parses a request head with headers in wire order, lower-case names', () => {
    const { messages, problems } = feed(GET);
    assert.deepEqual(problems, []);
    assert.equal(messages.length, 1);
    assert.deepEqual(shape(messages[0]), {
      kind: 'request',
      method: 'GET',
      target: '/api/items?limit=5',
      version: '1.1',
      headers: ['host', 'example.test', 'x-tenant', 'acme', 'accept', '*/*'],
      truncated: undefined,
      headBytes: Buffer.byteLength(GET),
    });
  });

  it('keeps every occurrence of a repeated header', () => {
    const { messages } = feed('HTTP/1.1 200 OK\r\nSet-Cookie: a=1\r\nset-cookie: b=2\r\nContent-Length: 0\r\n\r\n');
    assert.deepEqual(messages[0].headers, ['set-cookie', 'a=1', 'set-cookie', 'b=2', 'content-length', '0']);
  });

  it('finds the next response after a Content-Length body (keep-alive)', () => {
    const { messages, problems } = feed(OK + OK.replace('200 OK', '201 Created'));
    assert.deepEqual(problems, []);
    assert.deepEqual(
      messages.map((m) => (m.kind === 'response' ? m.status : 0)),
      [200, 201],
    );
  });

  it('skips a chunked body with extensions and trailers', () => {
    const { messages, problems } = feed(CHUNKED + OK);
    assert.deepEqual(problems, []);
    assert.equal(messages.length, 2);
    assert.deepEqual(messages[0].headers, ['transfer-encoding', 'chunked', 'x-a', '1']);
  });

  it('parses two pipelined requests from one write, the first with a body', () => {
    const post = 'POST /a HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabc';
    const { messages } = feed(post + GET);
    assert.deepEqual(
      messages.map((m) => (m.kind === 'request' ? `${m.method} ${m.target}` : '')),
      ['POST /a', 'GET /api/items?limit=5'],
    );
  });

  it('gives the same messages whatever the chunking (every split point, and byte by byte)', () => {
    const stream = 'GET /x HTTP/1.1\r\nHost: h\r\n\r\n' + CHUNKED + OK + 'HTTP/1.1 204 No Content\r\nX: y\r\n\r\n';
    const whole = feed(stream).messages.map(shape);
    assert.equal(whole.length, 4);
    for (let split = 1; split < stream.length; split++) {
      assert.deepEqual(feed(stream, [split]).messages.map(shape), whole, `split at ${split}`);
    }
    assert.deepEqual(feed(stream, Array(stream.length).fill(1)).messages.map(shape), whole);
  });

  it('gives each message the time of its first and last head bytes', () => {
    const run = parser();
    run.parser.push(Buffer.from('GET / HTTP/1.1\r\nHo'), 100);
    run.parser.push(Buffer.from('st: h\r\n'), 200);
    run.parser.push(Buffer.from('\r\n'), 300);
    assert.equal(run.messages[0].startNs, 100);
    assert.equal(run.messages[0].endNs, 300);
  });

  it('accepts bare LF line endings and empty lines between messages', () => {
    const { messages, problems } = feed('\r\n\nGET / HTTP/1.0\nHost: h\n\n\r\nGET /2 HTTP/1.0\r\n\r\n');
    assert.deepEqual(problems, []);
    assert.equal(messages.length, 2);
    assert.deepEqual(messages[0].headers, ['host', 'h']);
  });

  it('joins obs-fold continuation lines to the previous value', () => {
    const { messages } = feed('GET / HTTP/1.1\r\nX-Long: a\r\n  b\r\n\tc\r\n\r\n');
    assert.deepEqual(messages[0].headers, ['x-long', 'a b c']);
  });

  it('does not read a body after HEAD, 204, 304 and interim 1xx responses', () => {
    const head = feed('HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n' + OK, undefined, { method: () => 'HEAD' });
    assert.equal(head.messages.length, 2);
    const noBody = feed('HTTP/1.1 204 No Content\r\n\r\nHTTP/1.1 304 Not Modified\r\nContent-Length: 9\r\n\r\n' + OK);
    assert.deepEqual(
      noBody.messages.map((m) => (m.kind === 'response' ? m.status : 0)),
      [204, 304, 200],
    );
    const interim = feed('HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 103 Early Hints\r\nLink: </a>\r\n\r\n' + OK);
    assert.deepEqual(
      interim.messages.map((m) => (m.kind === 'response' ? m.status : 0)),
      [200],
      'interim responses are not final responses',
    );
  });

  it('treats a response without length as ending with the connection', () => {
    const run = feed('HTTP/1.0 200 OK\r\nServer: x\r\n\r\nbody bytes\r\nHTTP/1.1 200 OK\r\n\r\n');
    assert.equal(run.messages.length, 1, 'body bytes that look like a response are still body');
    run.parser.end();
    run.parser.push(Buffer.from(OK), 0);
    assert.equal(run.messages.length, 2, 'after end() it looks for messages again');
  });

  it('ignores everything after 101 Switching Protocols and a 2xx to CONNECT', () => {
    const upgrade = feed('HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\r\n\x81\x05hello' + OK);
    assert.equal(upgrade.messages.length, 1);
    const connect = feed('HTTP/1.1 200 Connection Established\r\n\r\n\x16\x03\x01' + OK, undefined, { method: () => 'CONNECT' });
    assert.equal(connect.messages.length, 1);
  });

  it('resyncs after garbage: skips non-HTTP lines until a start line', () => {
    const { messages } = feed('\x00\x01garbage\r\nmore junk\n' + GET);
    assert.equal(messages.length, 1);
    assert.equal(messages[0].kind, 'request');
  });

  it('counts an invalid start line between messages and recovers', () => {
    const { messages, problems } = feed(OK + 'NOT HTTP AT ALL\r\n' + OK);
    assert.equal(messages.length, 2);
    assert.deepEqual(problems, ['invalid_start_line']);
  });

  it('survives random binary input without throwing or emitting messages', () => {
    let seed = 7;
    const rnd = () => (seed = (seed * 1103515245 + 12345) & 0x7fffffff) & 0xff;
    const junk = Buffer.from(Array.from({ length: 200_000 }, rnd));
    const run = feed(junk, Array(2000).fill(100));
    assert.equal(run.messages.length, 0);
  });

  it('marks a head longer than the limit truncated but still honours its framing headers', () => {
    const big = 'x'.repeat(200);
    const msg = `HTTP/1.1 200 OK\r\nA: ${big}\r\nB: ${big}\r\nC: ${big}\r\nContent-Length: 4\r\n\r\nbody`;
    const { messages, problems } = feed(msg + OK, undefined, { maxHeaderBytes: 256 });
    assert.deepEqual(problems, []);
    assert.equal(messages.length, 2, 'Content-Length past the limit was still used to skip the body');
    assert.equal(messages[0].truncated, 'header_limit');
    assert.deepEqual(messages[0].headers, ['a', big]);
    assert.equal(messages[1].truncated, undefined);
  });

  it('drops a 200 KB header line without buffering it, then continues', () => {
    const line = 'X-Huge: ' + 'y'.repeat(200_000);
    const req = `GET /a HTTP/1.1\r\nHost: h\r\n${line}\r\nX-After: 1\r\n\r\n`;
    const { messages } = feed(req + GET, Array(100).fill(4096), { maxHeaderBytes: 16384 });
    assert.equal(messages.length, 2);
    assert.equal(messages[0].truncated, 'header_limit');
    assert.deepEqual(messages[0].headers, ['host', 'h']);
  });

  it('abandons a head that never ends after 1 MiB and counts it', () => {
    const run = parser();
    run.parser.push(Buffer.from('GET / HTTP/1.1\r\n'), 0);
    const line = Buffer.from('X: ' + 'z'.repeat(1000) + '\r\n');
    for (let i = 0; i < 1100; i++) run.parser.push(line, i);
    assert.deepEqual(run.problems, ['head_overflow']);
    assert.equal(run.messages.length, 1);
    assert.equal(run.messages[0].truncated, 'header_limit');
  });

  it('skips a gap inside a body (sendfile) and parses the next message', () => {
    const run = parser();
    run.parser.push(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n0123456789'), 1);
    run.parser.gap(990);
    run.parser.push(Buffer.from(OK), 2);
    assert.deepEqual(run.problems, []);
    assert.equal(run.messages.length, 2);
  });

  it('reports a head cut by a gap as truncated and resyncs', () => {
    const run = parser();
    run.parser.push(Buffer.from('GET /a HTTP/1.1\r\nHost: h\r\nX-Par'), 1);
    run.parser.gap(5000);
    run.parser.push(Buffer.from('tial\r\n\r\n' + GET), 2);
    assert.deepEqual(run.problems, ['gap_resync']);
    assert.equal(run.messages.length, 2);
    assert.equal(run.messages[0].truncated, 'capture_gap');
    assert.deepEqual(run.messages[0].headers, ['host', 'h']);
  });

  it('a head cut by a gap after --max-header-bytes is header_limit: the lost part was past the limit', () => {
    const run = parser({ maxHeaderBytes: 256 });
    const head = 'GET /a HTTP/1.1\r\nHost: h\r\n' + Array.from({ length: 20 }, (_, i) => `X-H${i}: ${'v'.repeat(20)}\r\n`).join('');
    run.parser.push(Buffer.from(head.slice(0, 256)), 1); // the kernel copied up to the limit
    run.parser.gap(head.length - 256 + 2);
    run.parser.push(Buffer.from(GET), 2);
    assert.deepEqual(run.problems, ['gap_resync']);
    assert.equal(run.messages.length, 2);
    assert.equal(run.messages[0].truncated, 'header_limit');
    assert.deepEqual(run.messages[0].headers.slice(0, 4), ['host', 'h', 'x-h0', 'v'.repeat(20)]);
    assert.equal(run.messages[1].truncated, undefined);
  });

  it('resyncs when a gap overruns the body into the next message', () => {
    const run = parser();
    run.parser.push(Buffer.from('HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\n'), 1);
    run.parser.gap(50); // the body and the start of the next response
    run.parser.push(Buffer.from('Type: x\r\n\r\n' + OK), 2);
    assert.deepEqual(run.problems, ['gap_resync']);
    assert.equal(run.messages.length, 2);
  });

  it('reports a head the connection cut off', () => {
    const run = parser();
    run.parser.push(Buffer.from('GET /a HTTP/1.1\r\nHost: h\r\n'), 1);
    run.parser.end();
    assert.equal(run.messages[0].truncated, 'connection_closed');
  });

  it('keeps other headers when one line is malformed, and marks the message', () => {
    const { messages } = feed('GET / HTTP/1.1\r\nHost: h\r\nno colon here\r\nBad Name: v\r\nX-Ok: 1\r\n\r\n');
    assert.deepEqual(messages[0].headers, ['host', 'h', 'x-ok', '1']);
    assert.equal(messages[0].truncated, 'malformed_header');
  });

  it('counts an unusable Content-Length and resyncs', () => {
    const { messages, problems } = feed('POST / HTTP/1.1\r\nContent-Length: 5, 6\r\n\r\nhello' + GET);
    assert.deepEqual(problems, ['invalid_framing']);
    assert.equal(messages.length, 2, 'the bad request is still reported, the next one found');
  });

  it('decodes header values as UTF-8 when valid, else Latin-1', () => {
    const bytes = Buffer.concat([
      Buffer.from('GET / HTTP/1.1\r\nX-Utf8: caf\xc3\xa9\r\nX-Latin1: caf', 'latin1'),
      Buffer.from([0xe9]),
      Buffer.from('\r\nX-Nul: a\x00b\r\n\r\n', 'latin1'),
    ]);
    const { messages } = feed(bytes);
    assert.deepEqual(messages[0].headers, ['x-utf8', 'café', 'x-latin1', 'café', 'x-nul', 'a\u0000b']);
  });
});

describe('header values HTTP forbids', () => {
  it('keeps a value holding NUL or a bare CR as sent and counts it once per value, folded lines included', () => {
    const { messages, problems } = feed('GET / HTTP/1.1\r\nX-Cr: a\rX-Forged: 1\r\nX-Nul: b\x00\x00c\r\nX-Fold: d\r\n \re\r\nX-Esc: \x1b[2J\x07\t\x85\r\n\r\n');
    assert.deepEqual(messages[0].headers, ['x-cr', 'a\rX-Forged: 1', 'x-nul', 'b\x00\x00c', 'x-fold', 'd \re', 'x-esc', '\x1b[2J\x07\t\x85']);
    assert.equal(messages[0].invalidValues, 3, 'x-cr, x-nul, the fold of x-fold; ESC, BEL, TAB and C1 are not forbidden');
    assert.equal(messages[0].truncated, undefined);
    assert.deepEqual(problems, []);
    assert.equal(feed(GET).messages[0].invalidValues, undefined);
  });
});

describe('joined mid-message (missed_start)', () => {
  it('counts a stream whose first message came after skipped bytes, once', () => {
    const r = feed('dy of an earlier response\r\nmore body\r\nHTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\nHTTP/1.1 204 No Content\r\n\r\n');
    assert.equal(r.messages.length, 2);
    assert.deepEqual(r.problems, ['missed_start']);
  });

  it('a start line glued after body bytes is a missed start too', () => {
    assert.deepEqual(feed('tail of a bodyGET /x HTTP/1.1\r\nHost: a\r\n\r\n').problems, ['missed_start']);
  });

  it('a stream that starts at a message boundary, or an empty line before it, is not', () => {
    assert.deepEqual(feed('GET / HTTP/1.1\r\nHost: a\r\n\r\n').problems, []);
    assert.deepEqual(feed('\r\nGET / HTTP/1.1\r\nHost: a\r\n\r\n').problems, []);
  });

  it('a gap before the first message counts, a later resync does not', () => {
    const r = parser();
    r.parser.gap(100);
    r.parser.push(Buffer.from('GET / HTTP/1.1\r\n\r\n'), 1);
    r.parser.push(Buffer.from('garbage\r\nGET /2 HTTP/1.1\r\n\r\n'), 2);
    assert.deepEqual(r.problems, ['missed_start', 'invalid_start_line']);
    assert.equal(r.messages.length, 2);
  });
});

describe('findStartLine (resync)', () => {
  it('finds a start line glued to the end of body bytes', () => {
    assert.equal(findStartLine('{"a":1}HTTP/1.1 200 OK')?.kind, 'response');
    const req = findStartLine('trailing-bodyPOST /x?y=1 HTTP/1.1');
    assert.deepEqual(req, { kind: 'request', method: 'POST', target: '/x?y=1', version: '1.1' });
    assert.equal(findStartLine('see the spec at HTTP/1.1 section 3'), undefined);
    assert.equal(findStartLine('xFOO /a HTTP/1.1'), undefined, 'only well-known methods when glued');
  });
});
