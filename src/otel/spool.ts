/**
 * The on-disk spool (--spool-dir): records the in-memory buffer could not
 * hold, and at shutdown everything not yet delivered, as segment files that
 * survive restarts. A segment is one export batch; it is deleted once the
 * collector accepted it, so after a clean restart nothing is sent twice.
 */
import { closeSync, existsSync, fsyncSync, mkdirSync, openSync, readdirSync, readFileSync, renameSync, statSync, unlinkSync, writeSync } from 'node:fs';
import * as path from 'node:path';
import type { HrTime } from '@opentelemetry/api';
import { resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import type { ReadableLogRecord } from '@opentelemetry/sdk-logs';
import { UsageError } from '../common/errors';

/** seg-<sequence>-<record count>.jsonl */
const SEGMENT = /^seg-(\d{16})-(\d+)\.jsonl$/;
const FORMAT_VERSION = 1;

interface Segment {
  seq: number;
  records: number;
  bytes: number;
  file: string;
}

interface SegmentHeader {
  v: number;
  resources: Record<string, unknown>[];
  scopes: { name: string; version?: string; schemaUrl?: string }[];
}

/** One record on disk: [resource index, scope index, fields]. */
type Line = [number, number, StoredRecord];

interface StoredRecord {
  t: HrTime;
  o: HrTime;
  sn?: number;
  st?: string;
  b?: unknown;
  e?: string;
  a: Record<string, unknown>;
  d?: number;
  sc?: { traceId: string; spanId: string; traceFlags: number };
}

function toStored(r: ReadableLogRecord): StoredRecord {
  return {
    t: r.hrTime,
    o: r.hrTimeObserved,
    ...(r.severityNumber !== undefined ? { sn: r.severityNumber } : {}),
    ...(r.severityText !== undefined ? { st: r.severityText } : {}),
    ...(r.body !== undefined ? { b: r.body } : {}),
    ...(r.eventName !== undefined ? { e: r.eventName } : {}),
    a: r.attributes,
    ...(r.droppedAttributesCount ? { d: r.droppedAttributesCount } : {}),
    ...(r.spanContext
      ? { sc: { traceId: r.spanContext.traceId, spanId: r.spanContext.spanId, traceFlags: r.spanContext.traceFlags } }
      : {}),
  };
}

function fromStored(s: StoredRecord, resource: Resource, scope: SegmentHeader['scopes'][number]): ReadableLogRecord {
  return {
    hrTime: s.t,
    hrTimeObserved: s.o,
    ...(s.sn !== undefined ? { severityNumber: s.sn } : {}),
    ...(s.st !== undefined ? { severityText: s.st } : {}),
    ...(s.b !== undefined ? { body: s.b as ReadableLogRecord['body'] } : {}),
    ...(s.e !== undefined ? { eventName: s.e } : {}),
    attributes: s.a as ReadableLogRecord['attributes'],
    droppedAttributesCount: s.d ?? 0,
    ...(s.sc ? { spanContext: { ...s.sc, isRemote: true } } : {}),
    resource,
    instrumentationScope: scope,
  };
}

/** Records as segment text: a header line (resources, scopes), then one line per record. */
export function encodeSegment(records: readonly ReadableLogRecord[]): string {
  const resources = new Map<Resource, number>();
  const scopes = new Map<string, number>();
  const header: SegmentHeader = { v: FORMAT_VERSION, resources: [], scopes: [] };
  const lines: string[] = [];
  for (const r of records) {
    let ri = resources.get(r.resource);
    if (ri === undefined) {
      ri = header.resources.push({ ...r.resource.attributes }) - 1;
      resources.set(r.resource, ri);
    }
    const s = r.instrumentationScope;
    const scopeKey = `${s.name}\0${s.version ?? ''}\0${s.schemaUrl ?? ''}`;
    let si = scopes.get(scopeKey);
    if (si === undefined) {
      si = header.scopes.push({ name: s.name, ...(s.version ? { version: s.version } : {}), ...(s.schemaUrl ? { schemaUrl: s.schemaUrl } : {}) }) - 1;
      scopes.set(scopeKey, si);
    }
    lines.push(JSON.stringify([ri, si, toStored(r)] satisfies Line));
  }
  return `${JSON.stringify(header)}\n${lines.join('\n')}\n`;
}

/** Segment text back to records; records of one resource share one Resource object. */
export function decodeSegment(text: string): ReadableLogRecord[] {
  const lines = text.split('\n').filter((l) => l.length > 0);
  const header = JSON.parse(lines[0]) as SegmentHeader;
  if (header.v !== FORMAT_VERSION) throw new Error(`unknown spool format ${String(header.v)}`);
  const resources = header.resources.map((a) => resourceFromAttributes(a as Parameters<typeof resourceFromAttributes>[0]));
  return lines.slice(1).map((l) => {
    const [ri, si, s] = JSON.parse(l) as Line;
    return fromStored(s, resources[ri], header.scopes[si]);
  });
}

export interface SpoolStats {
  segments: number;
  records: number;
  bytes: number;
}

/**
 * A directory of segments, oldest first, bounded by `maxBytes`: adding past
 * the bound deletes the oldest segments (their records are reported dropped).
 */
export class Spool {
  private readonly _segments: Segment[] = [];
  private _nextSeq = 1;
  private _bytes = 0;
  private _records = 0;

  constructor(
    readonly dir: string,
    private readonly _maxBytes: number,
  ) {
    try {
      // Not recursive: Node's recursive mkdir can spin forever under /proc; the parent must exist.
      if (!existsSync(dir)) mkdirSync(dir, { mode: 0o700 });
      for (const name of readdirSync(dir).sort()) {
        if (name.endsWith('.tmp')) {
          unlinkSync(path.join(dir, name)); // an interrupted write
          continue;
        }
        const m = SEGMENT.exec(name);
        if (!m) continue;
        const file = path.join(dir, name);
        const seg = { seq: Number(m[1]), records: Number(m[2]), bytes: statSync(file).size, file };
        this._segments.push(seg);
        this._bytes += seg.bytes;
        this._records += seg.records;
        this._nextSeq = Math.max(this._nextSeq, seg.seq + 1);
      }
      const probe = path.join(dir, `.probe-${process.pid}.tmp`);
      closeSync(openSync(probe, 'w', 0o600));
      unlinkSync(probe);
    } catch (err) {
      throw new UsageError(`--spool-dir ${dir} is not a writable directory (${(err as Error).message}); create it, e.g. mkdir -p ${dir}, or choose another`);
    }
  }

  get stats(): SpoolStats {
    return { segments: this._segments.length, records: this._records, bytes: this._bytes };
  }

  get empty(): boolean {
    return this._segments.length === 0;
  }

  /**
   * Writes records as one segment (atomically: temp file, fsync, rename).
   * Returns how many older records were deleted to stay within the bound.
   */
  append(records: readonly ReadableLogRecord[]): number {
    if (records.length === 0) return 0;
    const text = encodeSegment(records);
    const bytes = Buffer.byteLength(text);
    let dropped = 0;
    while (this._segments.length > 0 && this._bytes + bytes > this._maxBytes) dropped += this._removeOldest();
    if (bytes > this._maxBytes) return dropped + records.length; // one batch larger than the whole spool
    const seq = this._nextSeq++;
    const file = path.join(this.dir, `seg-${String(seq).padStart(16, '0')}-${records.length}.jsonl`);
    const tmp = `${file}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, text);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
    this._segments.push({ seq, records: records.length, bytes, file });
    this._bytes += bytes;
    this._records += records.length;
    return dropped;
  }

  /** The oldest segment's records, without removing it (see remove()). */
  peek(): { id: number; records: ReadableLogRecord[] } | undefined {
    while (this._segments.length > 0) {
      const seg = this._segments[0];
      try {
        return { id: seg.seq, records: decodeSegment(readFileSync(seg.file, 'utf8')) };
      } catch {
        this._removeOldest(); // unreadable (disk trouble, edited by hand): cannot be sent
        this.corrupt += seg.records;
      }
    }
    return undefined;
  }

  /** Records in segments that could not be read back. */
  corrupt = 0;

  /** Deletes a segment once its records were delivered (or rejected). */
  remove(id: number): void {
    const i = this._segments.findIndex((s) => s.seq === id);
    if (i < 0) return;
    const [seg] = this._segments.splice(i, 1);
    this._forget(seg);
  }

  private _removeOldest(): number {
    const seg = this._segments.shift()!;
    this._forget(seg);
    return seg.records;
  }

  private _forget(seg: Segment): void {
    this._bytes -= seg.bytes;
    this._records -= seg.records;
    try {
      unlinkSync(seg.file);
    } catch {
      // already gone
    }
  }
}
