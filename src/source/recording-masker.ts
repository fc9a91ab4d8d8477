/**
 * Hides secrets in the captured bytes of a recording (--record) before they
 * are written, so a recording holds no more secrets than the records do.
 *
 * Each data frame's bytes are rewritten in place, byte for byte (lengths,
 * sequence numbers and framing stay as captured, so --replay still
 * reassembles every message): secret bytes become '*'. What is hidden, per
 * direction of each connection, reading lines across frames:
 *  - the value of a header line whose name is secret (`Authorization: …`),
 *    and its continuation lines;
 *  - the value of a secret query parameter (`?access_token=…`) in a request
 *    target or in a header value;
 *  - credentials in a URL (`scheme://user:password@host`);
 *  - after bytes that were never captured (a gap) or at a connection's first
 *    captured bytes, the rest of the line unless it starts a message: the
 *    masker cannot know what that line was.
 * A name is secret when the agent's --redact-headers/--hash-headers globs
 * match it. When a URL's authority spans two frames, the part in the first
 * frame is hidden whether or not it turns out to hold credentials.
 *
 * TLS plaintext (HT_FLAG_TLS) is masked the same way, as streams of its own.
 * HTTP/2 carries headers HPACK-compressed, which no line reader can follow:
 * once a connection sends the HTTP/2 preface, every later byte of it (both
 * directions) is hidden. Recordings keep HTTP/2 connections' framing sizes
 * only, and replays show nothing from them.
 * Message bodies are not parsed: body text that does not look like a header
 * line or URL is written as captured (see README, "Secrets").
 */
import { decodeParamName } from '../common/param-name';
import { CONSTANTS as C, DATA, LAYOUT } from './layout';
import { FrameReader, frame } from './frames';

const LF = 0x0a;
const CR = 0x0d;
const SP = 0x20;
const HT = 0x09;
const MASK = 0x2a; // '*'
/** Longer names are not looked up (real ones are far shorter). */
const MAX_NAME = 256;
/** Streams remembered at most; a forgotten one starts over as "first bytes". */
const MAX_STREAMS = 65536;

const enum Mode {
  /** At the first byte of a line. */
  LineStart,
  /** Reading the first word of a line: a method or a header name. */
  Token,
  /** In a request target or a non-secret header value: URLs and queries are watched. */
  Url,
  /** Every byte hidden until the end of the line. */
  Masked,
  /** Nothing to hide until the end of the line. */
  Skip,
}

const enum Part {
  /** Outside a query. */
  Plain,
  /** After "://", before the host ends: may be userinfo. */
  Authority,
  QueryName,
  QueryValue,
  QueryMasked,
}

interface Stream {
  mode: Mode;
  part: Part;
  /** The word being read (a token or a query-parameter name). */
  word: string;
  /** The line being read is a request line (a space ends its target). */
  inTarget: boolean;
  /** The last header line was secret: continuation lines are too. */
  lastSecret: boolean;
  /** This line is the HTTP/2 preface ("PRI * HTTP/2.0"). */
  h2Preface: boolean;
  /** The two bytes before the current one, to spot "://". */
  prev1: number;
  prev2: number;
  /** Where the current authority began in this frame; -1 if in an earlier frame. */
  authStart: number;
  /** TCP sequence number the next frame should start at. */
  nextSeq: number;
}

/** RFC 9110 token characters (header names, methods). */
const TCHAR = new Uint8Array(256);
for (const ch of "!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz") TCHAR[ch.charCodeAt(0)] = 1;

/** Bytes that end a URL inside a header value (as src/otel/redact.ts EMBEDDED_URL). */
function endsUrl(c: number): boolean {
  return c === SP || c === HT || c === CR || c === 0x22 || c === 0x27 || c === 0x3c || c === 0x3e || c === 0x60;
}


const STATUS_START = Buffer.from('HTTP/1.', 'latin1');
/** The end of the HTTP/2 client preface "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n". */
const H2_PREFACE_END = Buffer.from('\r\n\r\nSM\r\n\r\n', 'latin1');

/**
 * Bytes that can start an HTTP/1 message: a method (capital letters) and a
 * space, or "HTTP/1.". A frame too short to tell (a request written a few
 * bytes per call) counts when it is all capitals or a prefix of "HTTP/1.".
 */
function startsMessage(buf: Buffer, from: number, to: number): boolean {
  const n = Math.min(to - from, STATUS_START.length);
  if (n > 0 && buf.compare(STATUS_START, 0, n, from, from + n) === 0) return true;
  let i = from;
  while (i < to && i - from < 32 && buf[i] >= 0x41 && buf[i] <= 0x5a) i++;
  return i > from && (i === to || buf[i] === SP);
}

