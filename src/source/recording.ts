import { createWriteStream, openSync, readFileSync, statSync, type WriteStream } from 'node:fs';
import { UsageError } from '../common/errors';
import { decodeFrame } from './decode';
import { FrameReader } from './frames';
import type { EventSource, SourceCounters, SourceEnd } from './source';
import type { ReadyEvent, SourceEvent } from './types';

/**
 * A recording is the loader's output, byte for byte, after an 8-byte magic.
 * Replaying it runs the whole user-space pipeline without the kernel: the
 * basis of unit tests on real captures and of the user-space benchmark.
 */
export const RECORDING_MAGIC = Buffer.from('HTREC\x00\x01\x00', 'latin1');

export class RecordingWriter {
  private readonly _out: WriteStream;
  private _failed?: Error;

  /** Opens (creates or truncates) the file now, so a bad path fails here, before capture, with a UsageError. */
  constructor(path: string) {
    let fd: number;
    try {
      fd = openSync(path, 'w', 0o600);
    } catch (err) {
      throw new UsageError(`cannot write --record file ${path}: ${(err as Error).message}; choose a writable path`);
    }
    this._out = createWriteStream(path, { fd });
    this._out.on('error', (err) => (this._failed = err));
    this._out.write(RECORDING_MAGIC);
  }

  write(chunk: Buffer): void {
    if (!this._failed) this._out.write(chunk);
  }

  close(): Promise<void> {
    return new Promise((resolve, reject) => {
      this._out.end(() => (this._failed ? reject(this._failed) : resolve()));
    });
  }
}

/** Reads a whole recording; throws UsageError naming the file on bad input. */
export function readRecording(path: string): Buffer {
  let bytes: Buffer;
  try {
    // Not a FIFO or device: it would be read forever.
    if (!statSync(path).isFile()) throw new Error('not a regular file');
    bytes = readFileSync(path);
  } catch (err) {
    throw new UsageError(`cannot read --replay file ${path}: ${(err as Error).message}`);
  }
  if (bytes.length < RECORDING_MAGIC.length || !bytes.subarray(0, 8).equals(RECORDING_MAGIC)) {
    throw new UsageError(`--replay file ${path} is not a headertap recording (make one with --record FILE)`);
  }
  return bytes.subarray(RECORDING_MAGIC.length);
}

/** Decodes every event of a recording's payload, in order. */
export function* eventsOf(payload: Buffer, counters?: SourceCounters): Generator<SourceEvent> {
  const reader = new FrameReader();
  const frames: Buffer[] = [];
  reader.push(payload, (f) => frames.push(f));
  for (const f of frames) {
    if (counters) counters.frames++;
    const ev = decodeFrame(f);
    if (typeof ev === 'string') {
      if (counters) counters.decodeErrors++;
      continue;
    }
    yield ev;
  }
}

export interface ReplayOptions {
  /** Events delivered between yields to the event loop. */
  sliceSize?: number;
  /** False while the next stage is full: the replay waits instead of making it drop. */
  canTake?: () => boolean;
}

/** How long a replay waits for the next stage to drain before asking again. */
const BACKPRESSURE_WAIT_MS = 2;

/**
 * Feeds a recording to the pipeline as fast as it can take it, in slices that
 * yield to the event loop so exports keep flowing, and pausing while the
 * next stage says it is full.
 */
export class ReplaySource implements EventSource {
  readonly counters: SourceCounters = { frames: 0, bytes: 0, decodeErrors: 0 };
  readonly ended: Promise<SourceEnd>;
  private _resolveEnded!: (end: SourceEnd) => void;
  private _stopped = false;
  private readonly _sliceSize: number;
  private readonly _canTake: () => boolean;

  constructor(
    private readonly _payload: Buffer,
    opts: ReplayOptions = {},
  ) {
    this._sliceSize = opts.sliceSize ?? 4096;
    this._canTake = opts.canTake ?? (() => true);
    this.ended = new Promise((resolve) => (this._resolveEnded = resolve));
    this.counters.bytes = _payload.length;
  }

  start(handler: (event: SourceEvent) => void): Promise<ReadyEvent> {
    const events = eventsOf(this._payload, this.counters);
    const first = events.next();
    if (first.done || first.value.kind !== 'ready') {
      const msg = 'recording does not start with the loader ready event';
      this._resolveEnded({ reason: 'failed', message: msg });
      return Promise.reject(new UsageError(`--replay: ${msg}`));
    }
    const ready = first.value;
    handler(ready);
    const pump = () => {
      if (!this._stopped && !this._canTake()) {
        setTimeout(pump, BACKPRESSURE_WAIT_MS);
        return;
      }
      for (let i = 0; i < this._sliceSize; i++) {
        if (this._stopped) return this._resolveEnded({ reason: 'stopped' });
        const next = events.next();
        if (next.done) return this._resolveEnded({ reason: 'finished' });
        handler(next.value);
      }
      setImmediate(pump);
    };
    setImmediate(pump);
    return Promise.resolve(ready);
  }

  async stop(): Promise<void> {
    this._stopped = true;
    await this.ended;
  }
}
