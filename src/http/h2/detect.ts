import type { Direction } from '../../source';
import type { Http1StreamParser } from '../parse';
import { otherDirection, type DirectionParser } from '../protocol';
import type { HttpResponseHead } from '../types';
import { DEFAULT_MAX_FRAME_SIZE, FRAME_HEADER_SIZE, FrameType, MAX_PARTIAL_HELD, PREFACE, frameRun } from './frames';
import type { DirectionStart } from './session';

/**
 * Telling HTTP/2 from the bytes of a stream, not from ports, so cleartext
 * (h2c) and TLS plaintext are handled alike:
 *  - 'preface': the client connection preface (RFC 9113 §3.4), the client's
 *    first bytes;
 *  - 'start': a SETTINGS frame, a server's first bytes (its preface);
 *  - 'frames': a run of well-formed frames, as seen when joining a
 *    connection in the middle.
 * The h2c upgrade (HTTP/1.1 Upgrade: h2c answered 101) is found by the
 * HTTP/1 side instead: see ConnectionTracker.
 */
export type Http2Evidence = 'preface' | 'start' | 'frames';

/**
 * What the first bytes of a direction say; 'more' when they may be the start
 * of something HTTP/2 begins with (a preface prefix, a lone frame header).
 */
export function sniffHttp2(buf: Buffer): Http2Evidence | 'more' | undefined {
  const n = Math.min(buf.length, PREFACE.length);
  if (buf.compare(PREFACE, 0, n, 0, n) === 0) return n === PREFACE.length ? 'preface' : 'more';
  if (buf.length < FRAME_HEADER_SIZE) return couldStartSettings(buf) ? 'more' : undefined;
  const run = frameRun(buf, DEFAULT_MAX_FRAME_SIZE);
  if (run === 'partial') return buf.length <= MAX_PARTIAL_HELD ? 'more' : undefined;
  if (!run) return undefined;
  return couldStartSettings(buf) ? 'start' : 'frames';
}

/** A non-ACK SETTINGS frame header on stream 0 with a length of n×6, as far as `buf` goes. */
function couldStartSettings(buf: Buffer): boolean {
  const expect = [undefined, undefined, undefined, FrameType.Settings, 0, 0, 0, 0, 0];
  for (let i = 0; i < Math.min(buf.length, FRAME_HEADER_SIZE); i++) {
    if (i === 0 && buf[0] !== 0) return false; // lengths ≥ 2^16 are not a first SETTINGS
    if (expect[i] !== undefined && buf[i] !== expect[i]) return false;
  }
  return buf.length < 3 || buf.readUIntBE(0, 3) % 6 === 0;
}

/**
 * How each direction starts when direction `d` showed `evidence`: a preface
 * is answered by frames from the start, a first SETTINGS by a preface; the
 * other direction counts as seen from its start only if none of its bytes
 * went by yet (`otherFresh`).
 */
export function http2Starts(d: Direction, evidence: Http2Evidence, otherFresh: boolean): Record<Direction, DirectionStart> {
  const mine: DirectionStart = evidence === 'frames' ? 'unknown' : evidence;
  const theirs: DirectionStart = evidence === 'frames' || !otherFresh ? 'unknown' : evidence === 'preface' ? 'start' : 'preface';
  return { [d]: mine, [otherDirection(d)]: theirs } as Record<Direction, DirectionStart>;
}

/** A 101 that switches the connection to HTTP/2 (RFC 7540 §3.2, h2c). */
export function upgradesToH2c(head: HttpResponseHead): boolean {
  if (head.status !== 101) return false;
  for (let i = 0; i < head.headers.length; i += 2) {
    if (head.headers[i] === 'upgrade' && /(^|,)\s*h2c\s*(,|$)/i.test(head.headers[i + 1])) return true;
  }
  return false;
}


/**
 * A direction that speaks HTTP/1.x until its bytes say HTTP/2. It looks only
 * while the HTTP/1 parser has found no message start (a new connection, or
 * one joined mid-stream), so settled HTTP/1 traffic costs nothing.
 */
export class SniffingParser implements DirectionParser {
  private _held?: Buffer;

  constructor(
    private readonly _h1: Http1StreamParser,
    /** Called with every byte seen so far in this direction's current push once HTTP/2 is evident. */
    private readonly _onHttp2: (evidence: Http2Evidence, bytes: Buffer, tsNs: number) => void,
  ) {}

  push(data: Buffer, tsNs: number): void {
    if (!this._h1.seeking) return this._h1.push(data, tsNs);
    const bytes = this._held ? Buffer.concat([this._held, data]) : data;
    this._held = undefined;
    const evidence = sniffHttp2(bytes);
    if (evidence === 'more') {
      this._held = bytes;
      return;
    }
    if (evidence) return this._onHttp2(evidence, bytes, tsNs);
    this._h1.push(bytes, tsNs);
  }

  gap(bytes: number): void {
    this._held = undefined;
    this._h1.gap(bytes);
  }

  end(): void {
    this._held = undefined;
    this._h1.end();
  }

  reset(): void {
    this._held = undefined;
    this._h1.reset();
  }
}