function isDataFrame(f: Buffer): boolean {
  return f.length >= C.HT_DATA_HEADER_SIZE && f[0] === C.HT_EV_DATA;
}

/** One direction of a connection (`id/tls`, as in _h2), the same key when data is seen and when it closes. */
function streamKey(conn: string, direction: number): string {
  return `${conn}/${direction}`;
}

export class RecordingMasker {
  private readonly _streams = new Map<string, Stream>();
  /** Connections (`id/tls`) that spoke HTTP/2: all their bytes are hidden. */
  private readonly _h2 = new Set<string>();
  private readonly _reader = new FrameReader();
  /** Bytes hidden so far. */
  masked = 0;

  /** @param _isSecret whether a header or parameter name (lower-case) is secret */
  constructor(private readonly _isSecret: (name: string) => boolean) {}

  /**
   * Takes raw loader output (any chunking) and returns the bytes to write:
   * every complete frame, data frames masked. Incomplete frames wait for the
   * next chunk. Returns undefined on a corrupt stream (nothing more is written).
   */
  push(chunk: Buffer): Buffer | undefined {
    const out: Buffer[] = [];
    const ok = this._reader.push(chunk, (f) => {
      const framed = frame(f); // a copy already: masked where it is
      this._mask(framed.subarray(4));
      out.push(framed);
    });
    return ok ? Buffer.concat(out) : undefined;
  }

  /** One frame (without its length prefix), data frames masked in a copy. */
  maskFrame(f: Buffer): Buffer {
    return this._mask(isDataFrame(f) ? Buffer.from(f) : f);
  }

  /** Masks a data frame in place (notes a close frame); returns the frame. */
  private _mask(copy: Buffer): Buffer {
    if (copy.length > 0 && copy[0] === C.HT_EV_CLOSE && copy.length >= LAYOUT.ht_close_event.size) {
      const conn = `${copy.readBigUInt64LE(LAYOUT.ht_close_event.fields.sock_id[0])}/${copy[LAYOUT.ht_close_event.fields.flags[0]] & C.HT_FLAG_TLS}`;
      this._streams.delete(streamKey(conn, C.HT_DIR_EGRESS));
      this._streams.delete(streamKey(conn, C.HT_DIR_INGRESS));
      this._h2.delete(conn);
      return copy;
    }
    if (!isDataFrame(copy)) return copy;
    const end = Math.min(copy.length, DATA.buf + copy.readUInt32LE(DATA.bufSize));
    // TLS plaintext has its own ids (sessions) and offsets: a stream of its own.
    const tls = copy.readUInt32LE(DATA.flags) & C.HT_FLAG_TLS;
    const conn = `${copy.readBigUInt64LE(DATA.sockId)}/${tls}`;
    const key = streamKey(conn, copy[DATA.direction]);
    const seq = copy.readUInt32LE(DATA.seq);
    if (this._h2.has(conn)) {
      this._hideAll(copy, DATA.buf, end);
      return copy;
    }
    const prev = this._streams.get(key);
    let s = prev;
    if (!s || s.nextSeq !== seq) {
      // First bytes seen, or bytes missing before these: trust only a message start.
      s = this._fresh(startsMessage(copy, DATA.buf, end));
      if (!prev && this._streams.size >= MAX_STREAMS) {
        this._streams.delete(this._streams.keys().next().value as string);
      }
      this._streams.set(key, s);
    }
    this._scan(s, copy, DATA.buf, end);
    if (s.h2Preface) {
      // HPACK from here on: hide whatever follows the preface in this frame, and all later bytes.
      this._h2.add(conn);
      const at = copy.indexOf(H2_PREFACE_END, DATA.buf);
      if (at >= 0 && at < end) this._hideAll(copy, at + H2_PREFACE_END.length, end);
    }
    s.nextSeq = (seq + copy.readUInt32LE(DATA.msgSize)) >>> 0;
    return copy;
  }

  /** A stream's state at its first bytes, or after bytes it never saw (nextSeq is set once the frame is scanned). */
  private _fresh(atMessage: boolean): Stream {
    return {
      mode: atMessage ? Mode.LineStart : Mode.Masked,
      part: Part.Plain,
      word: '',
      inTarget: false,
      lastSecret: !atMessage,
      h2Preface: false,
      prev1: -1,
      prev2: -1,
      authStart: -1,
      nextSeq: 0,
    };
  }

  /** Every byte, CR and LF included (binary data has no lines). */
  private _hideAll(buf: Buffer, from: number, to: number): void {
    if (to > from) {
      buf.fill(MASK, from, to);
      this.masked += to - from;
    }
  }

