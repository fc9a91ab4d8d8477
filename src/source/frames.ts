/**
 * Splits the loader's byte stream into frames: a 4-byte little-endian length,
 * then that many bytes. Frames inside one chunk are returned as views (no
 * copy); only a frame that straddles chunks is assembled.
 */
export class FrameReader {
  private _pending: Buffer[] = [];
  private _pendingLength = 0;

  /** Largest frame accepted; anything larger means the stream is corrupt. */
  constructor(private readonly _maxFrame = 1 << 20) {}

  /** Calls onFrame for every complete frame; returns false on a corrupt stream. */
  push(chunk: Buffer, onFrame: (frame: Buffer) => void): boolean {
    let buf = chunk;
    if (this._pendingLength > 0) {
      this._pending.push(chunk);
      buf = Buffer.concat(this._pending, this._pendingLength + chunk.length);
      this._pending = [];
      this._pendingLength = 0;
    }
    let off = 0;
    while (buf.length - off >= 4) {
      const len = buf.readUInt32LE(off);
      if (len > this._maxFrame) return false;
      if (buf.length - off - 4 < len) break;
      onFrame(buf.subarray(off + 4, off + 4 + len));
      off += 4 + len;
    }
    if (off < buf.length) {
      // Copy, so the (large) chunk it came from can be collected.
      const rest = Buffer.from(buf.subarray(off));
      this._pending.push(rest);
      this._pendingLength = rest.length;
    }
    return true;
  }

  /** Bytes of an incomplete frame held back. */
  get pendingBytes(): number {
    return this._pendingLength;
  }
}

/** Frames a payload the way the loader does (used by recordings and tests). */
export function frame(payload: Buffer): Buffer {
  const out = Buffer.allocUnsafe(4 + payload.length);
  out.writeUInt32LE(payload.length, 0);
  payload.copy(out, 4);
  return out;
}
