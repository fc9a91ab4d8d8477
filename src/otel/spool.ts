/**
 * The on-disk spool (--spool-dir): records the in-memory buffer could not
 * hold, and at shutdown everything not yet delivered, as segment files that
 * survive restarts. A segment is one export batch; it is deleted once the
 * collector accepted it, so after a clean restart nothing is sent twice.
 *
 * A segment larger than one request may hold (written by a version without
 * --max-request-bytes: up to a whole buffer, 16 MB and more) is sent in
 * several requests; how many of its records were delivered is kept in its
 * name (consume()), so a restart resumes after them.
 */
import {
  closeSync,
  constants as fsConstants,
  existsSync,
  fstatSync,
  fsyncSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readFileSync,
  realpathSync,
  renameSync,
  statSync,
  unlinkSync,
  writeSync,
  type Stats,
} from 'node:fs';
import * as path from 'node:path';
import { resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import protobuf from 'protobufjs';
import { UsageError } from '../common/errors';
import type { EncodedLogRecord } from './otlp-logs';

/**
 * seg-<sequence>-<record count>[-<records delivered>].otlp; .jsonl is the
 * format before 2 (records as JSON): such a segment is counted as
 * unreadable, not skipped.
 */
const SEGMENT = /^seg-(\d{16})-(\d+)(?:-(\d+))?\.(otlp|jsonl)$/;
const FORMAT_VERSION = 2;

interface Segment {
  seq: number;
  /** Records in the file. */
  records: number;
  /** Of those, the first `sent` were delivered already (consume()). */
  sent: number;
  bytes: number;
  file: string;
}

function segmentName(seq: number, records: number, sent: number): string {
  return `seg-${String(seq).padStart(16, '0')}-${records}${sent ? `-${sent}` : ''}.otlp`;
}

interface SegmentHeader {
  v: number;
  resources: Record<string, unknown>[];
  scopes: EncodedLogRecord['scope'][];
}

/**
 * Records as a segment: a JSON header line (resources, scopes), then per
 * record its resource and scope index and its encoded LogRecord message,
 * each as a protobuf varint, the message length-prefixed.
 */
export function encodeSegment(records: readonly EncodedLogRecord[]): Buffer {
  const resources = new Map<Resource, number>();
  const scopes = new Map<EncodedLogRecord['scope'], number>();
  const header: SegmentHeader = { v: FORMAT_VERSION, resources: [], scopes: [] };
  const body = protobuf.Writer.create();
  for (const r of records) {
    let ri = resources.get(r.resource);
    if (ri === undefined) {
      ri = header.resources.push({ ...r.resource.attributes }) - 1;
      resources.set(r.resource, ri);
    }
    let si = scopes.get(r.scope);
    if (si === undefined) {
      const s = r.scope;
      si = header.scopes.push({ name: s.name, ...(s.version ? { version: s.version } : {}), ...(s.schemaUrl ? { schemaUrl: s.schemaUrl } : {}) }) - 1;
      scopes.set(r.scope, si);
    }
    body.uint32(ri).uint32(si).bytes(r.bytes);
  }
  return Buffer.concat([Buffer.from(`${JSON.stringify(header)}\n`), body.finish()]);
}

/** A segment back to records; records of one resource share one Resource object (and scope). */
export function decodeSegment(data: Buffer): EncodedLogRecord[] {
  const nl = data.indexOf(0x0a);
  if (nl < 0) throw new Error('no segment header');
  const header = JSON.parse(data.toString('utf8', 0, nl)) as SegmentHeader;
  if (header.v !== FORMAT_VERSION) throw new Error(`unknown spool format ${String(header.v)}`);
  const resources = header.resources.map((a) => resourceFromAttributes(a as Parameters<typeof resourceFromAttributes>[0]));
  const body = protobuf.Reader.create(data.subarray(nl + 1)); // throws when cut short
  const out: EncodedLogRecord[] = [];
  while (body.pos < body.len) {
    const resource = resources[body.uint32()];
    const scope = header.scopes[body.uint32()];
    const bytes = body.bytes() as Buffer;
    if (!resource || !scope) throw new Error('segment corrupt');
    out.push({ bytes, resource, scope });
  }
  return out;
}

export interface SpoolStats {
  segments: number;
  records: number;
  bytes: number;
  /** Segment files skipped, never sent, because they failed the ownership and mode checks. */
  rejected: number;
}

/**
 * Why a file or directory of the spool cannot be trusted, or undefined: as
 * OpenSSH's StrictModes, it must be owned by this user (a directory may
 * also be root's) and writable by nobody else. A directory writable by
 * others is accepted with the sticky bit (/tmp), where nobody can rename or
 * delete what another user owns.
 */
function untrusted(st: Stats, kind: 'file' | 'dir' | 'parent'): string | undefined {
  const euid = process.geteuid?.() ?? 0;
  if (kind === 'file' && !st.isFile()) return 'is not a regular file';
  if (kind !== 'file' && !st.isDirectory()) return 'is not a directory';
  if (st.uid !== euid && (kind === 'file' || st.uid !== 0)) return `is owned by uid ${st.uid}, not by this user (uid ${euid})`;
  const mode = (st.mode & 0o7777).toString(8).padStart(4, '0');
  if (st.mode & 0o022 && !(kind === 'parent' && st.mode & 0o1000)) return `is writable by group or others (mode ${mode})`;
  return undefined;
}

/** A spool file that failed the checks of untrusted(). */
class UntrustedSpoolFile extends Error {}

/** A segment's bytes, read only if the file is this user's own, not writable by others, and not a symlink. */
function readOwnFile(file: string): Buffer {
  let fd: number;
  try {
    fd = openSync(file, fsConstants.O_RDONLY | fsConstants.O_NOFOLLOW | fsConstants.O_NONBLOCK);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ELOOP') throw new UntrustedSpoolFile('is a symbolic link');
    throw err;
  }
  try {
    const why = untrusted(fstatSync(fd), 'file');
    if (why) throw new UntrustedSpoolFile(why);
    return readFileSync(fd);
  } finally {
    closeSync(fd);
  }
}

/**
 * Refuses a spool directory others could plant records in: the directory
 * (after symlinks), each directory above it, and each segment file in it
 * (see untrusted()). Throws UsageError naming the path and the fix.
 */
export function checkSpoolDir(dir: string): void {
  const refuse = (what: string, why: string, risk: string, fix: string): never => {
    throw new UsageError(`--spool-dir ${dir}: ${what} ${why}; ${risk}: ${fix}, or choose another --spool-dir`);
  };
  const dirFix = (p: string, why: string) => (why.startsWith('is owned') ? `chown ${process.geteuid?.() ?? 0} ${p}` : `chmod go-w ${p}`);
  try {
    const real = realpathSync(dir);
    const dirWhy = untrusted(statSync(real), 'dir');
    if (dirWhy) refuse(real, dirWhy, 'another user could plant records in it', dirFix(real, dirWhy));
    for (let p = path.dirname(real); ; p = path.dirname(p)) {
      const why = untrusted(statSync(p), 'parent');
      if (why) refuse(`its parent ${p}`, why, 'another user could swap the spool for their own', dirFix(p, why));
      if (p === path.dirname(p)) break;
    }
    for (const name of readdirSync(real)) {
      if (!SEGMENT.test(name)) continue;
      const file = path.join(real, name);
      const why = untrusted(lstatSync(file), 'file');
      if (why) refuse(`spool file ${file}`, why, 'headertap sends only files it wrote itself', `remove it unless you know where it came from`);
    }
  } catch (err) {
    if (err instanceof UsageError) throw err;
    throw new UsageError(`--spool-dir ${dir} cannot be checked (${(err as Error).message}); choose a directory this user owns`);
  }
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
    } catch (err) {
      throw new UsageError(`--spool-dir ${dir} is not a writable directory (${(err as Error).message}); create it, e.g. mkdir -p ${dir}, or choose another`);
    }
    checkSpoolDir(dir);
    try {
      for (const name of readdirSync(dir).sort()) {
        if (name.endsWith('.tmp')) {
          unlinkSync(path.join(dir, name)); // an interrupted write
          continue;
        }
        const m = SEGMENT.exec(name);
        if (!m) continue;
        const file = path.join(dir, name);
        const records = Number(m[2]);
        const seg = { seq: Number(m[1]), records, sent: Math.min(records, Number(m[3] ?? 0)), bytes: statSync(file).size, file };
        this._segments.push(seg);
        this._bytes += seg.bytes;
        this._records += seg.records - seg.sent;
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
    return { segments: this._segments.length, records: this._records, bytes: this._bytes, rejected: this.rejected };
  }

  get empty(): boolean {
    return this._segments.length === 0;
  }

  /**
   * Writes records as one segment (atomically: temp file, fsync, rename).
   * Returns how many older records were deleted to stay within the bound.
   */
  append(records: readonly EncodedLogRecord[]): number {
    if (records.length === 0) return 0;
    const data = encodeSegment(records);
    const bytes = data.length;
    let dropped = 0;
    while (this._segments.length > 0 && this._bytes + bytes > this._maxBytes) dropped += this._removeOldest();
    if (bytes > this._maxBytes) return dropped + records.length; // one batch larger than the whole spool
    const seq = this._nextSeq++;
    const file = path.join(this.dir, segmentName(seq, records.length, 0));
    const tmp = `${file}.tmp`;
    const fd = openSync(tmp, 'w', 0o600);
    try {
      writeSync(fd, data);
      fsyncSync(fd);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
    this._segments.push({ seq, records: records.length, sent: 0, bytes, file });
    this._bytes += bytes;
    this._records += records.length;
    return dropped;
  }

  /**
   * The oldest segment's records not delivered yet, without removing them
   * (see consume() and remove()).
   */
  peek(): { id: number; records: EncodedLogRecord[] } | undefined {
    while (this._segments.length > 0) {
      const seg = this._segments[0];
      try {
        const records = decodeSegment(readOwnFile(seg.file));
        if (records.length !== seg.records) throw new Error('record count differs from the name');
        return { id: seg.seq, records: records.slice(seg.sent) };
      } catch (err) {
        if (err instanceof UntrustedSpoolFile) {
          // Not ours (swapped in since start): never sent, left in place for the operator to see.
          this._segments.shift();
          this._bytes -= seg.bytes;
          this._records -= seg.records - seg.sent;
          this.rejected++;
          continue;
        }
        this.corrupt += seg.records - seg.sent;
        this._removeOldest(); // unreadable (disk trouble, edited by hand): cannot be sent
      }
    }
    return undefined;
  }

  /**
   * The next `n` records of a segment were delivered (or given up): the
   * segment is deleted once all were, else its name records how many, by an
   * atomic rename, so that a restart resumes after them.
   */
  consume(id: number, n: number): void {
    const seg = this._segments.find((s) => s.seq === id);
    if (!seg) return;
    if (seg.sent + n >= seg.records) {
      this.remove(id);
      return;
    }
    const file = path.join(this.dir, segmentName(seg.seq, seg.records, seg.sent + n));
    try {
      renameSync(seg.file, file);
      seg.file = file;
    } catch {
      // The file stays under its old name: a restart would send these records again.
    }
    seg.sent += n;
    this._records -= n;
  }

  /** Records in segments that could not be read back. */
  corrupt = 0;

  /** Segment files that failed the ownership and mode checks when their turn came: skipped, never sent. */
  rejected = 0;

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
    return seg.records - seg.sent;
  }

  private _forget(seg: Segment): void {
    this._bytes -= seg.bytes;
    this._records -= seg.records - seg.sent;
    try {
      unlinkSync(seg.file);
    } catch {
      // already gone
    }
  }
}
