import type { LogAttributes } from '@opentelemetry/api-logs';
import type { LogRecordProcessor, SdkLogRecord } from '@opentelemetry/sdk-logs';

/** Attributes per record or span; the SDK's default (128) would cut header-heavy requests. */
export const ATTRIBUTE_COUNT_LIMIT = 2048;

/**
 * Hands a record's attributes to the SDK without its per-attribute checks.
 *
 * Logger.emit() passes every attribute through LogRecordImpl.setAttribute,
 * which validates the value (a WeakSet per value), copies every array and
 * counts against the limit: about 10 µs of a record's ~45 µs (see
 * docs/performance.md). headertap's mapper only makes strings, integers,
 * booleans and string arrays, built fresh for each record, so none of that
 * is needed. The pipeline emits without attributes, and this processor, first
 * in the chain, puts the prepared object on the record in onEmit, where the
 * SDK lets a processor modify the record freely. A record with more than
 * `limit` attributes, or an SDK whose record does not take the object, goes
 * through setAttributes() and its limits as before.
 */
export class AttachAttributes implements LogRecordProcessor {
  private _pending?: LogAttributes;
  private _pendingMax?: number;

  constructor(private readonly _limit: number) {}

  /**
   * Emits through `emit` with `attributes` attached to the record it makes.
   * `maxCount`, when known, spares counting them (about 0.7 µs a record).
   */
  emitWith(attributes: LogAttributes, maxCount: number | undefined, emit: () => void): void {
    this._pending = attributes;
    this._pendingMax = maxCount;
    try {
      emit();
    } finally {
      this._pending = undefined;
      this._pendingMax = undefined;
    }
  }

  onEmit(record: SdkLogRecord): void {
    const attrs = this._pending;
    if (!attrs) return;
    this._pending = undefined;
    const fits = this._pendingMax !== undefined && this._pendingMax <= this._limit ? true : withinLimit(attrs, this._limit);
    if (!fits || !replaceAttributes(record, attrs)) record.setAttributes(attrs);
  }

  forceFlush(): Promise<void> {
    return Promise.resolve();
  }

  shutdown(): Promise<void> {
    return Promise.resolve();
  }
}

function withinLimit(attrs: LogAttributes, limit: number): boolean {
  let n = 0;
  for (const key in attrs) {
    if (++n > limit) return false;
    void key;
  }
  return true;
}

/** Sets the record's (empty) attribute object; false when the SDK's record does not allow it. */
function replaceAttributes(record: SdkLogRecord, attrs: LogAttributes): boolean {
  const r = record as unknown as { attributes: LogAttributes };
  if (Object.keys(r.attributes).length !== 0) return false;
  try {
    r.attributes = attrs;
  } catch {
    return false;
  }
  return r.attributes === attrs;
}
