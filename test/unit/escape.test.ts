/**
 * What people read never carries a byte from traffic that a terminal acts
 * on: the escaper itself, and every printer that uses it (pretty records and
 * spans, JSON lines, stderr messages). Assertions are on the exact text.
 */
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import { describe, it } from 'node:test';
import { batchPrinter } from '../../src/cli/print';
import { stderrLog, type CliIO } from '../../src/cli/output';
import { jsonLine, visible } from '../../src/common/escape';
import { toJsonLine, toPretty, type FlatRecord } from '../../src/common/flat-record';
import { toPrettySpan, type FlatSpan } from '../../src/common/flat-span';
import type { ReceivedBatch } from '../../src/receiver';

/** Every character the escaper must show as an escape. */
const UNSAFE_CODES = [
  ...Array.from({ length: 0x20 }, (_, i) => i),
  0x7f,
  ...Array.from({ length: 0x20 }, (_, i) => 0x80 + i),
  0x061c,
  0x200e,
  0x200f,
  0x2028,
  0x2029,
  0x202a,
  0x202b,
  0x202c,
  0x202d,
  0x202e,
  0x2066,
  0x2067,
  0x2068,
  0x2069,
  0x206a,
  0x206f,
];

/** Whether a line holds a character a terminal or a bidi renderer would act on. */
function hasUnsafe(text: string): boolean {
  return [...text].some((ch) => UNSAFE_CODES.includes(ch.codePointAt(0)!));
}

/** A header value an attacker would send: erase the screen, a forged line, bidi reordering. */
const FORGERY = 'a\x1b[2J\x1b[1E\rINFO  GET /forged -> 200\n\x07\x00\x85\x9b31m\u202eevil\u2066\u2028\x7f\\x1b';

function flatRecord(over: Partial<FlatRecord> = {}): FlatRecord {
  return {
    time: '2026-01-02T03:04:05.000000006Z',
    severity_text: 'INFO',
    body: `GET /p\x1b[1A -> 200`,
    resource: { 'service.name': 'svc\nFAKE LINE' },
    attributes: {
      'headertap.role': 'server',
      'process.executable.name': 'node',
      'process.pid': 42,
      'url.path': '/p\x1b[1A',
      'url.query': 'q=\r1',
      'http.request.header.x-evil': [FORGERY],
      'http.request.header.x-bidi\u202e': ['ok'],
    },
    ...over,
  };
}

describe('visible(): the one escaper for human-facing text', () => {
  it('shows C0, DEL and C1 controls as \\xHH, bidi controls and line separators as \\uHHHH', () => {
    for (const code of UNSAFE_CODES) {
      const out = visible(`<${String.fromCharCode(code)}>`);
      const want = code < 0x100 ? `<\\x${code.toString(16).padStart(2, '0')}>` : `<\\u${code.toString(16).padStart(4, '0')}>`;
      assert.equal(out, want, `U+${code.toString(16)}`);
    }
    assert.equal(visible('\x1b[2J'), '\\x1b[2J');
    assert.equal(visible('a\rb\nc\td'), 'a\\x0db\\x0ac\\x09d');
    assert.equal(visible('\u202eevil'), '\\u202eevil');
  });

  it('doubles a backslash, so an escape on screen always stands for the character', () => {
    assert.equal(visible('\\x1b'), '\\\\x1b');
    assert.notEqual(visible('\\x1b'), visible('\x1b'));
  });

  it('keeps printable ASCII and other Unicode as they are', () => {
    const text = ' !"#$%&\'()*+,-./0123456789:;<=>?@AZ[]^_`az{|}~ µé€漢字😀 \u00a0\u00ad';
    assert.equal(visible(text), text);
  });
});

