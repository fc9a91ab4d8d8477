import { decodeHeaderText } from '../parse';
import { huffmanDecode } from './huffman';

/**
 * An HPACK decoder (RFC 7541) for an observer that may not know the state.
 *
 * A process's decoder sees every header block from the connection's start;
 * headertap may not: it can attach mid-connection, and bytes can go missing
 * (lost events, the per-syscall copy limit). So the dynamic table here is a
 * list of the entries inserted since tracking began, newest first, plus a flag
 * saying older, unseen entries may follow them. References into the known
 * part resolve exactly (insertions go to the front, evictions take from the
 * back, so the newest entries keep their indices); a reference past it is
 * "unknown": the field is left out and counted, never guessed.
 *
 * Eviction keeps at least as many entries as the peer's table: a reference to
 * an entry the real table still holds then always resolves to that entry. An
 * entry whose name could not be resolved is still inserted (its value and the
 * minimum size known) so later indices stay aligned.
 *
 * Why not an npm HPACK package: they throw on an index they cannot resolve,
 * which is this decoder's normal day after a mid-connection start.
 */

/** RFC 7541 Appendix A. */
// prettier-ignore
export const STATIC_TABLE: ReadonlyArray<readonly [string, string]> = [
  [':authority', ''], [':method', 'GET'], [':method', 'POST'], [':path', '/'], [':path', '/index.html'],
  [':scheme', 'http'], [':scheme', 'https'], [':status', '200'], [':status', '204'], [':status', '206'],
  [':status', '304'], [':status', '400'], [':status', '404'], [':status', '500'], ['accept-charset', ''],
  ['accept-encoding', 'gzip, deflate'], ['accept-language', ''], ['accept-ranges', ''], ['accept', ''],
  ['access-control-allow-origin', ''], ['age', ''], ['allow', ''], ['authorization', ''], ['cache-control', ''],
  ['content-disposition', ''], ['content-encoding', ''], ['content-language', ''], ['content-length', ''],
  ['content-location', ''], ['content-range', ''], ['content-type', ''], ['cookie', ''], ['date', ''], ['etag', ''],
  ['expect', ''], ['expires', ''], ['from', ''], ['host', ''], ['if-match', ''], ['if-modified-since', ''],
  ['if-none-match', ''], ['if-range', ''], ['if-unmodified-since', ''], ['last-modified', ''], ['link', ''],
  ['location', ''], ['max-forwards', ''], ['proxy-authenticate', ''], ['proxy-authorization', ''], ['range', ''],
  ['referer', ''], ['refresh', ''], ['retry-after', ''], ['server', ''], ['set-cookie', ''],
  ['strict-transport-security', ''], ['transfer-encoding', ''], ['user-agent', ''], ['vary', ''], ['via', ''],
  ['www-authenticate', ''],
];

/** Per-entry overhead in the table's size (RFC 7541 §4.1). */
const ENTRY_OVERHEAD = 32;
/** SETTINGS_HEADER_TABLE_SIZE's initial value (RFC 9113 §6.5.2). */
export const DEFAULT_TABLE_SIZE = 4096;
/** Table bytes kept per direction whatever the peers agree: memory stays bounded. */
export const MAX_TRACKED_TABLE_SIZE = 65536;

interface Entry {
  /** undefined: the entry exists but its name was an unknown reference. */
  name?: string;
  value: string;
  /** Its size in octets (§4.1), or a lower bound when the name is unknown. */
  size: number;
}

export interface DecodedBlock {
  /** Resolved fields in wire order, [name0, value0, …]. */
  fields: string[];
  /** Fields that were there but could not be resolved (unknown dynamic-table entries). */
  unknownFields: number;
  /** Fields whose value holds NUL, CR or LF, which HTTP forbids: kept as sent, counted. */
  invalidValues: number;
  /**
   * Decoding stopped: 'incomplete' when the block ended inside a field,
   * 'invalid' when it is not valid HPACK or not a valid HTTP/2 field. The
   * fields before the stop are kept; the table is then unknown.
   */
  error?: 'invalid' | 'incomplete';
}

export interface DecodeOptions {
  /**
   * The block is known to be cut short (bytes never captured): decode what is
   * there, then forget the table, since insertions may have been lost.
   */
  partial?: boolean;
}

/** A string literal: its text and its length in octets (table sizes count octets). */
interface Literal {
  text: string;
  octets: number;
}

