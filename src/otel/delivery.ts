/**
 * Delivery owned by headertap: a bounded buffer of records in front of the
 * OTLP exporter, batches sent one at a time, retried with exponential backoff
 * and jitter while the failure is retryable, the oldest records dropped (and
 * counted) when the buffer is full, or moved to the on-disk spool when there
 * is one. It replaces BatchLogRecordProcessor, which drops silently when its
 * queue is full, and makes up for the OTLP/gRPC exporter, which never retries.
 *
 * Records of any resource share the buffer: the encoder groups a batch by
 * resource and scope when it writes the request.
 *
 * Records enter already encoded (OTLP protobuf, src/otel/otlp-logs.ts), and
 * the buffer holds those bytes: its byte bound is the records' real size on
 * the wire, memory follows it closely, and record objects are garbage at
 * once instead of surviving until their batch is sent (which made the
 * young-generation collector copy every one of them).
 */
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { RateLimitedWarning, type Log } from '../common/log';
import type { EncodedLogExporter, EncodedLogRecord } from './otlp-logs';
import { BACKOFF_DEFAULTS, backoffDelay, classifyExportError, type BackoffOptions } from './retry';
import type { Spool } from './spool';

export const DELIVERY_DEFAULTS = {
  /** --buffer-records */
  maxRecords: 65536,
  /** --buffer-bytes (the records' encoded size) */
  maxBytes: 64 << 20,
  /** Records per export request. */
  maxBatch: 2048,
  /** How long a partial batch waits for more records, ms. */
  batchDelayMs: 200,
  /** One export attempt gives up after this long, ms (the exporter has its own timeout too). */
  exportTimeoutMs: 15_000,
};

/** Why records were dropped; every drop is counted under one of these. */
export type DropReason =
  /** the buffer was full (and no spool, or the spool was full) */
  | 'buffer_full'
  /** the collector refused the batch with a non-retryable error */
  | 'rejected'
  /** still pending when --shutdown-timeout ran out (no spool) */
  | 'shutdown'
  /** the spool was full: its oldest segment was deleted */
  | 'spool_full'
  /** a spool segment could not be read back */
  | 'spool_corrupt';

export const DROP_REASONS: readonly DropReason[] = ['buffer_full', 'rejected', 'shutdown', 'spool_full', 'spool_corrupt'];

export interface DeliveryCounters {
  /** Records handed to the buffer (add()). */
  accepted: number;
  /** Records the collector accepted. */
  exported: number;
  /** Records dropped, by reason. */
  dropped: Record<DropReason, number>;
  /** Export attempts that failed and were retried. */
  retries: number;
  /** Export attempts that failed (retried or not). */
  failedExports: number;
  /** Records written to the spool. */
  spooled: number;
}

export interface DeliveryOptions extends Partial<typeof DELIVERY_DEFAULTS> {
  exporter: EncodedLogExporter;
  /**
   * A fresh exporter to use after an UNAVAILABLE failure. @grpc/grpc-js
   * keeps a failed connection in its own reconnect backoff (up to 120 s, in a
   * process-wide pool), so a collector that is back would wait for it; a new
   * exporter whose channel differs connects at once.
   */
  renewExporter?: () => EncodedLogExporter;
  log: Log;
  /** Where the collector is, for messages. */
  destination: string;
  spool?: Spool;
  backoff?: Partial<BackoffOptions>;
  random?: () => number;
}

type Entry = EncodedLogRecord;

interface Batch {
  entries: Entry[];
  /** Its entries' bytes held in memory (0 for a batch read back from the spool). */
  bytes: number;
  /** Set when the batch came from the spool: its segment id. */
  spoolId?: number;
}

function newCounters(): DeliveryCounters {
  const dropped = {} as Record<DropReason, number>;
  for (const r of DROP_REASONS) dropped[r] = 0;
  return { accepted: 0, exported: 0, dropped, retries: 0, failedExports: 0, spooled: 0 };
}

/** A FIFO of entries with O(1) push and shift (an array with a moving head). */
class Fifo {
  private _items: Entry[] = [];
  private _head = 0;

  get length(): number {
    return this._items.length - this._head;
  }