describe('jsonLine(): JSON a terminal does not act on', () => {
  it('escapes DEL, C1, bidi controls and U+2028/U+2029 as \\u, and parses back to the exact value', () => {
    const value = { h: [FORGERY], k: 'x\u202ey' };
    const line = jsonLine(value);
    assert.ok(!hasUnsafe(line), line);
    assert.deepEqual(JSON.parse(line), value);
    assert.equal(jsonLine('\x85\u2028\u202e\x7f'), '"\\u0085\\u2028\\u202e\\u007f"');
    assert.equal(jsonLine('\x1b'), '"\\u001b"', 'C0 as JSON.stringify escapes it');
  });

  it('toJsonLine (--format jsonl, --console) is that line', () => {
    const rec = flatRecord();
    const line = toJsonLine(rec);
    assert.ok(!hasUnsafe(line));
    assert.deepEqual(JSON.parse(line), rec);
  });
});

describe('pretty records and spans: one block per record, nothing acts on the terminal', () => {
  it('escapes the body, path, query, headers (names and values) and the service name', () => {
    const text = toPretty(flatRecord());
    assert.equal(
      text,
      [
        '2026-01-02T03:04:05.000000006Z INFO  GET /p\\x1b[1A -> 200',
        '  server  node[42]  service=svc\\x0aFAKE LINE',
        '  query: q=\\x0d1',
        '  > x-evil: a\\x1b[2J\\x1b[1E\\x0dINFO  GET /forged -> 200\\x0a\\x07\\x00\\x85\\x9b31m\\u202eevil\\u2066\\u2028\\x7f\\\\x1b',
        '  > x-bidi\\u202e: ok',
      ].join('\n'),
    );
  });

  it('a span is two lines whatever its name and service', () => {
    const span: FlatSpan = {
      trace_id: 'a'.repeat(32),
      span_id: 'b'.repeat(16),
      trace_flags: 1,
      name: 'GET /x\n\x1b[2K',
      kind: 'SERVER',
      start_time: '2026-01-02T03:04:05.000000006Z',
      end_time: '2026-01-02T03:04:05.000000007Z',
      duration_ns: 1,
      status: { code: 'UNSET' },
      resource: { 'service.name': '\u202esvc' },
      attributes: {},
    };
    const lines = toPrettySpan(span).split('\n');
    assert.equal(lines.length, 2);
    assert.equal(lines[0], '2026-01-02T03:04:05.000000006Z SPAN  SERVER GET /x\\x0a\\x1b[2K  0.00 ms  status=UNSET  service=\\u202esvc');
  });

  it('the receiver printer writes escaped blocks (pretty) and escaped JSON lines (jsonl), spans included', () => {
    const span = { name: 'x\x9by', kind: 'SERVER' } as unknown as FlatSpan;
    const batch = { records: [flatRecord()], spans: [span] } as unknown as ReceivedBatch;
    for (const format of ['pretty', 'jsonl'] as const) {
      const out: string[] = [];
      batchPrinter(format, (s) => out.push(s))(format === 'pretty' ? { ...batch, spans: [] } : batch);
      assert.ok(!hasUnsafe(out.join('').replace(/\n/g, '')), `${format}: ${out.join('\n')}`);
      // pretty: the block's 5 lines and the blank line after it; jsonl: no line break inside a record or span
      assert.equal(out.join('').split('\n').length, format === 'pretty' ? 6 : 1);
    }
  });
});

describe('stderr messages', () => {
  it('quote traffic and process text escaped: one message is one line', () => {
    let text = '';
    const stderr = new Writable({
      write(chunk: Buffer, _enc, cb) {
        text += chunk.toString();
        cb();
      },
    });
    const io: CliIO = { stdout: stderr, stderr, env: {} };
    const log = stderrLog(io, true);
    log.warn('TLS: cannot probe /tmp/lib\nheadertap: FAKE\x1b[2J.so');
    log.debug('service \u202esvc');
    assert.equal(text, 'headertap: warning: TLS: cannot probe /tmp/lib\\x0aheadertap: FAKE\\x1b[2J.so\nheadertap: debug: service \\u202esvc\n');
  });
});
