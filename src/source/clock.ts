/** OpenTelemetry's [seconds, nanoseconds] time. */
export type HrTime = [number, number];

/**
 * Turns the kernel's CLOCK_MONOTONIC event times into wall-clock time with the
 * offset the loader measures (refreshed once a second, so clock steps are
 * followed). Split into seconds and nanoseconds so nothing is rounded.
 */
export class MonotonicClock {
  private _offSec = 0;
  private _offNs = 0;
  private _known = false;

  setOffset(realtimeMinusMonotonicNs: bigint): void {
    this._offSec = Number(realtimeMinusMonotonicNs / 1_000_000_000n);
    this._offNs = Number(realtimeMinusMonotonicNs % 1_000_000_000n);
    this._known = true;
  }

  get known(): boolean {
    return this._known;
  }

  toHrTime(monoNs: number): HrTime {
    const sec = Math.floor(monoNs / 1e9);
    let ns = monoNs - sec * 1e9 + this._offNs;
    let s = sec + this._offSec;
    if (ns >= 1e9) {
      ns -= 1e9;
      s += 1;
    } else if (ns < 0) {
      ns += 1e9;
      s -= 1;
    }
    return [s, Math.round(ns)];
  }
}