/** RFC 9113 §8.2.1: lower-case token characters, or a pseudo-header (':' then the same). */
const FIELD_NAME = /^:?[!#$%&'*+\-.^_`|~0-9a-z]+$/;
/**
 * RFC 9113 §8.2.1: a value never holds NUL, CR or LF. A peer receiving one
 * treats the stream as malformed, but the bytes were sent: the field is kept
 * (escaped wherever it is shown) and counted, so whoever sent it is on record.
 */
const BAD_VALUE = /[\0\r\n]/;

export class HpackDecoder {
  private _entries: Entry[] = [];
  /** Sum of the entries' sizes. */
  private _size = 0;
  /** Entries older than the known ones may exist (not every insertion was seen). */
  private _tailUnknown: boolean;
  /** The table's maximum size as the encoder last set it, when known. */
  private _maxSize: number | undefined;
  /** The decoding peer's SETTINGS_HEADER_TABLE_SIZE: the encoder's maximum never exceeds it. */
  private _settingsLimit: number | undefined;

  /**
   * `fromStart`: this direction is seen from its first header block: the
   * table is empty, its maximum `maxSize` (HTTP/2: 4096 until a size update).
   */
  constructor(fromStart: boolean, maxSize = DEFAULT_TABLE_SIZE) {
    this._tailUnknown = !fromStart;
    this._maxSize = fromStart ? maxSize : undefined;
    // Until the decoding peer's SETTINGS say otherwise, the encoder may not exceed the protocol default.
    if (fromStart) this._settingsLimit = Math.max(maxSize, DEFAULT_TABLE_SIZE);
  }

  /** Whether every entry of the peer's table is known. */
  get synced(): boolean {
    return !this._tailUnknown;
  }

  /** Entries currently tracked. */
  get length(): number {
    return this._entries.length;
  }

  /** Table size as tracked (§4.1): exact when synced and every name was resolved. */
  get size(): number {
    return this._size;
  }

  /** The peer decoding these blocks announced SETTINGS_HEADER_TABLE_SIZE. */
  setSettingsLimit(octets: number): void {
    this._settingsLimit = octets;
    if (this._maxSize === undefined) this._evict();
  }

  /** Insertions were missed: nothing is known about the table any more. */
  lose(): void {
    this._entries = [];
    this._size = 0;
    this._tailUnknown = true;
    this._maxSize = undefined;
  }

  /** Decodes one complete header block (HEADERS or PUSH_PROMISE plus CONTINUATION fragments). */
  decode(block: Buffer, opts: DecodeOptions = {}): DecodedBlock {
    const out: DecodedBlock = { fields: [], unknownFields: 0, invalidValues: 0 };
    const r = new Reader(block);
    let atStart = true;
    while (r.pos < block.length) {
      const b = block[r.pos];
      let ok: boolean;
      if (b & 0x80) ok = this._indexed(r, out);
      else if (b & 0x40) ok = this._literal(r, out, 6, true);
      else if (b & 0x20) ok = atStart && this._sizeUpdate(r); // §4.2: only at a block's start
      else ok = this._literal(r, out, 4, false); // without indexing (0000) or never indexed (0001)
      if (!ok) {
        out.error = r.short ? 'incomplete' : 'invalid';
        break;
      }
      atStart = (b & 0xe0) === 0x20;
    }
    // A block cut short or invalid may have carried insertions that were not applied.
    if (out.error || opts.partial) this.lose();
    return out;
  }

  private _indexed(r: Reader, out: DecodedBlock): boolean {
    const index = r.integer(7);
    if (index === undefined || index === 0) return false;
    const entry = this._lookup(index);
    if (entry === 'invalid') return false;
    if (entry?.name === undefined) {
      out.unknownFields++;
      return true;
    }
    return this._emit(out, entry.name, entry.value);
  }

  private _literal(r: Reader, out: DecodedBlock, prefixBits: number, indexing: boolean): boolean {
    const nameIndex = r.integer(prefixBits);
    if (nameIndex === undefined) return false;
    let name: Literal | undefined;
    if (nameIndex === 0) {
      name = r.string();
      if (name === undefined) return false;
    } else {
      const entry = this._lookup(nameIndex);
      if (entry === 'invalid') return false;
      if (entry?.name !== undefined) name = { text: entry.name, octets: Buffer.byteLength(entry.name, 'latin1') };
    }
    const value = r.string();
    if (value === undefined) return false;
    if (name === undefined) out.unknownFields++;
    else if (!this._emit(out, name.text, value.text)) return false;
    if (indexing) this._insert(name, value);
    return true;
  }

  private _sizeUpdate(r: Reader): boolean {
    const size = r.integer(5);
    if (size === undefined) return false;
    this._maxSize = size;
    this._evict();
    return true;
  }

  private _emit(out: DecodedBlock, name: string, value: string): boolean {
    if (!FIELD_NAME.test(name)) return false;
    if (BAD_VALUE.test(value)) out.invalidValues++;
    out.fields.push(name, value);
    return true;
  }

  /** The entry at an index; undefined when it exists but is unknown here; 'invalid' when it cannot exist. */
  private _lookup(index: number): Entry | undefined | 'invalid' {
    if (index <= STATIC_TABLE.length) {
      const [name, value] = STATIC_TABLE[index - 1];
      return { name, value, size: 0 };
    }
    const i = index - STATIC_TABLE.length - 1;
    if (i < this._entries.length) return this._entries[i];
    return this._tailUnknown ? undefined : 'invalid';
  }

  /** The size we evict down to: never below the encoder's real maximum, except for our memory cap. */
  private _bound(): number {
    return Math.min(this._maxSize ?? this._settingsLimit ?? MAX_TRACKED_TABLE_SIZE, MAX_TRACKED_TABLE_SIZE);
  }

  private _insert(name: Literal | undefined, value: Literal): void {
    const size = (name?.octets ?? 0) + value.octets + ENTRY_OVERHEAD;
    if (size > this._bound()) {
      // §4.4: an entry larger than the maximum empties the table and is not added.
      // If it may still fit the peer's (larger or unknown) maximum, the peer keeps what we drop.
      this._entries = [];
      this._size = 0;
      this._tailUnknown = size <= (this._maxSize ?? this._settingsLimit ?? Infinity);
      return;
    }
    this._entries.unshift({ name: name?.text, value: value.text, size });
    this._size += size;
    this._evict();
  }

  private _evict(): void {
    const bound = this._bound();
    if (this._size <= bound) return this._inferTail();
    while (this._size > bound && this._entries.length) this._size -= this._entries.pop()!.size;
    // Dropped for our memory cap while the peer may keep them: they are unknown now.
    if (this._maxSize === undefined || this._maxSize > bound) this._tailUnknown = true;
    this._inferTail();
  }

  /**
   * Older unseen entries cannot remain once the known ones leave no room for
   * even the smallest entry (32 octets) under any maximum the encoder may
   * use: its last size update, else the decoding peer's SETTINGS limit.
   */
  private _inferTail(): void {
    const upper = this._maxSize ?? this._settingsLimit;
    if (this._tailUnknown && upper !== undefined && upper <= MAX_TRACKED_TABLE_SIZE && this._size + ENTRY_OVERHEAD > upper) {
      this._tailUnknown = false;
    }
  }
}

/** Reads HPACK primitives; `short` is set when the block ended inside one. */
class Reader {
  pos = 0;
  short = false;

  constructor(private readonly _buf: Buffer) {}

  /** RFC 7541 §5.1 integer with an N-bit prefix; undefined when cut short or absurdly large. */
  integer(prefixBits: number): number | undefined {
    const buf = this._buf;
    if (this.pos >= buf.length) return this._short();
    const max = (1 << prefixBits) - 1;
    let value = buf[this.pos++] & max;
    if (value < max) return value;
    for (let shift = 0; ; shift += 7) {
      if (this.pos >= buf.length) return this._short();
      if (shift > 28) return undefined; // past 2^35: no real index or length is this large
      const b = buf[this.pos++];
      value += (b & 0x7f) * 2 ** shift;
      if (!(b & 0x80)) return value;
    }
  }

  /** RFC 7541 §5.2 string literal, Huffman-coded or raw. Text is UTF-8 when valid, else Latin-1. */
  string(): Literal | undefined {
    if (this.pos >= this._buf.length) return this._short();
    const huffman = (this._buf[this.pos] & 0x80) !== 0;
    const length = this.integer(7);
    if (length === undefined) return undefined;
    if (this.pos + length > this._buf.length) {
      this.pos = this._buf.length;
      return this._short();
    }
    const raw = this._buf.subarray(this.pos, this.pos + length);
    this.pos += length;
    const bytes = huffman ? huffmanDecode(raw) : raw;
    return bytes === undefined ? undefined : { text: decodeHeaderText(bytes), octets: bytes.length };
  }

  private _short(): undefined {
    this.short = true;
    return undefined;
  }
}
