import { isUtf8 } from 'node:buffer';
import type { DirectionParser } from './protocol';
import type { HeaderList, HttpMessageHead, TruncationReason } from './types';

/**
 * An incremental HTTP/1.x parser for one direction of one connection, built
 * for an observer: it is fed whatever the kernel captured, so it must
 *  - start anywhere (the agent may join mid-connection) and resync after
 *    garbage by looking for the next start line;
 *  - accept gaps: bytes it knows exist but never saw (a sendfile()d body, the
 *    per-syscall copy limit, lost events), skipping them inside bodies and
 *    resyncing when they hit a head (header_limit when the head had reached
 *    --max-header-bytes by then, else capture_gap);
 *  - find the next message on keep-alive and pipelined connections by skipping
 *    bodies (Content-Length, chunked, until close);
 *  - never throw and never hold more than a bounded amount of memory.
 * Only heads are kept; body bytes are counted and dropped.
 *
 * Why not llhttp: it stops at the first error and cannot resume mid-stream or
 * skip bytes it was never given, which is this parser's normal day.
 */

/** A parse problem, counted by the caller; the parser itself just resyncs. */
export type ParseProblem =
  /** a line where a start line should be was not one */
  | 'invalid_start_line'
  /** a message's length could not be determined (bad Content-Length, TE) */
  | 'invalid_framing'
  /** a chunked body was malformed */
  | 'invalid_chunk'
  /** bytes were missing where the parser needed them; it resynced */
  | 'gap_resync'
  /** a head grew past the hard limit without ending */
  | 'head_overflow'
  /** the stream's first message came after skipped bytes: capture started mid-message */
  | 'missed_start';

export interface ParserSink {
  message(head: HttpMessageHead): void;
  problem(kind: ParseProblem): void;
  /**
   * The bytes after a head that switched protocols (101, a 2xx to CONNECT),
   * from the same push; the parser ignores everything after them.
   */
  tunnel?(rest: Buffer, tsNs: number): void;
}

export interface ParserOptions {
  /** Bytes of start line + headers kept per message; more is marked truncated. */
  maxHeaderBytes: number;
  /**
   * The method of the request the next response answers, if known: a response
   * to HEAD has no body, and a 2xx to CONNECT starts a tunnel.
   */
  requestMethod?: () => string | undefined;
}

const enum State {
  /** Lost: look at each line for a start line. */
  Seek,
  /** At a message boundary: the next line must be a start line. */
  StartLine,
  Headers,
  BodyLength,
  ChunkSize,
  ChunkData,
  ChunkDataEnd,
  Trailers,
  /** Response body delimited by the connection's end. */
  UntilClose,
  /** Not HTTP/1 any more (101 Switching Protocols, CONNECT). */
  Tunnel,
  /**
   * After a request that may switch protocols (Upgrade, CONNECT): what
   * follows is held, unparsed, until its response says whether the switch
   * happened (release) or not (resume).
   */
  Held,
}

const LF = 0x0a;
const CR = 0x0d;
/** Longest start line considered; real ones are far shorter. */
const MAX_START_LINE = 8192;
/** A chunk-size line longer than this is malformed. */
const MAX_CHUNK_LINE = 1024;
/** A head still going after this many bytes is abandoned (its start was kept). */
const HEAD_HARD_LIMIT = 1 << 20;
/**
 * Bytes held after a request that may switch protocols while its response
 * is awaited; beyond this they are given up as a gap (never parsed as HTTP).
 */
export const MAX_HELD_BYTES = 64 * 1024;

/** What a held direction saw while it waited: captured bytes and when, or a count of bytes never captured. */
export type HeldPiece = { data: Buffer; tsNs: number } | number;

const REQUEST_LINE = /^([A-Z][A-Z0-9_-]{0,31}) (\S{1,8000}) HTTP\/(1\.[01])$/;
const STATUS_LINE = /^HTTP\/(1\.[01]) ([1-9]\d\d)(?: (.*))?$/;
/** RFC 9110 token characters, for header names. */
const TOKEN = /^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/;

