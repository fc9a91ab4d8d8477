/**
 * The OTLP logs request (ExportLogsServiceRequest, protobuf) written in one
 * pass, byte for byte what the SDK's ProtobufLogsSerializer writes for the
 * same record.
 *
 * headertap's records (src/otel/record.ts) are encoded one by one as they are
 * made (encodeRecord), straight from the record, into shared buffers; the
 * delivery buffer holds those bytes, and a request is put together from them
 * (encodeRequest), grouped by resource and scope as the SDK groups them. The
 * SDK's serializer walks every batch twice (a size estimate, then the write)
 * and copies every string a character at a time in JavaScript, twice over;
 * this writer makes one pass, writes long or non-ASCII strings with Node's
 * native UTF-8 encoder, and keeps the encoded form of attribute keys,
 * resources and instrumentation scopes (docs/performance.md).
 *
 * The output is the SDK's: same field order, same minimal varints, same
 * handling of every attribute value type (test/unit/otlp-logs.test.ts holds
 * the two to the same bytes on recorded traffic and on random values). The
 * response is still decoded by the SDK.
 */
import type { ExportResult, InstrumentationScope } from '@opentelemetry/core';
import { ProtobufLogsSerializer, type IExporterMetricsHelper, type IExportLogsServiceResponse, type ISerializer } from '@opentelemetry/otlp-transformer';
import type { Resource } from '@opentelemetry/resources';
import type { LogRecordData } from './record';

/** An instrumentation scope as the SDK's may carry it (attributes are optional). */
type Scope = InstrumentationScope & { attributes?: Record<string, unknown>; droppedAttributesCount?: number };

/** Attribute keys whose encoded form is kept; past this, keys are encoded each time. */
const MAX_CACHED_KEYS = 8192;
/** Keys longer than this are not worth a cache entry. */
const MAX_CACHED_KEY_LENGTH = 256;
/** Records are written into buffers of this size (see OtlpLogsEncoder._r)... */
const RECORD_ARENA = 1 << 20;
/** ...and one is started when less than this is left (a larger record still fits: the writer grows). */
const RECORD_HEADROOM = 64 << 10;
/** Strings up to this many UTF-16 units fit a one-byte length even as 3 bytes each. */
const SHORT_STRING = 42;
/** The int64 range in which a number is written as int_value (as the SDK does). */
const MIN_INT64 = -(2 ** 63);
const MAX_INT64 = 2 ** 63;

function varintSize(v: number): number {
  if (v < 0x80) return 1;
  if (v < 0x4000) return 2;
  if (v < 0x200000) return 3;
  if (v < 0x10000000) return 4;
  return 5;
}

/*
 * The attribute fast paths (OtlpLogsEncoder._keyValue) size a KeyValue before
 * writing it, so every length is written once, in place, with no byte moved
 * afterwards, and room is checked once per attribute. They write into a
 * buffer the caller made room in, at `p`, and return the position after.
 */

/** A varint below 2^32, unchecked. */
function putVarint(buf: Buffer, p: number, value: number): number {
  let v = value >>> 0;
  while (v > 0x7f) {
    buf[p++] = (v & 0x7f) | 0x80;
    v >>>= 7;
  }
  buf[p++] = v;
  return p;
}

/** Bytes, unchecked; a short fragment byte by byte (TypedArray.set costs more than that below a few dozen bytes). */
function putBytes(buf: Buffer, p: number, b: Uint8Array): number {
  buf.set(b, p);
  return p + b.length;
}

/** A string's UTF-8 byte count when it is ASCII, else -1 - its UTF-8 byte count. */
function utf8Size(s: string): number {
  const n = s.length;
  if (n > 48) {
    // Native, and exact: only a string of ASCII characters has as many bytes as UTF-16 units.
    const bytes = Buffer.byteLength(s, 'utf8');
    return bytes === n ? n : -1 - bytes;
  }
  for (let i = 0; i < n; i++) if (s.charCodeAt(i) >= 0x80) return -1 - Buffer.byteLength(s, 'utf8');
  return n;
}

