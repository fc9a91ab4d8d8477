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
 *
 * Requests are bounded by bytes as well as records (--max-request-bytes):
 * the OpenTelemetry Collector, grpc-go, grpc-js and grpcio refuse gRPC
 * messages over 4 MiB by default, and a batch of 2048 records with a dozen
 * custom headers each is 6 MB. A batch the collector still refuses as too
 * large (its own limit may be lower) is split and sent again, and later
 * batches are cut to the size that passed; a record too large on its own is
 * dropped and counted (too_large), never retried. Spool segments are sent
 * in requests of the same bound, however large the segment.
 *
 * A request that timed out may still have been stored by the collector (one
 * slower than the timeout): it is sent again at most maxTimeoutRetries
 * times, each time with a longer timeout, then given up as `unconfirmed`,
 * never counted as dropped. Later requests keep the longer timeout until
 * answers come quickly again.
 */
import { ExportResultCode, type ExportResult } from '@opentelemetry/core';
import { RateLimitedWarning, type Log } from '../common/log';
import { OtlpLogsEncoder, requestFieldBytes, type EncodedLogExporter, type EncodedLogRecord } from './otlp-logs';
import { BACKOFF_DEFAULTS, backoffDelay, classifyExportError, type BackoffOptions } from './retry';
import type { Spool } from './spool';

export const DELIVERY_DEFAULTS = {
  /** --buffer-records */
  maxRecords: 65536,
  /** --buffer-bytes (the records' encoded size) */
  maxBytes: 64 << 20,
  /** Records per export request. */
  maxBatch: 2048,
  /**
   * --max-request-bytes: an export request's protobuf size at most, before
   * compression (what gRPC receive limits measure): half the 4 MiB that the
   * Collector, grpc-go, grpc-js and grpcio accept by default.
   */
  maxRequestBytes: 2 << 20,
  /** How long a partial batch waits for more records, ms. */
  batchDelayMs: 200,
  /**
   * --export-timeout: how long one export attempt of up to TIMEOUT_SIZE_STEP
   * bytes waits for the collector's answer, ms (longer requests get
   * proportionally longer, and so do attempts after a timeout).
   */
  exportTimeoutMs: 10_000,
  /** Attempts after a timeout that one batch gets at most; then it is counted unconfirmed. */
  maxTimeoutRetries: 2,
};

/** The export timeout covers a request of up to this many bytes; a larger one gets one more timeout per step. */
export const TIMEOUT_SIZE_STEP = 4 << 20;
/** After timeouts the export timeout doubles, up to this many times the configured one. */
const MAX_TIMEOUT_SCALE = 8;
/** How long shutdown waits for the exporter to close (it waits for an unanswered export), ms. */
const EXPORTER_CLOSE_MS = 2000;
/** A request larger than the collector accepted is never cut below this (a collector refusing less is broken). */
const MIN_LEARNED_REQUEST_BYTES = 16 << 10;

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
  | 'spool_corrupt'
  /** the record alone is larger than --max-request-bytes, or than the collector accepts */
  | 'too_large';

export const DROP_REASONS: readonly DropReason[] = ['buffer_full', 'rejected', 'shutdown', 'spool_full', 'spool_corrupt', 'too_large'];

export interface DeliveryCounters {
  /** Records handed to the buffer (add()). */
  accepted: number;
  /** Records the collector accepted. */
  exported: number;
  /** Records dropped, by reason. */
  dropped: Record<DropReason, number>;
  /**
   * Records whose export got no answer in time, attempt after attempt, and
   * were given up (or were still unanswered at shutdown): the collector may
   * have stored them, so they are not counted as dropped.
   */
  unconfirmed: number;
  /** Export attempts that failed and were retried. */
  retries: number;
  /** Of those, retries after a timeout (the collector may have the records already). */
  retriedAfterTimeout: number;
  /** Batches split in two because the collector refused them as too large. */
  splits: number;
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
  /** Sizes the requests (resource and scope fields; default: one of its own); the pipeline shares its encoder, and its caches. */
  encoder?: OtlpLogsEncoder;
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
  /** The export request's size at most (RequestSize). */
  requestBytes: number;
  /** Set when the batch came from the spool: its segment id. */
  spoolId?: number;
  /** Records it accounts for in its spool segment: its own, and ones dropped as too large before it. */
  covers: number;
  /** Attempts that got no answer in time. */
  timeouts: number;
}

