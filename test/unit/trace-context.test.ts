/**
 * Trace context from request headers through the official propagators: every
 * format, the precedence between them, and bad values (ignored, never thrown).
 * Headers go through the real HTTP parser, so name case is as on the wire.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { HeaderList, HttpMessageHead } from '../../src/http';
import { Http1StreamParser } from '../../src/http/parse';
import { extractSpanContext, extractTraceContext, MAX_TRACE_HEADER_BYTES } from '../../src/otel/trace-context';

const TRACE = '4bf92f3577b34da6a3ce929d0e0e4736';
const SPAN = '00f067aa0ba902b7';
const B3_TRACE = '80f198ee56343ba864fe8b2a57d3eff7';
const B3_SPAN = 'e457b5a2e4d86bd1';
const XB3_TRACE = '463ac35c9f6413ad48485a3953bb6124';
const XB3_SPAN = '0020000000000001';
const UBER_TRACE = '0000000000000000a9b8c7d6e5f40312';
const UBER_SPAN = '1122334455667788';

const TRACEPARENT = ['TraceParent', `00-${TRACE}-${SPAN}-01`];
const B3 = ['B3', `${B3_TRACE}-${B3_SPAN}-1`];
const XB3 = ['X-B3-TraceId', XB3_TRACE, 'X-B3-SpanId', XB3_SPAN, 'X-B3-Sampled', '1'];
const UBER = ['Uber-Trace-Id', `a9b8c7d6e5f40312:${UBER_SPAN}:0:1`];

/** A request with these header lines (names as written) parsed by the real parser. */
function parsed(...fields: string[]): HeaderList {
  const heads: HttpMessageHead[] = [];
  const parser = new Http1StreamParser({ message: (h) => heads.push(h), problem: () => {} }, { maxHeaderBytes: 65536 });
  let text = 'GET / HTTP/1.1\r\nHost: t\r\n';
  for (let i = 0; i < fields.length; i += 2) text += `${fields[i]}: ${fields[i + 1]}\r\n`;
  parser.push(Buffer.from(`${text}\r\n`, 'latin1'), 1);
  assert.equal(heads.length, 1, 'the parser produced the request');
  return heads[0].headers;
}

function ids(headers: HeaderList): string | undefined {
  const tc = extractTraceContext(headers);
  return tc && `${tc.format} ${tc.spanContext.traceId} ${tc.spanContext.spanId} ${tc.spanContext.traceFlags}`;
}

describe('extractTraceContext: each format through its official propagator', () => {
  it('W3C traceparent', () => {
    assert.equal(ids(parsed(...TRACEPARENT)), `traceparent ${TRACE} ${SPAN} 1`);
    assert.equal(extractSpanContext(parsed(...TRACEPARENT))?.isRemote, true);
  });

  it('B3 single header, 64-bit trace ids padded to 128', () => {
    assert.equal(ids(parsed(...B3)), `b3 ${B3_TRACE} ${B3_SPAN} 1`);
    assert.equal(ids(parsed('b3', `a9b8c7d6e5f40312-${B3_SPAN}-0`)), `b3 0000000000000000a9b8c7d6e5f40312 ${B3_SPAN} 0`);
  });

  it('B3 multi header (X-B3-TraceId, X-B3-SpanId, X-B3-Sampled)', () => {
    assert.equal(ids(parsed(...XB3)), `x-b3 ${XB3_TRACE} ${XB3_SPAN} 1`);
    assert.equal(ids(parsed('x-b3-traceid', XB3_TRACE, 'x-b3-spanid', XB3_SPAN, 'x-b3-sampled', '0')), `x-b3 ${XB3_TRACE} ${XB3_SPAN} 0`);
  });

  it('Jaeger uber-trace-id, plain and percent-encoded', () => {
    assert.equal(ids(parsed(...UBER)), `uber-trace-id ${UBER_TRACE} ${UBER_SPAN} 1`);
    assert.equal(ids(parsed('uber-trace-id', `a9b8c7d6e5f40312%3A${UBER_SPAN}%3A0%3A0`)), `uber-trace-id ${UBER_TRACE} ${UBER_SPAN} 0`);
  });

  it('header names match in any case', () => {
    for (const name of ['traceparent', 'TRACEPARENT', 'tRaCePaReNt']) {
      assert.equal(ids(parsed(name, `00-${TRACE}-${SPAN}-01`)), `traceparent ${TRACE} ${SPAN} 1`, name);
    }
    assert.equal(ids(parsed('X-b3-TRACEID', XB3_TRACE, 'x-B3-spanId', XB3_SPAN)), `x-b3 ${XB3_TRACE} ${XB3_SPAN} 0`);
  });

  it('no trace headers: nothing', () => {
    assert.equal(extractTraceContext(parsed('x-other', 'traceparent')), undefined, 'a value that looks like a name is not a name');
    assert.equal(extractTraceContext([]), undefined);
  });
});