/** A string's bytes (no length), `size` from utf8Size, unchecked. */
function putString(buf: Buffer, p: number, s: string, size: number): number {
  if (size < 0) return p + buf.write(s, p, -1 - size, 'utf8');
  if (size > 48) return p + buf.write(s, p, size, 'latin1'); // ASCII: the same bytes, written natively
  for (let i = 0; i < size; i++) buf[p++] = s.charCodeAt(i);
  return p;
}

/**
 * Starts KeyValue{key (the encoded field `k`), value: an AnyValue of `av`
 * bytes} under the field whose tag byte is `tag`: makes room for all of it
 * and writes everything before the AnyValue's own fields; returns where they
 * go (the writer's position is left for the caller to set).
 */
function keyValueHead(w: Writer, tag: number, k: Buffer, av: number): number {
  const kv = k.length + 1 + varintSize(av) + av;
  w.ensure(1 + 5 + kv);
  const buf = w.buf;
  let p = w.pos;
  buf[p++] = tag;
  p = putVarint(buf, p, kv);
  p = putBytes(buf, p, k);
  buf[p++] = 0x12; // value = 2
  return putVarint(buf, p, av);
}

/** utf8Size of the items of the string array being written, reused. */
let itemSizes = new Int32Array(64);

/** A growable buffer with protobuf primitives. */
class Writer {
  buf: Buffer;
  pos = 0;

  constructor(size: number) {
    this.buf = Buffer.allocUnsafe(size);
  }

  ensure(n: number): void {
    const need = this.pos + n;
    if (need <= this.buf.length) return;
    let size = this.buf.length * 2;
    while (size < need) size *= 2;
    const next = Buffer.allocUnsafe(size);
    this.buf.copy(next, 0, 0, this.pos);
    this.buf = next;
  }

  /** One byte: a tag of a field below 16, or a small value. */
  byte(b: number): void {
    this.ensure(1);
    this.buf[this.pos++] = b;
  }

  /** A varint as the SDK's ProtobufWriter.writeVarint writes it (negative numbers as 64-bit two's complement). */
  varint(value: number): void {
    this.ensure(10);
    const buf = this.buf;
    if (value >= 0 && value <= 0xffffffff) {
      let v = value >>> 0;
      while (v > 0x7f) {
        buf[this.pos++] = (v & 0x7f) | 0x80;
        v >>>= 7;
      }
      buf[this.pos++] = v;
      return;
    }
    let low: number;
    let high: number;
    if (value >= 0) {
      low = value >>> 0;
      high = (value / 0x100000000) >>> 0;
    } else {
      const abs = Math.abs(value);
      low = ~(abs >>> 0) >>> 0;
      high = ~((abs / 0x100000000) >>> 0) >>> 0;
      low = (low + 1) >>> 0;
      if (low === 0) high = (high + 1) >>> 0;
    }
    while (high > 0 || low > 0x7f) {
      buf[this.pos++] = (low & 0x7f) | 0x80;
      low = ((low >>> 7) | (high << 25)) >>> 0;
      high >>>= 7;
    }
    buf[this.pos++] = low & 0x7f;
  }

  fixed32(v: number): void {
    this.ensure(4);
    this.buf.writeUInt32LE(v >>> 0, this.pos);
    this.pos += 4;
  }

  /** An HrTime [seconds, nanoseconds] as fixed64 nanoseconds, exactly as the SDK splits it. */
  hrTime(t: readonly [number, number]): void {
    const seconds = t[0];
    const nanos = t[1];
    const lowerNs = (seconds & 0xffff) * 1e9;
    const upperNs = ((seconds / 0x10000) >>> 0) * 1e9;
    const low = (lowerNs >>> 0) + (((upperNs & 0xffff) * 0x10000) >>> 0) + nanos;
    const high = Math.floor(lowerNs / 0x100000000) + ((upperNs / 0x10000) >>> 0) + Math.floor(low / 0x100000000);
    this.ensure(8);
    this.buf.writeUInt32LE(low >>> 0, this.pos);
    this.buf.writeUInt32LE(high >>> 0, this.pos + 4);
    this.pos += 8;
  }

  double(v: number): void {
    this.ensure(8);
    this.buf.writeDoubleLE(v, this.pos);
    this.pos += 8;
  }