type StartLine =
  | { kind: 'request'; method: string; target: string; version: string }
  | { kind: 'response'; status: number; reason: string; version: string };

/** A start line (without CRLF) to its parts, or undefined when it is not one. */
export function parseStartLine(line: string): StartLine | undefined {
  if (line.startsWith('HTTP/')) {
    const m = STATUS_LINE.exec(line);
    return m ? { kind: 'response', version: m[1], status: Number(m[2]), reason: m[3] ?? '' } : undefined;
  }
  const m = REQUEST_LINE.exec(line);
  return m ? { kind: 'request', method: m[1], target: m[2], version: m[3] } : undefined;
}

/** Methods recognised when a request line is found glued to the end of other bytes. */
const RESYNC_METHODS = ['GET', 'POST', 'PUT', 'DELETE', 'HEAD', 'OPTIONS', 'PATCH', 'CONNECT', 'TRACE'];

/**
 * While lost, a start line may follow other bytes on the same line: a body
 * that did not end with a newline, then the next message. Finds a start line
 * that is a suffix of the line (requests only with a well-known method, to
 * keep false positives from body text rare).
 */
export function findStartLine(line: string): StartLine | undefined {
  const whole = parseStartLine(line);
  if (whole) return whole;
  for (let i = line.indexOf('HTTP/1.', 1); i > 0; i = line.indexOf('HTTP/1.', i + 1)) {
    const status = parseStartLine(line.slice(i));
    if (status?.kind === 'response') return status;
  }
  if (!/ HTTP\/1\.[01]$/.test(line)) return undefined;
  const targetSpace = line.lastIndexOf(' ', line.length - 10);
  if (targetSpace <= 0) return undefined;
  for (const method of RESYNC_METHODS) {
    const start = targetSpace - method.length;
    if (start > 0 && line.startsWith(method, start)) {
      const req = parseStartLine(line.slice(start));
      if (req?.kind === 'request') return req;
    }
  }
  return undefined;
}

/** Header bytes as text: UTF-8 when valid, else Latin-1 (lossless, never mangled). */
export function decodeHeaderText(buf: Buffer): string {
  return isUtf8(buf) ? buf.toString('utf8') : buf.toString('latin1');
}


/**
 * Header names seen before, as sent -> lower case (valid tokens only). Real
 * traffic repeats a few dozen names; names are attacker-controlled, so the
 * cache is bounded.
 */
const headerNames = new Map<string, string>();
const MAX_CACHED_NAMES = 1024;

/** A header name in lower case, or undefined when it is not a token. */
function headerName(raw: string): string | undefined {
  let lower = headerNames.get(raw);
  if (lower !== undefined) return lower;
  if (!TOKEN.test(raw)) return undefined;
  lower = raw.toLowerCase();
  if (headerNames.size >= MAX_CACHED_NAMES) headerNames.clear();
  headerNames.set(raw, lower);
  return lower;
}

function isOws(c: number): boolean {
  return c === 0x20 || c === 0x09;
}

const DIGITS = /^\d{1,15}$/;

/** Content-Length values (repeated or comma-joined) that all agree, else undefined. */
export function parseContentLength(values: readonly string[]): number | undefined {
  if (values.length === 1 && DIGITS.test(values[0])) return Number(values[0]);
  let result: number | undefined;
  for (const v of values) {
    for (const part of v.split(',')) {
      const s = part.trim();
      if (!DIGITS.test(s)) return undefined;
      const n = Number(s);
      if (result !== undefined && result !== n) return undefined;
      result = n;
    }
  }
  return result;
}

/** True when chunked is the last transfer coding. */
function isChunkedLast(values: readonly string[]): boolean {
  const codings = values.join(',').split(',');
  return codings[codings.length - 1].trim().toLowerCase() === 'chunked';
}

