/**
 * HTTP/2 framing (RFC 9113 §4, §6) for an observer: a frame reader that
 * takes a direction's bytes in whatever pieces the kernel delivered, keeps
 * the payloads that matter for headers, skips DATA (counted, never held),
 * and knows when bytes it never saw broke the framing.
 */

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');
export const FRAME_HEADER_SIZE = 9;
/** SETTINGS_MAX_FRAME_SIZE's initial value; peers may raise it up to 2^24-1. */
export const DEFAULT_MAX_FRAME_SIZE = 16384;

export const enum FrameType {
  Data = 0x0,
  Headers = 0x1,
  Priority = 0x2,
  RstStream = 0x3,
  Settings = 0x4,
  PushPromise = 0x5,
  Ping = 0x6,
  GoAway = 0x7,
  WindowUpdate = 0x8,
  Continuation = 0x9,
}

/** Frame flags (RFC 9113 §6); ACK (SETTINGS, PING) shares END_STREAM's bit. */
export const Flag = { EndStream: 0x1, Ack: 0x1, EndHeaders: 0x4, Padded: 0x8, Priority: 0x20 } as const;

export const enum Setting {
  HeaderTableSize = 0x1,
  MaxFrameSize = 0x5,
}

export interface FrameHeader {
  length: number;
  type: number;
  flags: number;
  streamId: number;
}

export function readFrameHeader(buf: Buffer, at = 0): FrameHeader {
  return {
    length: buf.readUIntBE(at, 3),
    type: buf[at + 3],
    flags: buf[at + 4],
    streamId: buf.readUInt32BE(at + 5) & 0x7fffffff,
  };
}

/** Flags each frame type defines (RFC 9113 §6); anything else set is a sign of garbage. */
const DEFINED_FLAGS = [0x09, 0x2d, 0x00, 0x00, 0x01, 0x0c, 0x01, 0x00, 0x00, 0x04];

/**
 * Whether a frame header is one a real peer could send, judged strictly:
 * known type, only defined flags, reserved bit clear, the stream id and
 * payload length each type requires. Used where the framing is uncertain
 * (detection, resync after lost bytes), never to reject frames in sync.
 */
export function plausibleHeader(buf: Buffer, at: number, maxFrameSize: number): boolean {
  if (buf[at + 5] & 0x80) return false; // reserved bit
  const h = readFrameHeader(buf, at);
  if (h.type > FrameType.Continuation || (h.flags & ~DEFINED_FLAGS[h.type]) !== 0) return false;
  if (h.length > maxFrameSize) return false;
  const onStream = h.streamId !== 0;
  switch (h.type) {
    case FrameType.Settings:
      return !onStream && h.length % 6 === 0 && (!(h.flags & Flag.Ack) || h.length === 0);
    case FrameType.Ping:
      return !onStream && h.length === 8;
    case FrameType.GoAway:
      return !onStream && h.length >= 8;
    case FrameType.WindowUpdate:
      return h.length === 4;
    case FrameType.RstStream:
      return onStream && h.length === 4;
    case FrameType.Priority:
      return onStream && h.length === 5;
    case FrameType.Headers:
    case FrameType.Continuation:
    case FrameType.PushPromise:
      return onStream && h.length > 0;
    default: // DATA
      return onStream;
  }
}

/**
 * Whether `buf` is a run of plausible frames from its first byte to its end
 * (the last frame may continue past the end): 'frames' when at least one
 * frame is whole inside it, 'partial' when the first frame's header is
 * plausible but the frame goes on past the end (a writer that sends a
 * frame's header and payload in two calls), else undefined.
 */
export function frameRun(buf: Buffer, maxFrameSize: number): 'frames' | 'partial' | undefined {
  let at = 0;
  let complete = 0;
  while (at + FRAME_HEADER_SIZE <= buf.length) {
    if (!plausibleHeader(buf, at, maxFrameSize)) return undefined;
    at += FRAME_HEADER_SIZE + buf.readUIntBE(at, 3);
    if (at <= buf.length) complete++;
  }
  if (complete > 0) return 'frames';
  return buf.length >= FRAME_HEADER_SIZE ? 'partial' : undefined;
}

/** Bytes of a 'partial' run held while resyncing: a frame header and a little more. */
export const MAX_PARTIAL_HELD = 64;

/** A frame whose payload the reader kept (header-related types). */
export interface Frame extends FrameHeader {
  payload: Buffer;
  /** CLOCK_MONOTONIC ns of the bytes carrying the frame's first and last byte. */
  startNs: number;
  endNs: number;
}

export interface FrameSink {
  /** Every frame's header as soon as it is read (DATA and other skipped payloads are not kept). */
  header(header: FrameHeader, tsNs: number): void;
  /** A frame of a kept type, with its payload, once complete. */
  frame(frame: Frame): void;
  /**
   * Framing was lost: bytes never captured covered more than a payload the
   * reader could skip. `cut` is the kept frame they fell into, with the
   * payload bytes captured before them. The reader resyncs on its own.
   */
  lost(cut: Frame | undefined): void;
  /** A kept frame was too large to hold (MAX_KEPT_PAYLOAD): given without payload; the framing is intact. */
  oversized(frame: Frame): void;
}