  /** A length-delimited string (UTF-8). */
  string(s: string): void {
    const n = s.length;
    if (n <= SHORT_STRING) {
      this.ensure(1 + n * 3);
      const buf = this.buf;
      const at = this.pos;
      let p = at + 1;
      for (let i = 0; i < n; i++) {
        const c = s.charCodeAt(i);
        if (c >= 0x80) {
          p = -1;
          break;
        }
        buf[p++] = c;
      }
      if (p < 0) p = at + 1 + buf.write(s, at + 1, 'utf8');
      buf[at] = p - at - 1;
      this.pos = p;
      return;
    }
    const len = Buffer.byteLength(s, 'utf8');
    this.varint(len);
    this.ensure(len);
    this.buf.write(s, this.pos, len, 'utf8');
    this.pos += len;
  }

  /** Length-delimited bytes. */
  bytes(b: Uint8Array): void {
    this.varint(b.length);
    this.raw(b);
  }

  /** Bytes as they are (an encoded fragment). */
  raw(b: Uint8Array): void {
    this.ensure(b.length);
    this.pos = putBytes(this.buf, this.pos, b);
  }

  /** Hex (a trace or span id) as length-delimited bytes, as the SDK's hexToBinary reads it. */
  hex(h: string): void {
    const n = Math.floor(h.length / 2);
    this.varint(n);
    this.ensure(n);
    const buf = this.buf;
    for (let i = 0; i < n; i++) buf[this.pos++] = (hexDigit(h.charCodeAt(2 * i)) << 4) | hexDigit(h.charCodeAt(2 * i + 1));
  }

  /** Starts a length-delimited message: one byte kept for its length. */
  start(): number {
    this.ensure(1);
    return this.pos++;
  }

  /** Writes the length of the message started at `at`, moving its content when the length needs more than a byte. */
  finish(at: number): void {
    const len = this.pos - at - 1;
    if (len < 0x80) {
      this.buf[at] = len;
      return;
    }
    const extra = varintSize(len) - 1;
    this.ensure(extra);
    const buf = this.buf;
    buf.copyWithin(at + 1 + extra, at + 1, this.pos);
    this.pos += extra;
    let v = len;
    let p = at;
    while (v > 0x7f) {
      buf[p++] = (v & 0x7f) | 0x80;
      v >>>= 7;
    }
    buf[p] = v;
  }

  /**
   * Makes sure `n` bytes are free, starting a new buffer when they are not:
   * what was written before stays where it is, in the old one (cut() views).
   */
  headroom(n: number): void {
    if (this.buf.length - this.pos >= n) return;
    this.buf = Buffer.allocUnsafe(Math.max(this.buf.length, n));
    this.pos = 0;
  }

  /** What was written since `from`, as a view: the writer goes on after it and never writes there again. */
  cut(from: number): Buffer {
    return this.buf.subarray(from, this.pos);
  }

  /** A copy of what was written; the writer is then reset for the next request. */
  take(): Buffer {
    const out = Buffer.allocUnsafe(this.pos);
    this.buf.copy(out, 0, 0, this.pos);
    this.pos = 0;
    return out;
  }
}

function hexDigit(c: number): number {
  if (c >= 48 && c <= 57) return c - 48;
  if (c >= 97 && c <= 102) return c - 87;
  return c - 55;
}

/**
 * One log record already encoded (its LogRecord message, without tag or
 * length) and what an export groups it by. The delivery buffer and the spool
 * hold these: their size is the size on the wire, and the record objects die
 * young instead of waiting for the batch.
 */
export interface EncodedLogRecord {
  bytes: Buffer;
  resource: Resource;
  scope: Scope;
}

/** Encodes log records and ExportLogsServiceRequest messages; holds the caches, so keep one. */
export class OtlpLogsEncoder {
  /** Requests and cached fragments, rewritten from the start each time. */
  private readonly _w = new Writer(1 << 20);
  /**
   * Records, one after the other in shared 1 MiB buffers (RECORD_ARENA):
   * a record's bytes are a view, not an allocation and a copy of their own.
   * A buffer is freed once the last record in it is sent or dropped; the
   * delivery buffer is first in, first out, so they go in order.
   */
  private readonly _r = new Writer(RECORD_ARENA);
  /** Attribute key → its encoded KeyValue.key field. */
  private readonly _keys = new Map<string, Buffer>();
  private readonly _resources = new WeakMap<Resource, Buffer>();
  private readonly _scopes = new WeakMap<Scope, Buffer>();