  push(e: Entry): void {
    this._items.push(e);
  }

  shift(): Entry | undefined {
    if (this._head >= this._items.length) return undefined;
    const e = this._items[this._head];
    this._items[this._head++] = undefined as unknown as Entry;
    if (this._head > 1024 && this._head * 2 > this._items.length) {
      this._items = this._items.slice(this._head);
      this._head = 0;
    }
    return e;
  }

  take(n: number): Entry[] {
    const out: Entry[] = [];
    while (out.length < n && this.length > 0) out.push(this.shift()!);
    return out;
  }
}

/**
 * The buffer and its sender: add() only queues (never blocks capture); one
 * export is in flight at a time, so records reach the collector in order.
 */
export class DeliveryProcessor {
  readonly counters: DeliveryCounters = newCounters();
  private readonly _o: typeof DELIVERY_DEFAULTS;
  private readonly _backoff: BackoffOptions;
  private readonly _queue = new Fifo();
  private _queuedBytes = 0;
  /** The batch being exported or waiting to be retried. */
  private _inflight?: Batch;
  private _pumping = false;
  private _timer?: NodeJS.Timeout;
  private _sleep?: { timer: NodeJS.Timeout; wake: () => void };
  /** Export everything now (forceFlush/shutdown) instead of waiting for full batches. */
  private _flushing = 0;
  /** Set when shutdown's deadline passed: stop retrying. */
  private _giveUp = false;
  private _shutdown?: Promise<void>;
  private readonly _idleWaiters: (() => void)[] = [];
  private readonly _warning: RateLimitedWarning;
  private _exporter: EncodedLogExporter;

  constructor(private readonly _opts: DeliveryOptions) {
    this._exporter = _opts.exporter;
    this._o = {
      maxRecords: _opts.maxRecords ?? DELIVERY_DEFAULTS.maxRecords,
      maxBytes: _opts.maxBytes ?? DELIVERY_DEFAULTS.maxBytes,
      maxBatch: _opts.maxBatch ?? DELIVERY_DEFAULTS.maxBatch,
      batchDelayMs: _opts.batchDelayMs ?? DELIVERY_DEFAULTS.batchDelayMs,
      exportTimeoutMs: _opts.exportTimeoutMs ?? DELIVERY_DEFAULTS.exportTimeoutMs,
    };
    this._o.maxBatch = Math.max(1, Math.min(this._o.maxBatch, this._o.maxRecords));
    this._backoff = { ...BACKOFF_DEFAULTS, ..._opts.backoff };
    this._warning = new RateLimitedWarning(_opts.log, 10_000);
    this._spooledAtStart = _opts.spool?.stats.records ?? 0;
    if (_opts.spool && !_opts.spool.empty) this._schedule(0); // deliver what a previous run left
  }

  /** Records held in memory, the batch in flight included. */
  get bufferedRecords(): number {
    return this._queue.length + (this._inflight && this._inflight.spoolId === undefined ? this._inflight.entries.length : 0);
  }

  /** Encoded bytes held in memory, the batch in flight included. */
  get bufferedBytes(): number {
    return this._queuedBytes + (this._inflight?.bytes ?? 0);
  }

  /** Records accepted but neither exported nor dropped: in memory, in flight or spooled. */
  get pending(): number {
    const c = this.counters;
    let dropped = 0;
    for (const r of DROP_REASONS) dropped += c.dropped[r];
    return c.accepted + this._spooledAtStart - c.exported - dropped;
  }

  /** Records a previous run left in the spool. */
  private readonly _spooledAtStart: number;

  /** Queues one encoded record. */
  add(entry: EncodedLogRecord): void {
    this.counters.accepted++;
    if (this._shutdown) {
      this.counters.dropped.shutdown++;
      return;
    }
    this._queue.push(entry);
    this._queuedBytes += entry.bytes.length;
    this._enforceBound();
    if (this._queue.length >= this._o.maxBatch) this._schedule(0);
    else this._schedule(this._o.batchDelayMs);
  }

  /** Exports everything queued now; resolves once the queue is empty or shutdown gave up. */
  async forceFlush(): Promise<void> {
    this._flushing++;
    try {
      this._schedule(0);
      await this._idle();
    } finally {
      this._flushing--;
    }
  }