interface MessageInProgress {
  start: StartLine;
  headers: HeaderList;
  headBytes: number;
  truncated?: TruncationReason;
  /** Header values holding NUL or CR (see HttpMessageHead.invalidValues). */
  invalidValues: number;
  startNs: number;
  contentLength: string[];
  transferEncoding: string[];
  /** An Upgrade header was sent (a request that may switch protocols). */
  upgrade: boolean;
}

export class Http1StreamParser implements DirectionParser {
  private _state = State.Seek;
  /**
   * The current line not yet ended by LF: its first piece as a range of the
   * buffer it came in (no copy, no view), further pieces in _more.
   */
  private _lineBuf?: Buffer;
  private _lineFrom = 0;
  private _lineTo = 0;
  private _more: Buffer[] = [];
  private _lineLength = 0;
  /** The current line is too long: drop bytes until its LF. */
  private _discardLine = false;
  private _lineStartNs = 0;
  private _msg?: MessageInProgress;
  /** Body bytes (or chunk bytes) still to skip. */
  private _remaining = 0;
  private _nowNs = 0;
  /** A first start line was found; before it, skipped bytes mean we joined mid-message. */
  private _synced = false;
  private _skippedBeforeSync = false;
  /** State.Held: what came after the request, in order, and its captured size. */
  private _held: HeldPiece[] = [];
  private _heldBytes = 0;

  constructor(
    private readonly _sink: ParserSink,
    private readonly _opts: ParserOptions,
  ) {}

  /** Looking for a start line: at the beginning, or lost after garbage or a gap. */
  get seeking(): boolean {
    return this._state === State.Seek;
  }

  /** Captured bytes, contiguous with whatever came before (or after a gap()). */
  push(data: Buffer, tsNs: number): void {
    this._nowNs = tsNs;
    let pos = 0;
    while (pos < data.length) {
      switch (this._state) {
        case State.BodyLength:
        case State.ChunkData: {
          const n = Math.min(this._remaining, data.length - pos);
          pos += n;
          this._remaining -= n;
          if (this._remaining === 0) this._endOfBodyPart();
          break;
        }
        case State.UntilClose:
          return;
        case State.Tunnel:
          if (pos < data.length) this._sink.tunnel?.(data.subarray(pos), tsNs);
          return;
        case State.Held:
          this._hold(data.subarray(pos));
          return;
        default: {
          const lf = data.indexOf(LF, pos);
          const end = lf < 0 ? data.length : lf;
          this._appendLine(data, pos, end);
          if (lf < 0) return;
          pos = lf + 1;
          this._takeLine();
        }
      }
    }
  }

  /** `bytes` bytes exist here that were never captured. */
  gap(bytes: number): void {
    if (bytes <= 0) return;
    switch (this._state) {
      case State.BodyLength:
      case State.ChunkData:
        if (bytes <= this._remaining) {
          this._remaining -= bytes;
          if (this._remaining === 0) this._endOfBodyPart();
          return;
        }
        break;
      case State.UntilClose:
      case State.Tunnel:
        return;
      case State.Held:
        this._hold(bytes);
        return;
      case State.Seek:
        this._resetLine();
        this._skippedBeforeSync = true;
        return;
      case State.Headers:
        // The rest of this head is gone: report what we have, then resync. When what was
        // captured reaches --max-header-bytes, the lost part was past the user's limit anyway.
        this._finishTruncated(this._msg!.headBytes >= this._opts.maxHeaderBytes ? 'header_limit' : 'capture_gap');
        break;
      default:
        break;
    }
    this._sink.problem('gap_resync');
    this._seek();
  }

  /** The connection ended. A response delimited by close ends here too. */
  end(): void {
    if (this._state === State.Headers) this._finishTruncated('connection_closed');
    this._seek();
  }

  /** Holding the bytes after a request that may switch protocols (see resume and release). */
  get held(): boolean {
    return this._state === State.Held;
  }