  /** The LogRecord message of one record, to be sent under `resource` and `scope`. */
  encodeRecord(r: LogRecordData<unknown>, resource: Resource, scope: Scope): EncodedLogRecord {
    const w = this._r;
    w.headroom(RECORD_HEADROOM);
    const from = w.pos;
    this._record(w, r);
    return { bytes: w.cut(from), resource, scope };
  }

  /** The export request for records encoded by encodeRecord(). */
  encodeRequest(records: readonly EncodedLogRecord[]): Buffer {
    // Grouped by resource, then scope, both by identity and in first-seen order, as the SDK does.
    const byResource = new Map<Resource, Map<Scope, EncodedLogRecord[]>>();
    for (const r of records) {
      let scopes = byResource.get(r.resource);
      if (!scopes) byResource.set(r.resource, (scopes = new Map()));
      let list = scopes.get(r.scope);
      if (!list) scopes.set(r.scope, (list = []));
      list.push(r);
    }
    const w = this._w;
    for (const [resource, scopes] of byResource) {
      w.byte(0x0a); // resource_logs = 1
      const rl = w.start();
      w.raw(this._resource(resource));
      for (const [scope, list] of scopes) {
        w.byte(0x12); // scope_logs = 2
        const sl = w.start();
        w.raw(this._scope(scope));
        for (const r of list) {
          w.byte(0x12); // log_records = 2
          w.bytes(r.bytes);
        }
        if (scope.schemaUrl) {
          w.byte(0x1a); // schema_url = 3
          w.string(scope.schemaUrl);
        }
        w.finish(sl);
      }
      if (resource.schemaUrl) {
        w.byte(0x1a); // schema_url = 3
        w.string(resource.schemaUrl);
      }
      w.finish(rl);
    }
    return w.take();
  }

  /**
   * What a request spends on a group of records besides the records
   * themselves, at most: a ResourceLogs with one ScopeLogs (the resource's
   * and the scope's encoded fields, schema URLs, both messages' tags and
   * lengths). With requestFieldBytes() per record, delivery bounds a request's
   * size before it exists (src/otel/delivery.ts).
   */
  groupBytes(resource: Resource, scope: Scope): number {
    const schemas = [resource.schemaUrl, scope.schemaUrl].reduce((n, url) => n + (url ? 1 + 5 + Buffer.byteLength(url) : 0), 0);
    return this._resource(resource).length + this._scope(scope).length + schemas + 2 * (1 + 5);
  }

  /** Writes a LogRecord message's fields (no tag, no length). */
  private _record(w: Writer, r: LogRecordData<unknown>): void {
    w.byte(0x09); // time_unix_nano = 1, fixed64
    w.hrTime(r.timestamp);
    if (r.severityNumber !== undefined && r.severityNumber !== 0) {
      w.byte(0x10); // severity_number = 2
      w.varint(r.severityNumber);
    }
    if (r.severityText) {
      w.byte(0x1a); // severity_text = 3
      w.string(r.severityText);
    }
    if (r.body !== undefined) {
      w.byte(0x2a); // body = 5
      const b = w.start();
      this._anyValue(w, r.body);
      w.finish(b);
    }
    this._attributeList(w, r.attributes); // attributes = 6
    w.byte(0x38); // dropped_attributes_count = 7
    w.varint(r.droppedAttributesCount);
    const sc = r.spanContext;
    if (sc?.traceFlags) {
      w.byte(0x45); // flags = 8, fixed32
      w.fixed32(sc.traceFlags);
    }
    if (sc?.traceId) {
      w.byte(0x4a); // trace_id = 9
      w.hex(sc.traceId);
    }
    if (sc?.spanId) {
      w.byte(0x52); // span_id = 10
      w.hex(sc.spanId);
    }
    w.byte(0x59); // observed_time_unix_nano = 11, fixed64
    w.hrTime(r.observedTimestamp);
    if (r.eventName) {
      w.byte(0x62); // event_name = 12
      w.string(r.eventName);
    }
  }

  /** A record's attributes (key, value, … in a list) as its repeated `attributes = 6` field. */
  private _attributeList(w: Writer, list: readonly unknown[]): void {
    for (let i = 0; i + 1 < list.length; i += 2) this._keyValue(w, 0x32, list[i] as string, list[i + 1]);
  }