  /**
   * Flushes within `timeoutMs`, then gives up: what is left goes to the spool
   * when there is one, else it is counted as dropped ('shutdown'). Closes the exporter.
   */
  shutdown(timeoutMs = 30_000): Promise<void> {
    this._shutdown ??= this._doShutdown(timeoutMs);
    return this._shutdown;
  }

  private async _doShutdown(timeoutMs: number): Promise<void> {
    this._flushing++;
    const deadline = setTimeout(() => {
      this._giveUp = true;
      this._wakeSleeper();
      for (const w of this._idleWaiters.splice(0)) w(); // an export still in progress is not waited for
    }, timeoutMs);
    try {
      this._schedule(0);
      await this._idle();
    } finally {
      clearTimeout(deadline);
    }
    this._giveUp = true;
    this._abandoned = true;
    // What could not be delivered in time: keep it on disk, or count it.
    const leftover = [...(this._inflight && this._inflight.spoolId === undefined ? this._inflight.entries : []), ...this._queue.take(Infinity)];
    this._inflight = undefined;
    this._queuedBytes = 0;
    if (leftover.length) {
      if (this._opts.spool) this._spill(leftover);
      else {
        this.counters.dropped.shutdown += leftover.length;
        this._opts.log.warn(`${leftover.length} records not delivered to ${this._opts.destination} before the shutdown timeout`);
      }
    }
    await this._exporter.shutdown().catch(() => {});
  }

  /** Drop oldest (or move them to the spool) until the bounds hold. */
  private _enforceBound(): void {
    const over = () => this.bufferedRecords > this._o.maxRecords || this.bufferedBytes > this._o.maxBytes;
    if (!over()) return;
    if (this._opts.spool) {
      // Move the oldest queued records to disk, one batch at a time.
      while (over() && this._queue.length > 0) this._spill(this._takeQueued(this._o.maxBatch).entries);
      return;
    }
    while (over() && this._queue.length > 0) {
      const e = this._queue.shift()!;
      this._queuedBytes -= e.bytes.length;
      this.counters.dropped.buffer_full++;
      this._warning.warn(
        `buffer full (${this._o.maxRecords} records / ${this._o.maxBytes} bytes): dropping the oldest records while ${this._opts.destination} does not keep up; raise --buffer-records/--buffer-bytes or set --spool-dir`,
      );
    }
  }

  private _takeQueued(n: number): Batch {
    const entries = this._queue.take(n);
    let bytes = 0;
    for (const e of entries) bytes += e.bytes.length;
    this._queuedBytes -= bytes;
    return { entries, bytes };
  }

  private _spill(entries: Entry[]): void {
    const spool = this._opts.spool!;
    try {
      const lost = spool.append(entries);
      this.counters.spooled += entries.length;
      if (lost) {
        this.counters.dropped.spool_full += lost;
        this._warning.warn(`spool ${spool.dir} full: deleted the ${lost} oldest records; raise --spool-max-bytes`);
      }
    } catch (err) {
      this.counters.dropped.buffer_full += entries.length;
      this._warning.warn(`cannot write to spool ${spool.dir}: ${(err as Error).message}; ${entries.length} records dropped`);
    }
  }

  private _schedule(delayMs: number): void {
    if (this._pumping) return;
    if (this._timer) {
      if (delayMs > 0) return;
      clearTimeout(this._timer);
    }
    this._timer = setTimeout(() => {
      this._timer = undefined;
      void this._pump();
    }, delayMs);
    this._timer.unref?.();
  }

  private _idle(): Promise<void> {
    if (!this._pumping && !this._timer && this._queue.length === 0 && !this._inflight && (this._giveUp || !this._hasSpooled())) {
      return Promise.resolve();
    }
    return new Promise((resolve) => this._idleWaiters.push(resolve));
  }

  private _hasSpooled(): boolean {
    return !!this._opts.spool && !this._opts.spool.empty;
  }

