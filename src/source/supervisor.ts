import type { Log } from '../common/log';
import type { EventSource, SourceCounters, SourceEnd } from './source';
import type { KernelCounters, ReadyEvent, SourceEvent } from './types';

export interface SupervisorOptions<S extends EventSource> {
  /** Makes a fresh source (a new loader process) for every start. */
  create(): S;
  log: Log;
  /** First restart delay and the longest, ms. */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** A loader that ran this long resets the backoff, ms. */
  stableAfterMs?: number;
  /** Called after the old loader died, before the new one starts (forget its connections). */
  onRestart?(reason: string): void;
  /** Called once a new loader is ready (re-attach what the old one had). */
  onRestarted?(source: S): Promise<void>;
}

const ZERO: KernelCounters = {
  dataEvents: 0,
  closeEvents: 0,
  ringbufLost: 0,
  truncated: 0,
  copyFailed: 0,
  selfSkipped: 0,
  tlsNoSocket: 0,
  ciphertextSkipped: 0,
};

function add(a: KernelCounters, b: KernelCounters): KernelCounters {
  const out = { ...a };
  for (const k of Object.keys(out) as (keyof KernelCounters)[]) out[k] += b[k];
  return out;
}

/**
 * Keeps the loader running: when it dies, starts a new one with exponential
 * backoff and says why. Kernel counters are totals per loader; this adds up
 * the loaders' totals so what the agent reports keeps growing across restarts.
 */
export class SupervisedSource<S extends EventSource = EventSource> implements EventSource {
  readonly ended: Promise<SourceEnd>;
  /** Loader restarts so far. */
  restarts = 0;
  private _resolveEnded!: (end: SourceEnd) => void;
  private _current?: S;
  private _stopping = false;
  private _wake?: () => void;
  /** Totals of loaders that ended. */
  private _base: KernelCounters = ZERO;
  private _baseCpu: KernelCounters[] = [];
  /** Latest totals of the running loader. */
  private _last: KernelCounters = ZERO;
  private _lastCpu: KernelCounters[] = [];
  private readonly _baseSource: SourceCounters = { frames: 0, bytes: 0, decodeErrors: 0 };

  constructor(private readonly _opts: SupervisorOptions<S>) {
    this.ended = new Promise((resolve) => (this._resolveEnded = resolve));
  }

  /** The running source, if one runs. */
  get current(): S | undefined {
    return this._current;
  }

  get counters(): SourceCounters {
    const c = this._current?.counters;
    return {
      frames: this._baseSource.frames + (c?.frames ?? 0),
      bytes: this._baseSource.bytes + (c?.bytes ?? 0),
      decodeErrors: this._baseSource.decodeErrors + (c?.decodeErrors ?? 0),
    };
  }

  async start(handler: (event: SourceEvent) => void): Promise<ReadyEvent> {
    const wrapped = (ev: SourceEvent): void => {
      if (ev.kind === 'stats') {
        this._last = ev.counters;
        handler({ ...ev, counters: add(this._base, ev.counters) });
      } else if (ev.kind === 'cpu_stats') {
        this._lastCpu[ev.cpu] = ev.counters;
        handler({ ...ev, counters: add(this._baseCpu[ev.cpu] ?? ZERO, ev.counters) });
      } else handler(ev);
    };
    const ready = await this._startOne(wrapped); // a first failure is the caller's to report
    void this._watch(wrapped, ready);
    return ready;
  }

  async stop(): Promise<void> {
    this._stopping = true;
    this._wake?.();
    await this._current?.stop();
    this._resolveEnded({ reason: 'stopped' });
  }

  private async _startOne(handler: (event: SourceEvent) => void): Promise<ReadyEvent> {
    const source = this._opts.create();
    this._current = source;
    return source.start(handler);
  }

  private async _watch(handler: (event: SourceEvent) => void, firstReady: ReadyEvent): Promise<void> {
    const initial = this._opts.initialBackoffMs ?? 1000;
    const max = this._opts.maxBackoffMs ?? 30_000;
    let delay = initial;
    let ready: ReadyEvent | undefined = firstReady;
    let startedAt = Date.now();
    for (;;) {
      const end = await this._current!.ended;
      if (this._stopping) return;
      this._retire();
      if (end.reason !== 'failed') {
        this._resolveEnded(end);
        return;
      }
      if (ready && Date.now() - startedAt >= (this._opts.stableAfterMs ?? 60_000)) delay = initial;
      const why = end.message ?? 'eBPF loader stopped';
      this._opts.log.warn(`${why}; restarting it in ${(delay / 1000).toFixed(1)} s (restart ${this.restarts + 1})`);
      this._opts.onRestart?.(why);
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        this._wake = () => {
          clearTimeout(timer);
          resolve();
        };
      });
      this._wake = undefined;
      if (this._stopping) return;
      delay = Math.min(max, delay * 2);
      this.restarts++;
      try {
        ready = await this._startOne(handler);
        startedAt = Date.now();
        await this._opts.onRestarted?.(this._current!);
        this._opts.log.info(`eBPF loader restarted (pid ${ready.loaderPid}); capture resumed`);
      } catch (err) {
        ready = undefined;
        this._opts.log.warn(`restarting the eBPF loader failed: ${(err as Error).message}`);
        // its `ended` has resolved as failed: the loop waits and tries again
      }
    }
  }

  /** Folds the dead loader's totals into the base. */
  private _retire(): void {
    this._base = add(this._base, this._last);
    this._last = ZERO;
    this._lastCpu.forEach((c, cpu) => (this._baseCpu[cpu] = add(this._baseCpu[cpu] ?? ZERO, c)));
    this._lastCpu = [];
    const c = this._current?.counters;
    if (c) {
      this._baseSource.frames += c.frames;
      this._baseSource.bytes += c.bytes;
      this._baseSource.decodeErrors += c.decodeErrors;
    }
    this._current = undefined;
  }
}