describe('extractTraceContext: precedence traceparent > b3 > X-B3-* > uber-trace-id', () => {
  it('takes the highest-ranked format present, whatever the header order', () => {
    assert.equal(ids(parsed(...UBER, ...XB3, ...B3, ...TRACEPARENT))?.split(' ')[0], 'traceparent');
    assert.equal(ids(parsed(...UBER, ...XB3, ...B3))?.split(' ')[0], 'b3');
    assert.equal(ids(parsed(...UBER, ...XB3))?.split(' ')[0], 'x-b3');
    assert.equal(ids(parsed(...UBER))?.split(' ')[0], 'uber-trace-id');
  });

  it('skips a format whose value is invalid and uses the next one', () => {
    assert.equal(ids(parsed('traceparent', 'garbage', ...B3))?.split(' ')[0], 'b3');
    assert.equal(ids(parsed('traceparent', 'garbage', 'b3', 'not-b3', ...XB3))?.split(' ')[0], 'x-b3', 'an invalid b3 does not hide X-B3-*');
    assert.equal(ids(parsed('b3', 'zz', 'x-b3-traceid', 'nope', 'x-b3-spanid', XB3_SPAN, ...UBER))?.split(' ')[0], 'uber-trace-id');
  });
});

describe('extractTraceContext: bad values are ignored, never thrown', () => {
  const bad: [string, string][] = [
    ['traceparent', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7'],
    ['traceparent', `00-${'0'.repeat(32)}-${SPAN}-01`],
    ['traceparent', `00-${TRACE}-${'0'.repeat(16)}-01`],
    ['traceparent', `ff-${TRACE}-${SPAN}-01`],
    ['traceparent', `00-${TRACE}-${SPAN}-01-extra`],
    ['traceparent', `01-${TRACE}-${SPAN}-01-${'x'.repeat(MAX_TRACE_HEADER_BYTES)}`],
    ['b3', `${'0'.repeat(32)}-${B3_SPAN}-1`],
    ['b3', '-'.repeat(5000)],
    ['x-b3-traceid', 'xyz'],
    ['uber-trace-id', '%zz%'],
    ['uber-trace-id', `zzzz:${UBER_SPAN}:0:1`],
    ['uber-trace-id', `${'f'.repeat(40)}:${UBER_SPAN}:0:1`],
    ['uber-trace-id', `0:0:0:1`],
    ['uber-trace-id', 'a:b:c'],
  ];
  for (const [name, value] of bad) {
    it(`${name}: ${value.slice(0, 48)}${value.length > 48 ? '…' : ''}`, () => {
      assert.equal(extractTraceContext([name, value]), undefined);
    });
  }

  it('an oversized but otherwise valid future-version traceparent is ignored in favour of b3', () => {
    const long = `cc-${TRACE}-${SPAN}-01-${'a'.repeat(MAX_TRACE_HEADER_BYTES)}`;
    assert.equal(extractTraceContext(['traceparent', `cc-${TRACE}-${SPAN}-01-short`])?.format, 'traceparent', 'a short one is valid');
    assert.equal(ids(['traceparent', long, 'b3', `${B3_TRACE}-${B3_SPAN}-1`])?.split(' ')[0], 'b3');
  });

  it('uses the first of repeated traceparent headers', () => {
    const sc = extractSpanContext(['traceparent', `00-${'1'.repeat(32)}-${'2'.repeat(16)}-00`, 'traceparent', `00-${TRACE}-${SPAN}-01`]);
    assert.equal(sc?.traceId, '1'.repeat(32));
    assert.equal(sc?.traceFlags, 0);
  });
});