  private _nextBatch(): Batch | undefined {
    const spool = this._opts.spool;
    if (spool && !spool.empty && !this._giveUp) {
      const seg = spool.peek();
      this.counters.dropped.spool_corrupt = spool.corrupt;
      if (seg) return { entries: seg.records, bytes: 0, spoolId: seg.id };
    }
    const full = this._queue.length >= this._o.maxBatch;
    if (this._queue.length === 0 || (!full && this._flushing === 0 && !this._batchDue)) return undefined;
    return this._takeQueued(this._o.maxBatch);
  }

  /** Shutdown took what was left: a late export answer changes nothing. */
  private _abandoned = false;

  /** The batch timer fired: send a partial batch. */
  private _batchDue = false;

  private async _pump(): Promise<void> {
    if (this._pumping) return;
    this._pumping = true;
    this._batchDue = true;
    try {
      for (;;) {
        const batch = this._inflight ?? this._nextBatch();
        if (!batch) break;
        this._inflight = batch;
        const done = await this._deliver(batch);
        if (!done) break; // gave up (shutdown deadline): leave it in flight for shutdown to keep
        this._inflight = undefined;
      }
    } finally {
      this._pumping = false;
      this._batchDue = false;
      if (this._queue.length > 0 && !this._giveUp) this._schedule(this._queue.length >= this._o.maxBatch ? 0 : this._o.batchDelayMs);
      if (!this._timer || this._giveUp) for (const w of this._idleWaiters.splice(0)) w();
    }
  }

  /** Sends one batch until it is accepted, rejected, or shutdown gives up; false when given up. */
  private async _deliver(batch: Batch): Promise<boolean> {
    const records = batch.entries;
    for (let attempt = 0; ; attempt++) {
      const result = await this._exportOnce(records);
      if (this._abandoned) return false;
      if (result.code === ExportResultCode.SUCCESS) {
        this.counters.exported += records.length;
        if (batch.spoolId !== undefined) this._opts.spool!.remove(batch.spoolId);
        return true;
      }
      this.counters.failedExports++;
      const failure = classifyExportError(result.error);
      const cause = result.error?.message?.split('\n')[0] ?? failure.kind;
      if (!failure.retryable) {
        this.counters.dropped.rejected += records.length;
        if (batch.spoolId !== undefined) this._opts.spool!.remove(batch.spoolId);
        this._warning.warn(`${this._opts.destination} rejected ${records.length} records (${failure.kind}), not retrying: ${cause}`);
        return true;
      }
      if (this._giveUp) return false;
      if (failure.kind === 'UNAVAILABLE' && this._opts.renewExporter) this._renewExporter();
      const delay = Math.max(failure.serverDelayMs ?? 0, backoffDelay(attempt, this._backoff, this._opts.random));
      this.counters.retries++;
      this._warning.warn(
        `export to ${this._opts.destination} failed (${failure.kind}): ${cause}; retrying ${records.length} records in ${(delay / 1000).toFixed(1)} s, ${this.bufferedRecords} records buffered`,
      );
      await this._sleepFor(delay);
      if (this._giveUp) return false;
    }
  }

  private _renewExporter(): void {
    const old = this._exporter;
    this._exporter = this._opts.renewExporter!();
    void old.shutdown().catch(() => {});
  }

  private _exportOnce(records: EncodedLogRecord[]): Promise<ExportResult> {
    return new Promise((resolve) => {
      const guard = setTimeout(
        () => resolve({ code: ExportResultCode.FAILED, error: new Error('no answer from the exporter in time') }),
        this._o.exportTimeoutMs + 5000,
      );
      guard.unref?.();
      try {
        this._exporter.export(records, (result) => {
          clearTimeout(guard);
          resolve(result);
        });
      } catch (err) {
        clearTimeout(guard);
        resolve({ code: ExportResultCode.FAILED, error: err as Error });
      }
    });
  }

  private _sleepFor(ms: number): Promise<void> {
    return new Promise((resolve) => {
      const timer = setTimeout(() => {
        this._sleep = undefined;
        resolve();
      }, ms);
      timer.unref?.(); // a retry alone never keeps the process alive
      this._sleep = { timer, wake: resolve };
    });
  }

  private _wakeSleeper(): void {
    const s = this._sleep;
    if (!s) return;
    clearTimeout(s.timer);
    this._sleep = undefined;
    s.wake();
  }
}