  /** The held request was not switched (e.g. 200 to an Upgrade): parse what came after it as HTTP. */
  resume(): void {
    if (this._state !== State.Held) return;
    const pieces = this._takeHeld();
    this._state = State.StartLine;
    for (const p of pieces) {
      if (typeof p === 'number') this.gap(p);
      else this.push(p.data, p.tsNs);
    }
  }

  /**
   * The held request switched protocols: the parser stops (State.Tunnel) and
   * returns what it held, for the new protocol's parser or to be counted.
   */
  release(): HeldPiece[] {
    const pieces = this._state === State.Held ? this._takeHeld() : [];
    this._state = State.Tunnel;
    return pieces;
  }

  private _takeHeld(): HeldPiece[] {
    const pieces = this._held;
    this._held = [];
    this._heldBytes = 0;
    return pieces;
  }

  /** Holds bytes (or a gap) while the switch is undecided; past MAX_HELD_BYTES captured bytes become a gap. */
  private _hold(piece: Buffer | number): void {
    if (typeof piece !== 'number') {
      if (piece.length === 0) return;
      if (this._heldBytes + piece.length > MAX_HELD_BYTES) piece = piece.length;
      else {
        // The caller may reuse its buffer: keep a copy (rare: a client talking before the switch is decided).
        this._held.push({ data: Buffer.from(piece), tsNs: this._nowNs });
        this._heldBytes += piece.length;
        return;
      }
    }
    const last = this._held[this._held.length - 1];
    if (typeof last === 'number') this._held[this._held.length - 1] = last + piece;
    else this._held.push(piece);
  }

  /** Forget everything and look for the next start line (e.g. bytes went backwards). */
  reset(): void {
    this._msg = undefined;
    this._seek();
  }

  private _seek(): void {
    if (this._held.length) this._takeHeld();
    this._state = State.Seek;
    this._msg = undefined;
    this._remaining = 0;
    this._resetLine();
  }

  private _resetLine(): void {
    this._lineBuf = undefined;
    if (this._more.length) this._more = [];
    this._lineLength = 0;
    this._discardLine = false;
  }

  /** The longest line the current state keeps before discarding. */
  private _lineLimit(): number {
    switch (this._state) {
      case State.Headers:
      case State.Trailers:
        return this._opts.maxHeaderBytes;
      case State.ChunkSize:
      case State.ChunkDataEnd:
        return MAX_CHUNK_LINE;
      default:
        return MAX_START_LINE;
    }
  }

  private _appendLine(data: Buffer, from: number, to: number): void {
    if (this._lineLength === 0 && !this._discardLine) this._lineStartNs = this._nowNs;
    const n = to - from;
    if (this._msg) {
      this._msg.headBytes += n;
      if (this._msg.headBytes > HEAD_HARD_LIMIT) {
        this._sink.problem('head_overflow');
        this._finishTruncated('header_limit');
        this._seek();
        return;
      }
    }
    if (this._discardLine || n === 0) return;
    if (this._lineLength + n > this._lineLimit()) {
      this._discardLine = true;
      this._lineBuf = undefined;
      this._more = [];
      return;
    }
    if (this._lineBuf === undefined) {
      this._lineBuf = data;
      this._lineFrom = from;
      this._lineTo = to;
    } else {
      this._more.push(data.subarray(from, to)); // rare: a line split across pushes
    }
    this._lineLength += n;
  }

