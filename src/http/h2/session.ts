import type { Direction } from '../../source';
import { otherDirection, type DirectionParser } from '../protocol';
import type { HeaderList, HttpExchange, HttpRequestHead, HttpResponseHead, Role, TruncationReason, UnansweredReason } from '../types';
import { Flag, FrameReader, FrameType, MAX_KEPT_PAYLOAD, PREFACE, Setting, type Frame, type FrameHeader, type FrameSink } from './frames';
import { HpackDecoder, type DecodedBlock } from './hpack';

/**
 * One HTTP/2 connection as one process sees it: a frame reader and an HPACK
 * decoder per direction, and the streams between them. Header blocks become
 * request and response heads; a stream's exchange is reported when its
 * response ends (END_STREAM, after trailers if any), is reset, or the
 * connection goes. DATA payloads are skipped and counted, never held.
 */

/** Things that went wrong, counted by the caller; the session carries on. */
export type Http2Problem =
  /** framing was lost (bytes never captured, garbage) and had to be found again */
  | 'frame_resync'
  /** a header block was not valid HPACK or held invalid fields: dropped, the table forgotten */
  | 'hpack_error'
  /** frames out of the order RFC 9113 requires (a CONTINUATION without its HEADERS, bad padding) */
  | 'protocol_error'
  /** a header block whose side (request or response) could not be told */
  | 'unknown_role';

export const HTTP2_PROBLEMS: readonly Http2Problem[] = ['frame_resync', 'hpack_error', 'protocol_error', 'unknown_role'];

/** How a direction's bytes begin when the session takes it over. */
export type DirectionStart =
  /** the client connection preface, at the connection's start */
  | 'preface'
  /** frames from the connection's start (a server's first SETTINGS; after an h2c upgrade's 101) */
  | 'start'
  /** somewhere in the middle: framing and HPACK state unknown */
  | 'unknown';

/** An exchange of one stream; the tracker adds the connection. */
export type Http2Exchange = Omit<HttpExchange, 'connection'>;

export interface Http2Sink {
  /** A request or response head was decoded (for counting). */
  message(head: HttpRequestHead | HttpResponseHead): void;
  exchange(ex: Http2Exchange): void;
  /** A response whose request was never seen (joined mid-stream, lost bytes). */
  orphanResponse(): void;
  problem(kind: Http2Problem): void;
  /** DATA payload bytes announced by frame headers (skipped). */
  data(bytes: number): void;
}

export interface Http2Options {
  /** Bytes of decoded header fields kept per message (--max-header-bytes). */
  maxHeaderBytes: number;
  /** Streams tracked at once per connection; the oldest is reported beyond. */
  maxStreams?: number;
  egress: DirectionStart;
  ingress: DirectionStart;
  /** The direction that carries requests, when known (preface, h2c upgrade). */
  clientDirection?: Direction;
}

const REQUEST_PSEUDO = new Set([':method', ':path', ':scheme', ':authority', ':protocol']);

interface HeaderBlock {
  streamId: number;
  /** PUSH_PROMISE: the stream its promised request opens. */
  promisedId?: number;
  endStream: boolean;
  fragments: Buffer[];
  /** Octets in fragments, kept as they are added (a block can come in many small CONTINUATIONs). */
  bytes: number;
  startNs: number;
  endNs: number;
  /** Why the block is incomplete before decoding: bytes never captured, too large, connection end. */
  cut?: TruncationReason;
}

interface Stream {
  request?: HttpRequestHead;
  response?: HttpResponseHead;
}

/** A decoded block's fields split and limited. */
interface Fields {
  pseudo: Map<string, string>;
  headers: HeaderList;
  truncated?: TruncationReason;
  invalidValues: number;
  headBytes: number;
  startNs: number;
  endNs: number;
}

export class Http2Session {
  readonly egress: H2Direction;
  readonly ingress: H2Direction;
  private _clientDir: Direction | undefined;
  /** Map order is age: the oldest stream is reported first when there are too many. */
  private readonly _streams = new Map<number, Stream>();
  private readonly _maxStreams: number;

  constructor(
    private readonly _sink: Http2Sink,
    private readonly _opts: Http2Options,
  ) {
    this._clientDir = _opts.clientDirection;
    this._maxStreams = _opts.maxStreams ?? 1024;
    this.egress = new H2Direction(this, 'egress', _opts.egress);
    this.ingress = new H2Direction(this, 'ingress', _opts.ingress);
  }

  /**
   * h2c upgrade: stream 1 carries the HTTP/1.1 request that asked for it, and
   * its HTTP2-Settings header holds the client's SETTINGS (RFC 7540 §3.2).
   */
  seedUpgrade(request: HttpRequestHead): void {
    this._streams.set(1, { request });
    const i = request.headers.indexOf('http2-settings');
    if (i >= 0 && i % 2 === 0 && this._clientDir) this.onSettings(this._clientDir, Buffer.from(request.headers[i + 1], 'base64url'));
  }