  /** Repeated KeyValue under the field whose tag byte is `tag`, from an object (resources, scopes, kvlist values). */
  private _attributes(w: Writer, tag: number, attrs: Record<string, unknown>): void {
    for (const key in attrs) {
      if (Object.prototype.hasOwnProperty.call(attrs, key)) this._keyValue(w, tag, key, attrs[key]);
    }
  }

  /**
   * One KeyValue under the field whose tag byte is `tag`. Strings, string
   * arrays (headers) and integers up to 2^32 - 1, nearly all of headertap's
   * values, take a fast path; the rest goes through _anyValue.
   */
  private _keyValue(w: Writer, tag: number, key: string, value: unknown): void {
    const k = this._keys.get(key) ?? this._keyField(key);
    if (typeof value === 'string') this._stringKeyValue(w, tag, k, value);
    else if (typeof value === 'number' && value >= 0 && value <= 0xffffffff && Number.isInteger(value)) this._intKeyValue(w, tag, k, value);
    else if (!Array.isArray(value) || !this._stringArrayKeyValue(w, tag, k, value)) {
      w.byte(tag);
      const kv = w.start();
      w.raw(k);
      w.byte(0x12); // value = 2
      const v = w.start();
      this._anyValue(w, value);
      w.finish(v);
      w.finish(kv);
    }
  }

  /** KeyValue{key, value: AnyValue{string_value}}. */
  private _stringKeyValue(w: Writer, tag: number, k: Buffer, s: string): void {
    const size = utf8Size(s);
    const n = size < 0 ? -1 - size : size;
    let p = keyValueHead(w, tag, k, 1 + varintSize(n) + n);
    const buf = w.buf;
    buf[p++] = 0x0a; // string_value = 1
    p = putVarint(buf, p, n);
    w.pos = putString(buf, p, s, size);
  }

  /** KeyValue{key, value: AnyValue{int_value}} for 0 <= v < 2^32. */
  private _intKeyValue(w: Writer, tag: number, k: Buffer, v: number): void {
    let p = keyValueHead(w, tag, k, 1 + varintSize(v));
    const buf = w.buf;
    buf[p++] = 0x18; // int_value = 3
    w.pos = putVarint(buf, p, v);
  }

  /** KeyValue{key, value: AnyValue{array_value: strings}}; false (nothing written) when an item is not a string. */
  private _stringArrayKeyValue(w: Writer, tag: number, k: Buffer, items: readonly unknown[]): boolean {
    const count = items.length;
    if (itemSizes.length < count) itemSizes = new Int32Array(count * 2);
    const sizes = itemSizes;
    let array = 0;
    for (let i = 0; i < count; i++) {
      const s = items[i];
      if (typeof s !== 'string') return false;
      const size = utf8Size(s);
      sizes[i] = size;
      const n = size < 0 ? -1 - size : size;
      const item = 1 + varintSize(n) + n;
      array += 1 + varintSize(item) + item;
    }
    let p = keyValueHead(w, tag, k, 1 + varintSize(array) + array);
    const buf = w.buf;
    buf[p++] = 0x2a; // array_value = 5
    p = putVarint(buf, p, array);
    for (let i = 0; i < count; i++) {
      const size = sizes[i];
      const n = size < 0 ? -1 - size : size;
      buf[p++] = 0x0a; // values = 1
      p = putVarint(buf, p, 1 + varintSize(n) + n);
      buf[p++] = 0x0a; // string_value = 1
      p = putVarint(buf, p, n);
      p = putString(buf, p, items[i] as string, size);
    }
    w.pos = p;
    return true;
  }

  /** The encoded `key = 1` field of a KeyValue, kept for the next time unless the cache is full or the key long. */
  private _keyField(key: string): Buffer {
    const bytes = this._encodeFragment((w) => {
      w.byte(0x0a); // key = 1
      w.string(key);
    });
    if (this._keys.size < MAX_CACHED_KEYS && key.length <= MAX_CACHED_KEY_LENGTH) this._keys.set(key, bytes);
    return bytes;
  }