  /** The current line ended (LF seen): act on it. */
  private _takeLine(): void {
    const discarded = this._discardLine;
    const rawLength = this._lineLength + 1; // with its LF
    let buf = this._lineBuf ?? EMPTY;
    let start = this._lineFrom;
    let end = this._lineBuf ? this._lineTo : 0;
    if (this._more.length) {
      buf = Buffer.concat([buf.subarray(start, end), ...this._more], this._lineLength);
      start = 0;
      end = buf.length;
    }
    if (end > start && buf[end - 1] === CR) end--;
    this._resetLine();
    if (this._msg) this._msg.headBytes += 1; // the LF

    switch (this._state) {
      case State.Seek:
      case State.StartLine:
        if (!discarded) this._onStartLine(buf, start, end, rawLength);
        else if (this._state === State.StartLine) this._invalidStartLine();
        else this._skippedBeforeSync = true;
        return;
      case State.Headers:
        if (discarded) return this._markTruncated('header_limit');
        return end === start ? this._onHeadEnd() : this._onHeaderLine(buf, start, end);
      case State.ChunkSize:
        return discarded ? this._invalid('invalid_chunk') : this._onChunkSize(buf.toString('latin1', start, end));
      case State.ChunkDataEnd:
        if (discarded || end !== start) return this._invalid('invalid_chunk');
        this._state = State.ChunkSize;
        return;
      case State.Trailers:
        if (!discarded && end === start) this._state = State.StartLine;
        return;
      default:
        return;
    }
  }

  private _onStartLine(buf: Buffer, from: number, to: number, rawLength: number): void {
    if (to === from) return; // empty lines between messages are allowed
    const text = buf.toString('latin1', from, to);
    const start = this._state === State.Seek ? findStartLine(text) : parseStartLine(text);
    if (!start) {
      if (this._state === State.StartLine) this._invalidStartLine();
      else this._skippedBeforeSync = true;
      return;
    }
    if (!this._synced) {
      this._synced = true;
      // A start line glued after other bytes also means bytes before it were skipped.
      if (this._skippedBeforeSync || !parseStartLine(text)) this._sink.problem('missed_start');
    }
    this._msg = {
      start,
      headers: [],
      headBytes: rawLength,
      invalidValues: 0,
      startNs: this._lineStartNs,
      contentLength: [],
      transferEncoding: [],
      upgrade: false,
    };
    this._state = State.Headers;
  }

  private _invalidStartLine(): void {
    this._sink.problem('invalid_start_line');
    this._state = State.Seek;
  }

  private _invalid(kind: ParseProblem): void {
    this._sink.problem(kind);
    this._seek();
  }

  private _markTruncated(reason: TruncationReason): void {
    if (this._msg && !this._msg.truncated) this._msg.truncated = reason;
  }

  /** A header line, buf[start, end) without its line end. */
  private _onHeaderLine(buf: Buffer, start: number, end: number): void {
    const msg = this._msg!;
    if (isOws(buf[start])) {
      // obs-fold: a continuation of the previous header's value.
      if (msg.headers.length === 0) return this._markTruncated('malformed_header');
      if (msg.truncated === 'header_limit') return;
      const last = msg.headers.length - 1;
      msg.headers[last] = `${msg.headers[last]} ${this._value(msg, buf, start, end)}`;
      return;
    }
    let colon = buf.indexOf(0x3a, start);
    if (colon >= end) colon = -1;
    const lower = colon > start ? headerName(buf.toString('latin1', start, colon)) : undefined;
    if (lower === undefined) return this._markTruncated('malformed_header');
    const value = this._value(msg, buf, colon + 1, end);
    // Framing headers are read even past the limit: the next message depends on them.
    if (lower === 'content-length') msg.contentLength.push(value);
    else if (lower === 'transfer-encoding') msg.transferEncoding.push(value);
    else if (lower === 'upgrade') msg.upgrade = true;
    if (msg.headBytes > this._opts.maxHeaderBytes) return this._markTruncated('header_limit');
    msg.headers.push(lower, value);
  }

  /**
   * buf[start, end) without surrounding spaces and tabs, as header text
   * (decodeHeaderText, without a Buffer view in the common all-ASCII case).
   * A value holding NUL or a bare CR, which RFC 9110 §5.5 forbids, is kept
   * as sent and counted on the message: LF ends the line, so these are what
   * an HTTP/1 value can smuggle.
   */
  private _value(msg: MessageInProgress, buf: Buffer, start: number, end: number): string {
    let s = start;
    let e = end;
    while (s < e && isOws(buf[s])) s++;
    while (e > s && isOws(buf[e - 1])) e--;
    let ascii = true;
    let forbidden = false;
    for (let i = s; i < e; i++) {
      const c = buf[i];
      if (c < 0x20 || c >= 0x80) {
        if (c >= 0x80) ascii = false;
        else if (c === 0 || c === CR) forbidden = true;
      }
    }
    if (forbidden) msg.invalidValues++;
    return ascii ? buf.toString('latin1', s, e) : decodeHeaderText(buf.subarray(s, e));
  }