/** Types whose payload is kept; the others are skipped byte by byte. */
function keeps(type: number): boolean {
  return (
    type === FrameType.Headers ||
    type === FrameType.Continuation ||
    type === FrameType.PushPromise ||
    type === FrameType.Settings ||
    type === FrameType.RstStream ||
    type === FrameType.GoAway
  );
}

/** A kept payload larger than this is abandoned (counted as lost): memory stays bounded. */
export const MAX_KEPT_PAYLOAD = 1 << 20;

const enum ReadState {
  Header,
  Payload,
  /** Framing unknown: look for plausible frames at the start of the next bytes. */
  Lost,
}

/** Incremental frame reader for one direction. */
export class FrameReader {
  private _state: ReadState;
  private _head = Buffer.alloc(FRAME_HEADER_SIZE);
  private _headLength = 0;
  private _header?: FrameHeader;
  private _payload: Buffer[] = [];
  private _payloadLength = 0;
  /** Payload bytes still to read (or skip) of the current frame. */
  private _remaining = 0;
  private _startNs = 0;
  /** While lost: the start of a frame whose header looked right, waiting for the rest. */
  private _held?: Buffer;
  /** The peer's SETTINGS_MAX_FRAME_SIZE (for plausibility when resyncing). */
  maxFrameSize = DEFAULT_MAX_FRAME_SIZE;

  constructor(
    private readonly _sink: FrameSink,
    inSync: boolean,
  ) {
    this._state = inSync ? ReadState.Header : ReadState.Lost;
  }

  push(data: Buffer, tsNs: number): void {
    let pos = 0;
    if (this._state === ReadState.Lost) {
      // Only a frame boundary at the start of a read or write is trusted, and only
      // when at least one whole frame follows it (perhaps after a held header).
      if (this._held) {
        const joined = Buffer.concat([this._held, data]);
        this._held = undefined;
        if (frameRun(joined, this.maxFrameSize) === 'frames') return this._resync(joined, tsNs);
      }
      const run = frameRun(data, this.maxFrameSize);
      if (run === 'partial' && data.length <= MAX_PARTIAL_HELD) this._held = data;
      if (run !== 'frames') return;
      this._state = ReadState.Header;
    }
    while (pos < data.length) {
      if (this._state === ReadState.Header) {
        const n = Math.min(FRAME_HEADER_SIZE - this._headLength, data.length - pos);
        if (this._headLength === 0) this._startNs = tsNs;
        data.copy(this._head, this._headLength, pos, pos + n);
        this._headLength += n;
        pos += n;
        if (this._headLength === FRAME_HEADER_SIZE) this._onHeader(tsNs);
        continue;
      }
      const h = this._header!;
      const n = Math.min(this._remaining, data.length - pos);
      if (this._payloadLength >= 0 && keeps(h.type)) {
        this._payload.push(data.subarray(pos, pos + n));
        this._payloadLength += n;
      }
      pos += n;
      this._remaining -= n;
      if (this._remaining === 0) this._endFrame(tsNs);
    }
  }

  /** Forget the position in the stream: look for frames at the start of the next bytes. */
  desync(): void {
    this._resetFrame();
    this._held = undefined;
    this._state = ReadState.Lost;
  }

  private _resync(data: Buffer, tsNs: number): void {
    this._state = ReadState.Header;
    this.push(data, tsNs);
  }

  /** `bytes` bytes exist here that were never captured. */
  gap(bytes: number): void {
    if (bytes <= 0) return;
    if (this._state === ReadState.Lost) {
      this._held = undefined;
      return;
    }
    const h = this._header;
    if (this._state === ReadState.Payload && h && !keeps(h.type) && bytes <= this._remaining) {
      this._remaining -= bytes;
      if (this._remaining === 0) this._endFrame(0);
      return;
    }
    const cut =
      this._state === ReadState.Payload && h && keeps(h.type) && this._payloadLength >= 0
        ? { ...h, payload: Buffer.concat(this._payload), startNs: this._startNs, endNs: this._startNs }
        : undefined;
    this._resetFrame();
    this._state = ReadState.Lost;
    this._sink.lost(cut);
  }

  private _onHeader(tsNs: number): void {
    const h = readFrameHeader(this._head);
    this._header = h;
    this._headLength = 0;
    this._remaining = h.length;
    this._payload = [];
    this._payloadLength = keeps(h.type) && h.length > MAX_KEPT_PAYLOAD ? -1 : 0;
    this._sink.header(h, tsNs);
    this._state = ReadState.Payload;
    if (h.length === 0) this._endFrame(tsNs);
  }

  private _endFrame(tsNs: number): void {
    const h = this._header!;
    const kept = this._payloadLength;
    const payload = this._payload.length === 1 ? this._payload[0] : Buffer.concat(this._payload);
    this._resetFrame();
    this._state = ReadState.Header;
    if (!keeps(h.type)) return;
    if (kept < 0) return this._sink.oversized({ ...h, payload: Buffer.alloc(0), startNs: this._startNs, endNs: tsNs || this._startNs });
    this._sink.frame({ ...h, payload, startNs: this._startNs, endNs: tsNs || this._startNs });
  }

  private _resetFrame(): void {
    this._header = undefined;
    this._headLength = 0;
    this._payload = [];
    this._payloadLength = 0;
    this._remaining = 0;
  }
}