  /** The connection ended (after both directions' end()): every stream is reported with what it has. */
  close(reason: UnansweredReason): void {
    for (const s of this._streams.values()) this._report(s, reason);
    this._streams.clear();
  }

  problem(kind: Http2Problem): void {
    this._sink.problem(kind);
  }

  direction(d: Direction): H2Direction {
    return d === 'egress' ? this.egress : this.ingress;
  }

  onData(d: Direction, header: FrameHeader): void {
    this._sink.data(header.length);
    if (!(header.flags & Flag.EndStream) || d === this._clientDir) return;
    const s = this._streams.get(header.streamId);
    if (s?.response) this._finish(header.streamId, s);
  }

  onSettings(d: Direction, payload: Buffer): void {
    // A peer's SETTINGS describe what it accepts: they bound what the other direction sends.
    const peer = this.direction(otherDirection(d));
    for (let at = 0; at + 6 <= payload.length; at += 6) {
      const id = payload.readUInt16BE(at);
      const value = payload.readUInt32BE(at + 2);
      if (id === Setting.HeaderTableSize) peer.hpack.setSettingsLimit(value);
      else if (id === Setting.MaxFrameSize) peer.reader.maxFrameSize = value;
    }
  }

  onReset(streamId: number): void {
    const s = this._streams.get(streamId);
    if (!s) return;
    this._streams.delete(streamId);
    this._report(s, 'stream_reset');
  }

  onGoAway(d: Direction, lastStreamId: number): void {
    if (this._clientDir === undefined || d === this._clientDir) return;
    // The server never processed client streams above lastStreamId (RFC 9113 §6.8).
    for (const [id, s] of this._streams) {
      if (id > lastStreamId && id % 2 === 1 && !s.response) {
        this._streams.delete(id);
        this._report(s, 'stream_reset');
      }
    }
  }

  onBlock(d: Direction, block: HeaderBlock, decoded: DecodedBlock): void {
    const f = this._split(block, decoded);
    const isRequest = this._isRequestSide(d, f.pseudo);
    if (isRequest === undefined) return this._sink.problem('unknown_role');
    if (block.promisedId !== undefined) {
      // A server push: the promised request opens a stream of its own.
      if (isRequest) return this._sink.problem('protocol_error');
      return this._onRequest(block.promisedId, f);
    }
    if (isRequest) this._onRequest(block.streamId, f);
    else this._onResponse(block.streamId, f, block.endStream);
  }

  /** Requests come from the client; when that is not known yet, pseudo-headers tell. */
  private _isRequestSide(d: Direction, pseudo: Map<string, string>): boolean | undefined {
    if (this._clientDir !== undefined) return d === this._clientDir;
    const request = [...pseudo.keys()].some((k) => REQUEST_PSEUDO.has(k));
    const response = pseudo.has(':status');
    if (request === response) return undefined;
    this._clientDir = request ? d : otherDirection(d);
    return request;
  }

  private _split(block: HeaderBlock, decoded: DecodedBlock): Fields {
    const pseudo = new Map<string, string>();
    const headers: HeaderList = [];
    let bytes = 0;
    let overLimit = false;
    const fields = decoded.fields;
    for (let i = 0; i < fields.length; i += 2) {
      bytes += fields[i].length + fields[i + 1].length;
      if (bytes > this._opts.maxHeaderBytes) {
        overLimit = true;
        break;
      }
      if (fields[i].startsWith(':')) pseudo.set(fields[i], fields[i + 1]);
      else headers.push(fields[i], fields[i + 1]);
    }
    // Fields past --max-header-bytes are dropped anyway: a cut after them is the user's limit, not a capture gap.
    const cut = block.cut === 'capture_gap' && overLimit ? 'header_limit' : block.cut;
    const truncated = cut ?? (decoded.unknownFields > 0 ? 'hpack_state_unknown' : overLimit ? 'header_limit' : undefined);
    return {
      pseudo,
      headers,
      invalidValues: decoded.invalidValues,
      headBytes: block.bytes,
      startNs: block.startNs,
      endNs: block.endNs,
      ...(truncated ? { truncated } : {}),
    };
  }

  private _stream(id: number): Stream {
    let s = this._streams.get(id);
    if (s) return s;
    if (this._streams.size >= this._maxStreams) {
      const [oldId, oldest] = this._streams.entries().next().value as [number, Stream];
      this._streams.delete(oldId);
      this._report(oldest, 'too_many_pending');
    }
    s = {};
    this._streams.set(id, s);
    return s;
  }