function newCounters(): DeliveryCounters {
  const dropped = {} as Record<DropReason, number>;
  for (const r of DROP_REASONS) dropped[r] = 0;
  return { accepted: 0, exported: 0, dropped, unconfirmed: 0, retries: 0, retriedAfterTimeout: 0, splits: 0, failedExports: 0, spooled: 0 };
}

/**
 * The size of an export request as records are added to it, before it is
 * encoded: each record's field, plus each resource-and-scope group's
 * overhead once (OtlpLogsEncoder.groupBytes). An upper bound, within a few
 * bytes per group of the real size.
 */
class RequestSize {
  bytes = 0;
  private readonly _groups = new Map<Entry['resource'], Set<Entry['scope']>>();

  constructor(private readonly _encoder: OtlpLogsEncoder) {}

  /** What adding `e` would add. */
  cost(e: Entry): number {
    const group = this._groups.get(e.resource)?.has(e.scope) ? 0 : this._encoder.groupBytes(e.resource, e.scope);
    return requestFieldBytes(e) + group;
  }

  add(e: Entry, cost: number): void {
    this.bytes += cost;
    let scopes = this._groups.get(e.resource);
    if (!scopes) this._groups.set(e.resource, (scopes = new Set()));
    scopes.add(e.scope);
  }
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