  private _hide(buf: Buffer, from: number, to: number): void {
    for (let j = from; j < to; j++) {
      if (buf[j] !== CR && buf[j] !== LF) {
        buf[j] = MASK;
        this.masked++;
      }
    }
  }

  private _scan(s: Stream, buf: Buffer, from: number, to: number): void {
    s.authStart = s.part === Part.Authority ? -1 : s.authStart;
    for (let i = from; i < to; i++) {
      const c = buf[i];
      if (c === LF) {
        if (s.mode === Mode.Url && s.part === Part.Authority) s.part = Part.Plain;
        s.mode = Mode.LineStart;
        s.prev2 = s.prev1 = -1;
        continue;
      }
      switch (s.mode) {
        case Mode.LineStart:
          if (c === SP || c === HT) {
            // obs-fold: a continuation of the previous header's value
            s.mode = s.lastSecret ? Mode.Masked : Mode.Url;
            if (s.mode === Mode.Masked) this._hide(buf, i, i + 1);
            s.part = Part.Plain;
            s.inTarget = false;
            break;
          }
          s.lastSecret = false;
          if (c === CR) break;
          s.mode = Mode.Token;
          s.word = '';
          this._token(s, c);
          break;
        case Mode.Token:
          this._token(s, c);
          break;
        case Mode.Masked:
          this._hide(buf, i, i + 1);
          break;
        case Mode.Url:
          this._url(s, buf, i, c);
          break;
        case Mode.Skip:
          break;
      }
      s.prev2 = s.prev1;
      s.prev1 = c;
    }
    // An authority still open at the end of the frame may be userinfo: hide what this frame holds of it.
    if (s.mode === Mode.Url && s.part === Part.Authority) this._hide(buf, s.authStart < 0 ? from : s.authStart, to);
  }

  /** The first word of a line: a header name ends with ':', a method with a space. */
  private _token(s: Stream, c: number): void {
    if (c === 0x3a /* : */) {
      s.lastSecret = s.word !== '' && this._isSecret(s.word.toLowerCase());
      s.mode = s.lastSecret ? Mode.Masked : Mode.Url;
      s.part = Part.Plain;
      s.inTarget = false;
    } else if (c === SP) {
      s.inTarget = /^[A-Z]+$/.test(s.word);
      if (s.word === 'PRI') s.h2Preface = true;
      s.mode = s.inTarget ? Mode.Url : Mode.Skip;
      s.part = Part.Plain;
    } else if (TCHAR[c] && s.word.length < MAX_NAME) {
      s.word += String.fromCharCode(c);
    } else {
      s.mode = Mode.Skip;
    }
  }

  private _url(s: Stream, buf: Buffer, i: number, c: number): void {
    if (s.inTarget && c === SP) {
      s.mode = Mode.Skip; // " HTTP/1.1" follows
      return;
    }
    switch (s.part) {
      case Part.Plain:
        if (c === 0x3f /* ? */) {
          s.part = Part.QueryName;
          s.word = '';
        } else if (c === 0x2f && s.prev1 === 0x2f && s.prev2 === 0x3a /* :// */) {
          s.part = Part.Authority;
          s.authStart = i + 1;
        }
        return;
      case Part.Authority:
        if (c === 0x40 /* @ */) {
          this._hide(buf, s.authStart < 0 ? DATA.buf : s.authStart, i);
          s.part = Part.Plain;
        } else if (c === 0x2f || c === 0x3f || c === 0x23 || endsUrl(c)) {
          s.part = Part.Plain;
          if (c === 0x3f) this._url(s, buf, i, c);
        }
        return;
      case Part.QueryName:
        if (c === 0x3d /* = */) {
          s.part = s.word !== '' && this._isSecret(decodeParamName(s.word).toLowerCase()) ? Part.QueryMasked : Part.QueryValue;
        } else if (c === 0x26 /* & */) {
          s.word = '';
        } else if (c === 0x23 /* # */ || endsUrl(c)) {
          s.part = Part.Plain;
        } else if (s.word.length < MAX_NAME) {
          s.word += String.fromCharCode(c);
        }
        return;
      case Part.QueryValue:
      case Part.QueryMasked:
        if (c === 0x26 /* & */) {
          s.part = Part.QueryName;
          s.word = '';
        } else if (c === 0x23 /* # */ || endsUrl(c)) {
          s.part = Part.Plain;
        } else if (s.part === Part.QueryMasked) {
          this._hide(buf, i, i + 1);
        }
        return;
    }
  }
}
