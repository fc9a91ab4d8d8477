/**
 * headertap's OTLP logs encoder against the SDK's ProtobufLogsSerializer:
 * the same records must give the same bytes, on a real capture and on
 * random values of every attribute type, and the result must decode.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { ROOT_CONTEXT, trace } from '@opentelemetry/api';
import type { LogAttributes } from '@opentelemetry/api-logs';
import { ProtobufLogsSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { LoggerProvider, type LogRecordProcessor, type ReadableLogRecord, type SdkLogRecord } from '@opentelemetry/sdk-logs';
import { PACKAGE_ROOT } from '../../src/common/paths';
import { ConnectionTracker } from '../../src/http';
import { DEFAULT_CAPTURE_HEADERS, DEFAULT_REDACT_HEADERS, ExchangeMapper, HeaderRules } from '../../src/otel';
import { AttachAttributes } from '../../src/otel/attach-attributes';
import { OtlpLogsEncoder, otlpLogsSerializer } from '../../src/otel/otlp-logs';
import { emitExchangeRecord } from '../../src/otel/pipeline';
import { decodeLogsRequest } from '../../src/receiver/decode';
import { MonotonicClock, eventsOf, readRecording } from '../../src/source';
import { ProcessInfoCache } from '../../src/workload';

const FIXTURE = path.join(PACKAGE_ROOT, 'test', 'fixtures', 'curl-nginx.htrec');

class Collect implements LogRecordProcessor {
  readonly records: ReadableLogRecord[] = [];
  onEmit(r: SdkLogRecord): void {
    this.records.push(r);
  }
  forceFlush(): Promise<void> {
    return Promise.resolve();
  }
  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

function sdkBytes(records: ReadableLogRecord[]): Buffer {
  return Buffer.from(ProtobufLogsSerializer.serializeRequest(records)!);
}

/** Records of the recorded capture, made the way the pipeline makes them, under two resources. */
function capturedRecords(): ReadableLogRecord[] {
  const collect = new Collect();
  const attach = new AttachAttributes(2048);
  const limits = { attributeCountLimit: 2048 };
  const loggers = ['curl', 'nginx'].map((name) =>
    new LoggerProvider({ resource: resourceFromAttributes({ 'service.name': name, 'process.pid': 42 }), processors: [attach, collect], logRecordLimits: limits }).getLogger(
      'headertap',
      '1.2.3',
    ),
  );
  const clock = new MonotonicClock();
  const processes = new ProcessInfoCache();
  const mapper = new ExchangeMapper({
    rules: new HeaderRules({ capture: DEFAULT_CAPTURE_HEADERS, redact: DEFAULT_REDACT_HEADERS }),
    toHrTime: (ns) => clock.toHrTime(ns),
    processInfo: (pid, comm) => processes.get(pid, comm),
  });
  const tracker = new ConnectionTracker({
    maxHeaderBytes: 16384,
    onExchange: (ex) => {
      const rec = mapper.map(ex);
      emitExchangeRecord(loggers[ex.role === 'client' ? 0 : 1], attach, rec);
    },
  });
  for (const ev of eventsOf(readRecording(FIXTURE))) {
    if (ev.kind === 'data') tracker.onData(ev);
    else if (ev.kind === 'close') tracker.onClose(ev);
    else if (ev.kind === 'ready') clock.setOffset(ev.realtimeOffsetNs);
  }
  tracker.flush();
  return collect.records;
}

/** A deterministic PRNG (mulberry32), so a failure reproduces. */
function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

const ALPHABETS = [
  'abcdefghijklmnopqrstuvwxyz-_./:=;, ',
  '\u00e9\u00ff\u00fe\u0080\u07ff', // Latin-1 and two-byte UTF-8
  '\u20ac\u4e2d\uffff', // three-byte
  '\ud83d\ude00', // a surrogate pair
  '\ud800\udfff', // taken one unit at a time: lone surrogates
  '\u0000\u007f\n',
];

function randomString(rnd: () => number): string {
  const lengths = [0, 1, 5, 41, 42, 43, 127, 128, 300];
  const n = rnd() < 0.01 ? 20000 : lengths[Math.floor(rnd() * lengths.length)];
  const alphabet = ALPHABETS[Math.floor(rnd() * ALPHABETS.length)] + (rnd() < 0.5 ? ALPHABETS[0] : '');
  let s = '';
  for (let i = 0; i < n; i++) s += alphabet[Math.floor(rnd() * alphabet.length)];
  return s;
}

function randomValue(rnd: () => number, depth = 0): unknown {
  const numbers = [0, 1, -1, 127, 128, 2 ** 31, 2 ** 32 - 1, 2 ** 32, 2 ** 53 + 2, -(2 ** 40), 2 ** 63, -(2 ** 63), 1.5, -0.25, NaN, Infinity, -Infinity];
  switch (Math.floor(rnd() * (depth < 2 ? 8 : 5))) {
    case 0:
    case 1:
      return randomString(rnd);
    case 2:
      return numbers[Math.floor(rnd() * numbers.length)];
    case 3:
      return rnd() < 0.5;
    case 4:
      return [null, undefined, new Uint8Array(Array.from({ length: Math.floor(rnd() * 300) }, (_, i) => i & 0xff))][Math.floor(rnd() * 3)];
    case 5:
      return Array.from({ length: Math.floor(rnd() * 6) }, () => randomValue(rnd, depth + 1));
    case 6:
      return Array.from({ length: Math.floor(rnd() * 20) }, () => randomString(rnd));
    default: {
      const o: Record<string, unknown> = {};
      for (let i = Math.floor(rnd() * 4); i > 0; i--) o[randomString(rnd).slice(0, 20)] = randomValue(rnd, depth + 1);
      return o;
    }
  }
}

