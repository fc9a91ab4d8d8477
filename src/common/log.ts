/**
 * Where headertap's own messages go. Library code takes a Log and never
 * writes to the console itself; the CLI provides one that writes to stderr.
 */
export interface Log {
  info(message: string): void;
  warn(message: string): void;
  debug(message: string): void;
}

/**
 * Repeated warnings (an export failing every second) are printed once per
 * interval with a count of the ones held back.
 */
export class RateLimitedWarning {
  private _lastNs = 0n;
  private _suppressed = 0;

  constructor(
    private readonly _log: Log,
    private readonly _intervalMs: number,
  ) {}

  warn(message: string): void {
    const now = process.hrtime.bigint();
    if (this._lastNs !== 0n && now - this._lastNs < BigInt(this._intervalMs) * 1_000_000n) {
      this._suppressed++;
      return;
    }
    const held = this._suppressed ? ` (${this._suppressed} similar messages held back)` : '';
    this._suppressed = 0;
    this._lastNs = now;
    this._log.warn(message + held);
  }
}
