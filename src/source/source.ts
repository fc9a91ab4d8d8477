import type { ReadyEvent, SourceEvent } from './types';

/** How a source ended. */
export interface SourceEnd {
  /** 'stopped': stop() was called; 'finished': a replay ran out; 'failed': the loader died. */
  reason: 'stopped' | 'finished' | 'failed';
  message?: string;
}

/** Counters of the source stage itself (the kernel's arrive in stats events). */
export interface SourceCounters {
  frames: number;
  bytes: number;
  /** Frames that could not be decoded (unknown kind, too short). */
  decodeErrors: number;
}

/** Where events come from: the live loader, or a recording. */
export interface EventSource {
  /** Starts delivering events to handler; resolves once capture is attached. */
  start(handler: (event: SourceEvent) => void): Promise<ReadyEvent>;
  /** Stops capture; resolves after every event already captured was delivered. */
  stop(): Promise<void>;
  /** Resolves when the source ends, whatever the reason. */
  readonly ended: Promise<SourceEnd>;
  readonly counters: SourceCounters;
}