  peek(): Entry | undefined {
    return this._head < this._items.length ? this._items[this._head] : undefined;
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
  /** Batches cut already, sent before anything else: a split batch's parts, a spool segment's requests. */
  private readonly _ready: Batch[] = [];
  /** An export attempt is waiting for its answer. */
  private _attempting = false;
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
  private readonly _encoder: OtlpLogsEncoder;
  /** Requests are cut to this size: --max-request-bytes, or less once the collector refused one as too large. */
  private _requestLimit: number;
  /** The export timeout is multiplied by this: doubled after a timeout, halved again after quick answers. */
  private _timeoutScale = 1;

  constructor(private readonly _opts: DeliveryOptions) {
    this._exporter = _opts.exporter;
    this._o = {
      maxRecords: _opts.maxRecords ?? DELIVERY_DEFAULTS.maxRecords,
      maxBytes: _opts.maxBytes ?? DELIVERY_DEFAULTS.maxBytes,
      maxBatch: _opts.maxBatch ?? DELIVERY_DEFAULTS.maxBatch,
      maxRequestBytes: _opts.maxRequestBytes ?? DELIVERY_DEFAULTS.maxRequestBytes,
      batchDelayMs: _opts.batchDelayMs ?? DELIVERY_DEFAULTS.batchDelayMs,
      exportTimeoutMs: _opts.exportTimeoutMs ?? DELIVERY_DEFAULTS.exportTimeoutMs,
      maxTimeoutRetries: _opts.maxTimeoutRetries ?? DELIVERY_DEFAULTS.maxTimeoutRetries,
    };
    this._o.maxBatch = Math.max(1, Math.min(this._o.maxBatch, this._o.maxRecords));
    this._requestLimit = this._o.maxRequestBytes;
    this._encoder = _opts.encoder ?? new OtlpLogsEncoder();
    this._backoff = { ...BACKOFF_DEFAULTS, ..._opts.backoff };
    this._warning = new RateLimitedWarning(_opts.log, 10_000);
    this._spooledAtStart = _opts.spool?.stats.records ?? 0;
    if (_opts.spool && !_opts.spool.empty) this._schedule(0); // deliver what a previous run left
  }

  /** Records held in memory, the batch in flight included. (Read for every record emitted: no allocation.) */
  get bufferedRecords(): number {
    let n = this._queue.length;
    for (const b of this._ready) if (b.spoolId === undefined) n += b.entries.length;
    if (this._inflight && this._inflight.spoolId === undefined) n += this._inflight.entries.length;
    return n;
  }

  /** Encoded bytes held in memory, the batch in flight included. */
  get bufferedBytes(): number {
    let n = this._queuedBytes;
    for (const b of this._ready) n += b.bytes; // 0 for the spool's
    return n + (this._inflight?.bytes ?? 0);
  }

  /** Batches cut from the memory buffer and not delivered yet (not the queue, not the spool's). */
  private _inMemory(): Batch[] {
    const out = this._ready.filter((b) => b.spoolId === undefined);
    if (this._inflight && this._inflight.spoolId === undefined) out.push(this._inflight);
    return out;
  }

  /** Records accepted but neither exported, dropped nor unconfirmed: in memory, in flight or spooled. */
  get pending(): number {
    const c = this.counters;
    let dropped = 0;
    for (const r of DROP_REASONS) dropped += c.dropped[r];
    return c.accepted + this._spooledAtStart - c.exported - dropped - c.unconfirmed;
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
   * when there is one, else it is counted as dropped ('shutdown'), or as
   * unconfirmed when its export is unanswered. Closes the exporter.
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
    // (Batches of the spool's are still there: their segments know how far they got.)
    const inflight = this._inflight;
    const sent = inflight && inflight.spoolId === undefined && (this._attempting || inflight.timeouts > 0) ? inflight.entries : [];
    const unsent = [...this._inMemory().flatMap((b) => (b === inflight && sent.length ? [] : b.entries)), ...this._queue.take(Infinity)];
    this._inflight = undefined;
    this._ready.length = 0;
    this._queuedBytes = 0;
    if (this._opts.spool) this._spill([...sent, ...unsent]);
    else {
      if (sent.length) {
        // Sent, and no answer yet: the collector may have them, so they are not counted as lost.
        this.counters.unconfirmed += sent.length;
        this._opts.log.warn(`${sent.length} records sent to ${this._opts.destination} were not confirmed before the shutdown timeout`);
      }
      if (unsent.length) {
        this.counters.dropped.shutdown += unsent.length;
        this._opts.log.warn(`${unsent.length} records not delivered to ${this._opts.destination} before the shutdown timeout`);
      }
    }
    // Closing waits for exports in progress; one unanswered at the deadline is not waited for long.
    await Promise.race([this._exporter.shutdown().catch(() => {}), new Promise((r) => setTimeout(r, EXPORTER_CLOSE_MS).unref())]);
  }

  /** Drop oldest (or move them to the spool) until the bounds hold. */
  private _enforceBound(): void {
    const over = () => this.bufferedRecords > this._o.maxRecords || this.bufferedBytes > this._o.maxBytes;
    if (!over()) return;
    if (this._opts.spool) {
      // Move the oldest queued records to disk, one request's worth at a time.
      while (over() && this._queue.length > 0) {
        const batch = this._takeQueued();
        if (batch) this._spill(batch.entries);
      }
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

  /**
   * Cuts one request from the front of a list of records (`peek` the next,
   * `take` it): as many as fit `limit` bytes and maxBatch records, one at
   * least. A record larger than --max-request-bytes on its own is dropped
   * (too_large) on the way; `covers` counts it with the batch after it.
   * Undefined once the list is used up.
   */
  private _cut(peek: () => Entry | undefined, take: () => Entry, limit: number): Batch | undefined {
    let dropped = 0;
    for (;;) {
      const size = new RequestSize(this._encoder);
      const entries: Entry[] = [];
      let bytes = 0;
      for (let e = peek(); e && entries.length < this._o.maxBatch; e = peek()) {
        const cost = size.cost(e);
        if (entries.length > 0 && size.bytes + cost > limit) break;
        size.add(e, cost);
        entries.push(take());
        bytes += e.bytes.length;
      }
      if (entries.length === 0) {
        this._droppedAtEnd = dropped;
        return undefined;
      }
      if (entries.length > 1 || size.bytes <= this._o.maxRequestBytes) {
        return { entries, bytes, requestBytes: size.bytes, timeouts: 0, covers: dropped + entries.length };
      }
      this._dropTooLarge(1, size.bytes, `it alone is larger than --max-request-bytes (${this._o.maxRequestBytes})`);
      dropped++;
    }
  }

  /** Records _cut() dropped after the last batch it returned. */
  private _droppedAtEnd = 0;

  /** Cuts a list of records into requests. */
  private _cutAll(records: readonly Entry[], limit: number): Batch[] {
    const out: Batch[] = [];
    let i = 0;
    for (let b = this._cut(() => records[i], () => records[i++], limit); b; b = this._cut(() => records[i], () => records[i++], limit)) out.push(b);
    if (this._droppedAtEnd && out.length) out[out.length - 1].covers += this._droppedAtEnd;
    return out;
  }

  /** The next request's worth of queued records, or undefined when the queue is empty. */
  private _takeQueued(): Batch | undefined {
    return this._cut(
      () => this._queue.peek(),
      () => {
        const e = this._queue.shift()!;
        this._queuedBytes -= e.bytes.length;
        return e;
      },
      this._requestLimit,
    );
  }

  /** A full request waits in the queue: send it without waiting for more. */
  private _queueFull(): boolean {
    return this._queue.length >= this._o.maxBatch || this._queuedBytes >= this._requestLimit;
  }

  private _dropTooLarge(records: number, requestBytes: number, why: string): void {
    this.counters.dropped.too_large += records;
    this._warning.warn(`dropped ${records} record${records === 1 ? '' : 's'} of ${requestBytes} bytes: ${why}; lower --max-header-bytes or capture fewer headers`);
  }

  /** Writes records to the spool, one request's worth per segment. */
  private _spill(entries: Entry[]): void {
    const spool = this._opts.spool!;
    for (const batch of this._cutAll(entries, this._requestLimit)) {
      try {
        const lost = spool.append(batch.entries);
        this.counters.spooled += batch.entries.length;
        if (lost) {
          this.counters.dropped.spool_full += lost;
          this._warning.warn(`spool ${spool.dir} full: deleted the ${lost} oldest records; raise --spool-max-bytes`);
        }
      } catch (err) {
        this.counters.dropped.buffer_full += batch.entries.length;
        this._warning.warn(`cannot write to spool ${spool.dir}: ${(err as Error).message}; ${batch.entries.length} records dropped`);
      }
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
    if (
      !this._pumping &&
      !this._timer &&
      this._queue.length === 0 &&
      this._ready.length === 0 &&
      !this._inflight &&
      (this._giveUp || !this._hasSpooled())
    ) {
      return Promise.resolve();
    }
    return new Promise((resolve) => this._idleWaiters.push(resolve));
  }

  private _hasSpooled(): boolean {
    return !!this._opts.spool && !this._opts.spool.empty;
  }

  private _nextBatch(): Batch | undefined {
    const ready = this._ready.shift();
    if (ready) return ready;
    const spool = this._opts.spool;
    if (spool && !spool.empty && !this._giveUp) {
      const seg = spool.peek();
      this.counters.dropped.spool_corrupt = spool.corrupt;
      if (seg) {
        // A request at a time, however large the segment (an earlier version wrote up to a whole buffer in one).
        const batches = this._cutAll(seg.records, this._requestLimit);
        if (batches.length === 0) spool.consume(seg.id, seg.records.length); // all too large
        for (const b of batches) this._ready.push({ ...b, bytes: 0, spoolId: seg.id });
        return this._nextBatch();
      }
    }
    if (this._queue.length === 0 || (!this._queueFull() && this._flushing === 0 && !this._batchDue)) return undefined;
    return this._takeQueued();
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
      if (this._queue.length > 0 && !this._giveUp) this._schedule(this._queueFull() ? 0 : this._o.batchDelayMs);
      if (!this._timer || this._giveUp) for (const w of this._idleWaiters.splice(0)) w();
    }
  }

  /** The records of a batch are accounted for (delivered, refused or given up): a spool batch's segment learns it. */
  private _settled(batch: Batch): void {
    if (batch.spoolId !== undefined) this._opts.spool!.consume(batch.spoolId, batch.covers);
  }

  /**
   * Sends one batch until it is accepted, rejected, split, given up after
   * timeouts, or shutdown gives up; false only in that last case.
   */
  private async _deliver(batch: Batch): Promise<boolean> {
    const records = batch.entries;
    for (let attempt = 0; ; attempt++) {
      const timeoutMs = this._timeoutFor(batch);
      const started = Date.now();
      this._attempting = true;
      const result = await this._exportOnce(records, timeoutMs);
      this._attempting = false;
      if (this._abandoned) return false;
      if (result.code === ExportResultCode.SUCCESS) {
        this.counters.exported += records.length;
        this._settled(batch);
        // Quick answers again after timeouts: shorten the timeout step by step.
        if (this._timeoutScale > 1 && Date.now() - started < timeoutMs / 4) this._timeoutScale /= 2;
        return true;
      }
      this.counters.failedExports++;
      const failure = classifyExportError(result.error);
      const cause = result.error?.message?.split('\n')[0] ?? failure.kind;
      if (failure.tooLarge) {
        this._refusedAsTooLarge(batch, cause);
        return true;
      }
      if (!failure.retryable) {
        this.counters.dropped.rejected += records.length;
        this._settled(batch);
        this._warning.warn(`${this._opts.destination} rejected ${records.length} records (${failure.kind}), not retrying: ${cause}`);
        return true;
      }
      if (failure.timedOut) {
        batch.timeouts++;
        this._timeoutScale = Math.min(MAX_TIMEOUT_SCALE, this._timeoutScale * 2);
        if (batch.timeouts > this._o.maxTimeoutRetries) {
          this.counters.unconfirmed += records.length;
          this._settled(batch);
          this._opts.log.warn(
            `${this._opts.destination} did not answer ${batch.timeouts} exports of the same ${records.length} records in time (${cause}); giving them up as unconfirmed: the collector may have stored them, once or more; raise --export-timeout`,
          );
          return true;
        }
      }
      if (this._giveUp) return false;
      if (failure.kind === 'UNAVAILABLE' && this._opts.renewExporter) this._renewExporter();
      const delay = Math.max(failure.serverDelayMs ?? 0, backoffDelay(attempt, this._backoff, this._opts.random));
      this.counters.retries++;
      if (failure.timedOut) this.counters.retriedAfterTimeout++;
      const next = failure.timedOut ? ` with a ${(this._timeoutFor(batch) / 1000).toFixed(1)} s timeout (it may arrive twice)` : '';
      this._warning.warn(
        `export to ${this._opts.destination} failed (${failure.kind}): ${cause}; retrying ${records.length} records in ${(delay / 1000).toFixed(1)} s${next}, ${this.bufferedRecords} records buffered`,
      );
      await this._sleepFor(delay);
      if (this._giveUp) return false;
    }
  }

  /** One attempt's timeout: the configured one per TIMEOUT_SIZE_STEP bytes of request, times the scale timeouts left. */
  private _timeoutFor(batch: Batch): number {
    const steps = Math.max(1, Math.ceil(batch.requestBytes / TIMEOUT_SIZE_STEP));
    return this._o.exportTimeoutMs * steps * this._timeoutScale;
  }

  /**
   * The collector refused the batch for its size: send it again in parts
   * cut to half its size (and cut later batches so too), or, for a single
   * record, drop it (too_large).
   */
  private _refusedAsTooLarge(batch: Batch, cause: string): void {
    const records = batch.entries;
    if (records.length === 1) {
      this._dropTooLarge(1, batch.requestBytes, `${this._opts.destination} refuses it as too large (${cause})`);
      this._settled(batch);
      return;
    }
    const limit = Math.max(MIN_LEARNED_REQUEST_BYTES, Math.floor(batch.requestBytes / 2));
    if (limit < this._requestLimit) {
      this._requestLimit = limit;
      this._opts.log.warn(
        `${this._opts.destination} refused a request of ${batch.requestBytes} bytes as too large (${cause}); sending requests of at most ${limit} bytes from now on; set --max-request-bytes below the collector's limit`,
      );
    }
    const parts = this._cutAll(records, Math.min(limit, Math.floor(batch.requestBytes / 2)));
    if (parts.length === 0) return this._settled(batch);
    // Records this batch stood for beyond its own (dropped ones before it, in a spool segment) go with the first part.
    parts[0].covers += batch.covers - records.length;
    for (const part of parts) {
      if (batch.spoolId === undefined) continue;
      part.bytes = 0;
      part.spoolId = batch.spoolId;
    }
    this.counters.splits++;
    this._ready.unshift(...parts);
  }

  private _renewExporter(): void {
    const old = this._exporter;
    this._exporter = this._opts.renewExporter!();
    void old.shutdown().catch(() => {});
  }

  private _exportOnce(records: EncodedLogRecord[], timeoutMs: number): Promise<ExportResult> {
    return new Promise((resolve) => {
      const guard = setTimeout(() => resolve({ code: ExportResultCode.FAILED, error: new Error('no answer from the exporter in time') }), timeoutMs + 5000);
      guard.unref?.();
      try {
        this._exporter.export(
          records,
          (result) => {
            clearTimeout(guard);
            resolve(result);
          },
          timeoutMs,
        );
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
