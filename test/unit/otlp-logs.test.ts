/**
 * headertap's OTLP logs encoder against the SDK's ProtobufLogsSerializer:
 * the same record must give the same bytes, and the result must decode.
 * Both ways round: headertap's records (a real capture, mapped) given to the
 * SDK through its public Logger.emit, and records the SDK made from random
 * values of every attribute type read back into headertap's record shape.
 */
import assert from 'node:assert/strict';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { ROOT_CONTEXT, trace } from '@opentelemetry/api';
import type { AnyValue, AnyValueMap, Logger } from '@opentelemetry/api-logs';
import { ProtobufLogsSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import { LoggerProvider, type LogRecordProcessor, type ReadableLogRecord, type SdkLogRecord } from '@opentelemetry/sdk-logs';
import { PACKAGE_ROOT } from '../../src/common/paths';
import { ConnectionTracker } from '../../src/http';
import { DEFAULT_CAPTURE_HEADERS, DEFAULT_REDACT_HEADERS, ExchangeMapper, HeaderRules } from '../../src/otel';
import { attributesObject, type ExchangeRecord, type LogRecordData } from '../../src/otel/record';
import { OtlpLogsEncoder, otlpLogsSerializer } from '../../src/otel/otlp-logs';
import { decodeLogsRequest } from '../../src/receiver/decode';
import { MonotonicClock, readRecording } from '../../src/source';
import { eventsOf } from '../../src/source/recording';
import { prng } from '../helpers/prng';

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

/** The SDK's record in headertap's shape (attributes in the SDK's order). */
function fromSdk(r: ReadableLogRecord): LogRecordData {
  const attributes: (string | AnyValue)[] = [];
  for (const [k, v] of Object.entries(r.attributes)) attributes.push(k, v);
  return {
    timestamp: r.hrTime,
    observedTimestamp: r.hrTimeObserved,
    ...(r.severityNumber !== undefined ? { severityNumber: r.severityNumber } : {}),
    ...(r.severityText !== undefined ? { severityText: r.severityText } : {}),
    ...(r.eventName !== undefined ? { eventName: r.eventName } : {}),
    ...(r.body !== undefined ? { body: r.body } : {}),
    attributes,
    droppedAttributesCount: r.droppedAttributesCount,
    ...(r.spanContext ? { spanContext: r.spanContext } : {}),
  };
}

/** headertap's encoding of SDK records: each one read back into headertap's shape, under the SDK's resource and scope objects. */
function ourBytes(encoder: OtlpLogsEncoder, records: ReadableLogRecord[]): Buffer {
  return encoder.encodeRequest(records.map((r) => encoder.encodeRecord(fromSdk(r), r.resource, r.instrumentationScope)));
}

/**
 * headertap's records given to the SDK through its public API, one
 * LoggerProvider per resource: what an SDK would send for them. The SDK's
 * attribute limit is the resource's largest record's attribute count, and a
 * record with droppedAttributesCount n is emitted with n attributes more.
 */
function viaSdk(records: ExchangeRecord[]): ReadableLogRecord[] {
  const collect = new Collect();
  const limits = new Map<Resource, number>();
  for (const r of records) limits.set(r.resource!, Math.max(limits.get(r.resource!) ?? 0, r.attributes.length / 2));
  const loggers = new Map<Resource, Logger>();
  for (const r of records) {
    let logger = loggers.get(r.resource!);
    if (!logger) {
      const provider = new LoggerProvider({ resource: r.resource, processors: [collect], logRecordLimits: { attributeCountLimit: limits.get(r.resource!) } });
      loggers.set(r.resource!, (logger = provider.getLogger('headertap', '1.2.3')));
    }
    const attributes: AnyValueMap = attributesObject(r.attributes);
    for (let i = 0; i < r.droppedAttributesCount; i++) attributes[`dropped.${i}`] = i;
    logger.emit({
      eventName: r.eventName,
      timestamp: r.timestamp,
      observedTimestamp: r.observedTimestamp,
      severityNumber: r.severityNumber,
      severityText: r.severityText,
      body: r.body,
      attributes,
      ...(r.spanContext ? { context: trace.setSpanContext(ROOT_CONTEXT, r.spanContext) } : {}),
    });
  }
  return collect.records;
}

/** Records of the recorded capture, mapped as the agent maps them (client and server under their own resources). */
function capturedRecords(): ExchangeRecord[] {
  const out: ExchangeRecord[] = [];
  const clock = new MonotonicClock();
  const mapper = new ExchangeMapper({
    rules: new HeaderRules({ capture: DEFAULT_CAPTURE_HEADERS, redact: DEFAULT_REDACT_HEADERS }),
    toHrTime: (ns) => clock.toHrTime(ns),
    // What the recording says about each process (this host's /proc has other processes under those pids now).
    processInfo: (pid, comm) => ({ pid, executableName: comm }),
  });
  const tracker = new ConnectionTracker({ maxHeaderBytes: 16384, onExchange: (ex) => out.push(mapper.map(ex)) });
  for (const ev of eventsOf(readRecording(FIXTURE))) {
    if (ev.kind === 'data') tracker.onData(ev);
    else if (ev.kind === 'close') tracker.onClose(ev);
    else if (ev.kind === 'ready') clock.setOffset(ev.realtimeOffsetNs);
  }
  tracker.flush();
  return out;
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

/** Records the SDK made from random attributes, bodies, times and span contexts, under several resources and scopes. */
function randomRecords(seed: number, count: number): ReadableLogRecord[] {
  const rnd = prng(seed);
  const collect = new Collect();
  const loggers = [0, 1, 2].flatMap((i) => {
    const provider = new LoggerProvider({
      resource: resourceFromAttributes({ 'service.name': `svc-${i}`, 'k\u00e9y': randomString(rnd), n: i }),
      processors: [collect],
      logRecordLimits: { attributeCountLimit: 4096, attributeValueLengthLimit: Infinity },
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
    logger.emit({
      ...(rnd() < 0.8 ? { eventName: 'headertap.http.exchange' } : {}),
      timestamp: [Math.floor(rnd() * 4_000_000_000), Math.floor(rnd() * 1e9)],
      ...(rnd() < 0.8 ? { severityNumber: Math.floor(rnd() * 24), severityText: randomString(rnd).slice(0, 10) } : {}),
      ...(rnd() < 0.8 ? { body: randomValue(rnd) as string } : {}),
      attributes: attributes as AnyValueMap,
      ...(ctx ? { context: ctx } : {}),
    });
  }
  return collect.records;
}

describe('OTLP logs encoder (byte-identical to the SDK serializer)', () => {
  it('encodes the recorded capture exactly as the SDK does, under the resource of each process', () => {
    const records = capturedRecords();
    assert.equal(records.length, 14);
    const sdk = viaSdk(records);
    const encoder = new OtlpLogsEncoder();
    const scope = sdk[0].instrumentationScope;
    const mine = encoder.encodeRequest(records.map((r) => encoder.encodeRecord(r, r.resource!, scope)));
    assert.ok(mine.equals(sdkBytes(sdk)));
    // The caches (keys, resources, scopes) give the same bytes the second time.
    assert.ok(encoder.encodeRequest(records.map((r) => encoder.encodeRecord(r, r.resource!, scope))).equals(mine));
    const decoded = decodeLogsRequest(mine);
    assert.equal(decoded.length, 14);
    assert.deepEqual([...new Set(decoded.map((r) => r.resource['process.executable.name']))].sort(), ['curl', 'nginx', 'python3']);
    assert.ok(decoded.some((r) => r.attributes['url.path'] === '/api/orders'));
  });

  it('writes dropped_attributes_count as the SDK does', () => {
    const [rec] = capturedRecords();
    const limited = { ...rec, droppedAttributesCount: 300 };
    const sdk = viaSdk([limited]);
    assert.equal(sdk[0].droppedAttributesCount, 300);
    const encoder = new OtlpLogsEncoder();
    assert.ok(encoder.encodeRequest([encoder.encodeRecord(limited, rec.resource!, sdk[0].instrumentationScope)]).equals(sdkBytes(sdk)));
    assert.equal(decodeLogsRequest(sdkBytes(sdk))[0].dropped_attributes_count, 300);
  });

  it('encodes random values of every type exactly as the SDK does', () => {
    const encoder = new OtlpLogsEncoder();
    for (let seed = 1; seed <= 20; seed++) {
      const records = randomRecords(seed, 40);
      const mine = ourBytes(encoder, records);
      const theirs = sdkBytes(records);
      assert.ok(mine.equals(theirs), `seed ${seed}: ${mine.length} bytes vs the SDK's ${theirs.length}`);
    }
  });

  it('batches of every size: empty, one record, and one whose lengths need four-byte varints', () => {
    const encoder = new OtlpLogsEncoder();
    assert.equal(encoder.encodeRequest([]).length, 0);
    assert.deepEqual(encoder.encodeRequest([]), sdkBytes([]));
    const one = randomRecords(7, 1);
    assert.ok(ourBytes(encoder, one).equals(sdkBytes(one)));
    const collect = new Collect();
    const logger = new LoggerProvider({ processors: [collect] }).getLogger('big');
    logger.emit({ body: 'x'.repeat(3 << 20), attributes: { a: 'b' } }); // a 3 MB body: lengths above 2^21
    assert.ok(ourBytes(encoder, collect.records).equals(sdkBytes(collect.records)));
  });

  it('serves as the exporters\' serializer: requests from the encoder, responses decoded by the SDK', () => {
    const serializer = otlpLogsSerializer();
    const records = randomRecords(3, 20);
    const encoder = new OtlpLogsEncoder(); // as the pipeline encodes each record when it is emitted
    const encoded = records.map((r) => encoder.encodeRecord(fromSdk(r), r.resource, r.instrumentationScope));
    assert.ok(Buffer.from(serializer.serializeRequest(encoded)!).equals(sdkBytes(records)));
    assert.deepEqual(serializer.deserializeResponse(new Uint8Array(0)), ProtobufLogsSerializer.deserializeResponse(new Uint8Array(0)));
  });
});