  private _onRequest(streamId: number, f: Fields): void {
    const s = this._stream(streamId);
    if (s.request) return appendTrailers(s.request, f);
    const method = f.pseudo.get(':method') ?? '';
    const authority = f.pseudo.get(':authority');
    const scheme = f.pseudo.get(':scheme');
    s.request = {
      kind: 'request',
      method,
      target: f.pseudo.get(':path') ?? (method === 'CONNECT' ? (authority ?? '') : ''),
      ...headOf(f),
      ...(authority !== undefined ? { authority } : {}),
      ...(scheme !== undefined ? { scheme } : {}),
    };
    this._sink.message(s.request);
  }

  private _onResponse(streamId: number, f: Fields, endStream: boolean): void {
    const s = this._stream(streamId);
    if (s.response) {
      appendTrailers(s.response, f);
    } else {
      const raw = f.pseudo.get(':status');
      const status = raw !== undefined && /^[1-9]\d\d$/.test(raw) ? Number(raw) : 0;
      // 1xx are interim (100 Continue, 103 Early Hints): the final response follows.
      if (status >= 100 && status < 200 && !endStream) return;
      s.response = { kind: 'response', status, reason: '', ...headOf(f) };
      this._sink.message(s.response);
    }
    if (endStream) this._finish(streamId, s);
  }

  private _finish(id: number, s: Stream): void {
    this._streams.delete(id);
    this._report(s, 'connection_closed');
  }

  /** Reports a stream: with its response if it has one, else as unanswered for `reason`. */
  private _report(s: Stream, reason: UnansweredReason): void {
    if (!s.request) {
      if (s.response) this._sink.orphanResponse();
      return;
    }
    const role: Role = this._clientDir === 'egress' ? 'client' : 'server';
    this._sink.exchange(s.response ? { role, request: s.request, response: s.response } : { role, request: s.request, unanswered: reason });
  }
}

/** What request and response heads share, from a decoded block. */
function headOf(f: Fields): Omit<HttpResponseHead, 'kind' | 'status' | 'reason'> {
  return {
    version: '2',
    headers: f.headers,
    headBytes: f.headBytes,
    startNs: f.startNs,
    endNs: f.endNs,
    ...(f.truncated ? { truncated: f.truncated } : {}),
    ...(f.invalidValues ? { invalidValues: f.invalidValues } : {}),
  };
}

/** Trailers (or a request's trailing fields) join the message's headers. */
function appendTrailers(head: HttpRequestHead | HttpResponseHead, f: Fields): void {
  head.headers.push(...f.headers);
  head.headBytes += f.headBytes;
  head.endNs = f.endNs;
  if (!head.truncated && f.truncated) head.truncated = f.truncated;
  if (f.invalidValues) head.invalidValues = (head.invalidValues ?? 0) + f.invalidValues;
}

/** The header-block fragment of a HEADERS or PUSH_PROMISE payload, without padding and priority. */
function fragmentOf(f: Frame, complete: boolean): { fragment: Buffer; promisedId?: number } | undefined {
  const p = f.payload;
  let at = 0;
  let padLength = 0;
  if (f.flags & Flag.Padded) {
    if (p.length < 1) return complete ? undefined : { fragment: Buffer.alloc(0) };
    padLength = p[0];
    at = 1;
  }
  if (f.type === FrameType.Headers && f.flags & Flag.Priority) at += 5;
  let promisedId: number | undefined;
  if (f.type === FrameType.PushPromise) {
    if (p.length >= at + 4) promisedId = p.readUInt32BE(at) & 0x7fffffff;
    at += 4;
  }
  const end = f.length - padLength; // of the whole frame, which may be longer than what was captured
  if (end < at) return undefined;
  if (p.length < at) return complete ? undefined : { fragment: Buffer.alloc(0) };
  return { fragment: p.subarray(at, Math.min(end, p.length)), ...(promisedId !== undefined ? { promisedId } : {}) };
}

/** One direction of the connection: frames in, header blocks decoded, events to the session. */
export class H2Direction implements DirectionParser, FrameSink {
  readonly hpack: HpackDecoder;
  readonly reader: FrameReader;
  private _prefaceLeft: number;
  /** A header block waiting for its CONTINUATION frames. */
  private _block?: HeaderBlock;

  constructor(
    private readonly _session: Http2Session,
    private readonly _direction: Direction,
    start: DirectionStart,
  ) {
    this.hpack = new HpackDecoder(start !== 'unknown');
    this.reader = new FrameReader(this, start !== 'unknown');
    this._prefaceLeft = start === 'preface' ? PREFACE.length : 0;
  }

  push(data: Buffer, tsNs: number): void {
    if (this._prefaceLeft > 0) {
      const at = PREFACE.length - this._prefaceLeft;
      const n = Math.min(this._prefaceLeft, data.length);
      if (data.compare(PREFACE, at, at + n, 0, n) !== 0) {
        // Not the preface after all: look for frames instead, state unknown.
        this._prefaceLeft = 0;
        this.reset();
      } else {
        this._prefaceLeft -= n;
        data = data.subarray(n);
      }
    }
    if (data.length) this.reader.push(data, tsNs);
  }

