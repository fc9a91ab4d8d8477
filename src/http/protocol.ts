import type { Direction } from '../source';

/** The connection's other direction. */
export function otherDirection(d: Direction): Direction {
  return d === 'egress' ? 'ingress' : 'egress';
}

/**
 * What the tracker needs from a protocol parser for one direction of one
 * connection, so HTTP/1.x and HTTP/2 are interchangeable behind it.
 * Implementations never throw: bad bytes are counted and skipped.
 */
export interface DirectionParser {
  /** Captured bytes, contiguous with whatever came before (or after a gap()). */
  push(data: Buffer, tsNs: number): void;
  /** `bytes` bytes exist here that were never captured. */
  gap(bytes: number): void;
  /** The connection ended. */
  end(): void;
  /** Forget the position in the stream (bytes went backwards) and resync. */
  reset(): void;
}