  private _buildHead(msg: MessageInProgress): HttpMessageHead {
    const s = msg.start;
    const head: HttpMessageHead =
      s.kind === 'request'
        ? { kind: 'request', method: s.method, target: s.target, version: s.version, headers: msg.headers, headBytes: msg.headBytes, startNs: msg.startNs, endNs: this._nowNs }
        : { kind: 'response', status: s.status, reason: s.reason, version: s.version, headers: msg.headers, headBytes: msg.headBytes, startNs: msg.startNs, endNs: this._nowNs };
    if (msg.truncated) head.truncated = msg.truncated;
    if (msg.invalidValues) head.invalidValues = msg.invalidValues;
    return head;
  }

  /** Report a head that will not end normally, then resync. */
  private _finishTruncated(reason: TruncationReason): void {
    const msg = this._msg;
    if (!msg) return;
    this._markTruncated(reason);
    this._msg = undefined;
    this._sink.message(this._buildHead(msg));
  }

  private _onHeadEnd(): void {
    const msg = this._msg!;
    this._msg = undefined;
    const head = this._buildHead(msg);
    const next = this._framing(msg);
    // 1xx other than 101 are interim: the final response follows on its own.
    const interim = head.kind === 'response' && head.status < 200 && head.status !== 101;
    if (!interim) this._sink.message(head);
    if (next === 'invalid') return this._invalid('invalid_framing');
    this._state = next;
    if (next === State.BodyLength && this._remaining === 0) this._state = State.StartLine;
  }

  /** RFC 9112 §6.3: how the body after this head is delimited. */
  private _framing(msg: MessageInProgress): State | 'invalid' {
    const te = msg.transferEncoding;
    const cl = msg.contentLength;
    if (msg.start.kind === 'request') {
      if (te.length) return isChunkedLast(te) ? State.ChunkSize : 'invalid';
      if (cl.length && parseContentLength(cl) !== 0) return this._bodyLength(cl) ?? 'invalid';
      // Without a body, what follows a CONNECT or an Upgrade request waits for the response (held);
      // with one (rare: an h2c upgrade carrying a body), the next bytes are parsed as HTTP.
      if (msg.upgrade || msg.start.method === 'CONNECT') return State.Held;
      return State.StartLine;
    }
    const status = msg.start.status;
    const method = this._opts.requestMethod?.();
    if (status === 101) return State.Tunnel;
    if (method === 'CONNECT' && status >= 200 && status < 300) return State.Tunnel;
    if (method === 'HEAD' || status < 200 || status === 204 || status === 304) return State.StartLine;
    if (te.length) return isChunkedLast(te) ? State.ChunkSize : State.UntilClose;
    if (cl.length) return this._bodyLength(cl) ?? 'invalid';
    return State.UntilClose;
  }

  private _bodyLength(values: readonly string[]): State | undefined {
    const n = parseContentLength(values);
    if (n === undefined) return undefined;
    this._remaining = n;
    return State.BodyLength;
  }

  private _onChunkSize(text: string): void {
    const m = /^([0-9a-fA-F]{1,13})[ \t]*(?:;.*)?$/.exec(text);
    if (!m) return this._invalid('invalid_chunk');
    const size = parseInt(m[1], 16);
    if (size === 0) {
      this._state = State.Trailers;
      return;
    }
    this._remaining = size;
    this._state = State.ChunkData;
  }

  private _endOfBodyPart(): void {
    this._state = this._state === State.ChunkData ? State.ChunkDataEnd : State.StartLine;
  }
}

const EMPTY = Buffer.alloc(0);