  gap(bytes: number): void {
    if (this._prefaceLeft > 0) {
      this._prefaceLeft = 0;
      this.reset();
      return;
    }
    this.reader.gap(bytes);
  }

  end(): void {
    const b = this._block;
    if (!b) return;
    this._block = undefined;
    b.cut = 'connection_closed';
    this._finishBlock(b);
  }

  reset(): void {
    this._block = undefined;
    this.reader.desync();
    this.hpack.lose();
  }

  header(h: FrameHeader): void {
    if (this._block && h.type !== FrameType.Continuation) {
      // RFC 9113 §6.10: nothing may come between a header block's frames.
      this._block = undefined;
      this.hpack.lose();
      this._session.problem('protocol_error');
    }
    if (h.type === FrameType.Data) this._session.onData(this._direction, h);
  }

  frame(f: Frame): void {
    switch (f.type) {
      case FrameType.Headers:
      case FrameType.PushPromise:
        return this._onBlockStart(f);
      case FrameType.Continuation:
        return this._onContinuation(f);
      case FrameType.Settings:
        if (!(f.flags & Flag.Ack)) this._session.onSettings(this._direction, f.payload);
        return;
      case FrameType.RstStream:
        return this._session.onReset(f.streamId);
      case FrameType.GoAway:
        if (f.payload.length >= 4) this._session.onGoAway(this._direction, f.payload.readUInt32BE(0) & 0x7fffffff);
        return;
      default:
        return;
    }
  }

  lost(cut: Frame | undefined): void {
    this._session.problem('frame_resync');
    let b = this._block;
    if (cut && (cut.type === FrameType.Headers || cut.type === FrameType.PushPromise)) {
      b = this._newBlock(cut, false);
    } else if (cut && cut.type === FrameType.Continuation && b && b.streamId === cut.streamId) {
      b.fragments.push(cut.payload);
      b.bytes += cut.payload.length;
    }
    this._block = undefined;
    if (b) {
      b.cut = 'capture_gap';
      this._finishBlock(b); // decodes what was captured, then forgets the table
    }
    this.hpack.lose();
  }

  oversized(f: Frame): void {
    let b = this._block;
    if (f.type === FrameType.Headers || f.type === FrameType.PushPromise) b = this._newBlock(f, false);
    else if (f.type !== FrameType.Continuation) return;
    this._block = undefined;
    if (b) {
      b.cut = 'header_limit';
      this._finishBlock(b);
    }
    this.hpack.lose();
  }

  private _newBlock(f: Frame, complete: boolean): HeaderBlock | undefined {
    const part = fragmentOf(f, complete);
    if (!part) {
      this.hpack.lose();
      this._session.problem('protocol_error');
      return undefined;
    }
    return {
      streamId: f.streamId,
      endStream: f.type === FrameType.Headers && (f.flags & Flag.EndStream) !== 0,
      fragments: [part.fragment],
      bytes: part.fragment.length,
      startNs: f.startNs,
      endNs: f.endNs,
      ...(part.promisedId !== undefined ? { promisedId: part.promisedId } : {}),
    };
  }

  private _onBlockStart(f: Frame): void {
    const b = this._newBlock(f, true);
    if (!b) return;
    if (f.flags & Flag.EndHeaders) this._finishBlock(b);
    else this._block = b;
  }

  private _onContinuation(f: Frame): void {
    const b = this._block;
    if (!b || b.streamId !== f.streamId) {
      // Its HEADERS was never seen (resynced onto it): the block and the table are lost.
      this._block = undefined;
      this.hpack.lose();
      if (!b) return; // normal right after a resync
      this._session.problem('protocol_error');
      return;
    }
    b.fragments.push(f.payload);
    b.bytes += f.payload.length;
    b.endNs = f.endNs;
    if (b.bytes > MAX_KEPT_PAYLOAD) {
      // Memory stays bounded: decode what is held, the rest of the block is lost.
      this._block = undefined;
      b.cut = 'header_limit';
      this._finishBlock(b);
      return;
    }
    if (f.flags & Flag.EndHeaders) {
      this._block = undefined;
      this._finishBlock(b);
    }
  }

  private _finishBlock(b: HeaderBlock): void {
    const bytes = b.fragments.length === 1 ? b.fragments[0] : Buffer.concat(b.fragments);
    const decoded = this.hpack.decode(bytes, { partial: b.cut !== undefined });
    // A complete block must decode whole; a cut one may end inside a field.
    if (decoded.error === 'invalid' || (decoded.error && !b.cut)) {
      this._session.problem('hpack_error');
      return;
    }
    this._session.onBlock(this._direction, b, decoded);
  }
}