/** Records with random attributes, bodies, times and span contexts under several resources and scopes. */
function randomRecords(seed: number, count: number): ReadableLogRecord[] {
  const rnd = prng(seed);
  const collect = new Collect();
  const attach = new AttachAttributes(4096);
  const loggers = [0, 1, 2].flatMap((i) => {
    const provider = new LoggerProvider({
      resource: resourceFromAttributes({ 'service.name': `svc-${i}`, 'k\u00e9y': randomString(rnd), n: i }),
      processors: [attach, collect],
      logRecordLimits: { attributeCountLimit: 4096 },
    });
    return [provider.getLogger('headertap', '1.0.0'), provider.getLogger(`scope-${i}`), provider.getLogger('s', undefined, { schemaUrl: 'https://opentelemetry.io/schemas/1.37.0' })];
  });
  for (let i = 0; i < count; i++) {
    const attributes: Record<string, unknown> = {};
    for (let j = Math.floor(rnd() * 40); j > 0; j--) attributes[rnd() < 0.7 ? `http.request.header.x-${j}` : randomString(rnd)] = randomValue(rnd);
    const ctx =
      rnd() < 0.6
        ? trace.setSpanContext(ROOT_CONTEXT, {
            traceId: Array.from({ length: 32 }, () => '0123456789abcdefABCDEF'[Math.floor(rnd() * 22)]).join(''),
            spanId: Array.from({ length: 16 }, () => '0123456789abcdef'[Math.floor(rnd() * 16)]).join(''),
            traceFlags: Math.floor(rnd() * 3),
          })
        : undefined;
    const logger = loggers[Math.floor(rnd() * loggers.length)];
    attach.emitWith(attributes as LogAttributes, undefined, () =>
      logger.emit({
        ...(rnd() < 0.8 ? { eventName: 'headertap.http.exchange' } : {}),
        timestamp: [Math.floor(rnd() * 4_000_000_000), Math.floor(rnd() * 1e9)],
        ...(rnd() < 0.8 ? { severityNumber: Math.floor(rnd() * 24), severityText: randomString(rnd).slice(0, 10) } : {}),
        ...(rnd() < 0.8 ? { body: randomValue(rnd) as string } : {}),
        ...(ctx ? { context: ctx } : {}),
      }),
    );
  }
  return collect.records;
}

describe('OTLP logs encoder (byte-identical to the SDK serializer)', () => {
  it('encodes the recorded capture exactly as the SDK does, under two resources', () => {
    const records = capturedRecords();
    assert.equal(records.length, 14);
    const encoder = new OtlpLogsEncoder();
    const mine = encoder.encode(records);
    assert.ok(mine.equals(sdkBytes(records)));
    // The caches (keys, resources, scopes) give the same bytes the second time.
    assert.ok(encoder.encode(records).equals(mine));
    const decoded = decodeLogsRequest(mine);
    assert.equal(decoded.length, 14);
    assert.deepEqual([...new Set(decoded.map((r) => r.resource['service.name']))].sort(), ['curl', 'nginx']);
    assert.ok(decoded.some((r) => r.attributes['url.path'] === '/api/orders'));
  });

  it('encodes random values of every type exactly as the SDK does', () => {
    const encoder = new OtlpLogsEncoder();
    for (let seed = 1; seed <= 20; seed++) {
      const records = randomRecords(seed, 40);
      const mine = encoder.encode(records);
      const theirs = sdkBytes(records);
      assert.ok(mine.equals(theirs), `seed ${seed}: ${mine.length} bytes vs the SDK's ${theirs.length}`);
    }
  });

  it('batches of every size: empty, one record, and one whose lengths need four-byte varints', () => {
    const encoder = new OtlpLogsEncoder();
    assert.equal(encoder.encode([]).length, 0);
    assert.deepEqual(encoder.encode([]), sdkBytes([]));
    const one = randomRecords(7, 1);
    assert.ok(encoder.encode(one).equals(sdkBytes(one)));
    const collect = new Collect();
    const logger = new LoggerProvider({ processors: [collect] }).getLogger('big');
    logger.emit({ body: 'x'.repeat(3 << 20), attributes: { a: 'b' } }); // a 3 MB body: lengths above 2^21
    const big = encoder.encode(collect.records);
    assert.ok(big.equals(sdkBytes(collect.records)));
  });

  it('serves as the exporters\' serializer: requests from the encoder, responses decoded by the SDK', () => {
    const serializer = otlpLogsSerializer();
    const records = randomRecords(3, 20);
    const encoder = new OtlpLogsEncoder(); // as the delivery buffer encodes each record when it is emitted
    assert.ok(Buffer.from(serializer.serializeRequest(records.map((r) => encoder.encodeRecord(r)))!).equals(sdkBytes(records)));
    assert.deepEqual(serializer.deserializeResponse(new Uint8Array(0)), ProtobufLogsSerializer.deserializeResponse(new Uint8Array(0)));
  });
});