  /** AnyValue's fields for a value, in the SDK's order of checks; nothing for other types. */
  private _anyValue(w: Writer, value: unknown): void {
    const t = typeof value;
    if (t === 'string') {
      w.byte(0x0a); // string_value = 1
      w.string(value as string);
    } else if (t === 'boolean') {
      w.byte(0x10); // bool_value = 2
      w.byte(value ? 1 : 0);
    } else if (t === 'number') {
      const n = value as number;
      if (Number.isInteger(n) && n >= MIN_INT64 && n < MAX_INT64) {
        w.byte(0x18); // int_value = 3
        w.varint(n);
      } else {
        w.byte(0x21); // double_value = 4
        w.double(n);
      }
    } else if (value instanceof Uint8Array) {
      w.byte(0x3a); // bytes_value = 7
      w.bytes(value);
    } else if (Array.isArray(value)) {
      w.byte(0x2a); // array_value = 5
      const a = w.start();
      for (const item of value) {
        w.byte(0x0a); // values = 1
        const i = w.start();
        this._anyValue(w, item);
        w.finish(i);
      }
      w.finish(a);
    } else if (t === 'object' && value !== null) {
      w.byte(0x32); // kvlist_value = 6
      const l = w.start();
      this._attributes(w, 0x0a, value as Record<string, unknown>); // values = 1
      w.finish(l);
    }
  }

  /** The `resource = 1` field of ResourceLogs, encoded once per Resource. */
  private _resource(resource: Resource): Buffer {
    let bytes = this._resources.get(resource);
    if (!bytes) {
      bytes = this._encodeFragment((w) => {
        w.byte(0x0a); // resource = 1
        const at = w.start();
        if (resource.attributes) this._attributes(w, 0x0a, resource.attributes); // attributes = 1
        w.byte(0x10); // dropped_attributes_count = 2
        w.byte(0);
        w.finish(at);
      });
      this._resources.set(resource, bytes);
    }
    return bytes;
  }

  /** The `scope = 1` field of ScopeLogs, encoded once per scope. */
  private _scope(scope: Scope): Buffer {
    let bytes = this._scopes.get(scope);
    if (!bytes) {
      bytes = this._encodeFragment((w) => {
        w.byte(0x0a); // scope = 1
        const at = w.start();
        w.byte(0x0a); // name = 1
        w.string(scope.name);
        if (scope.version) {
          w.byte(0x12); // version = 2
          w.string(scope.version);
        }
        if (scope.attributes) this._attributes(w, 0x1a, scope.attributes); // attributes = 3
        if (scope.droppedAttributesCount) {
          w.byte(0x20); // dropped_attributes_count = 4
          w.varint(scope.droppedAttributesCount);
        }
        w.finish(at);
      });
      this._scopes.set(scope, bytes);
    }
    return bytes;
  }

  /** Runs `write` against the main writer's end and cuts what it wrote off as a fragment. */
  private _encodeFragment(write: (w: Writer) => void): Buffer {
    const w = this._w;
    const from = w.pos;
    write(w);
    const bytes = Buffer.from(w.buf.subarray(from, w.pos));
    w.pos = from;
    return bytes;
  }
}

/** Bytes one encoded record takes in a request: its tag, its length, itself. */
export function requestFieldBytes(record: EncodedLogRecord): number {
  return 1 + varintSize(record.bytes.length) + record.bytes.length;
}

/** headertap's logs serializer for the OTLP exporters: its own request encoder, the SDK's response decoder. */
export function otlpLogsSerializer(encoder = new OtlpLogsEncoder()): ISerializer<EncodedLogRecord[], IExportLogsServiceResponse> {
  return {
    serializeRequest: (records) => encoder.encodeRequest(records),
    deserializeResponse: (data) => ProtobufLogsSerializer.deserializeResponse(data),
  };
}

/** What the OTLP exporters count (nothing is counted unless a meter provider is given). */
export const ENCODED_LOGS_METRICS_HELPER: IExporterMetricsHelper<EncodedLogRecord[]> = { name: 'log', countItems: (records) => records.length };

/** An OTLP logs exporter of encoded records (src/otel/pipeline.ts createExporter). */
export interface EncodedLogExporter {
  /** Sends one request; `timeoutMs`, when given, replaces the exporter's own timeout for it. */
  export(records: EncodedLogRecord[], done: (result: ExportResult) => void, timeoutMs?: number): void;
  shutdown(): Promise<void>;
}
