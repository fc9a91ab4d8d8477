import { DEFAULT_CAPTURE_HEADERS, DEFAULT_REDACT_HEADERS, ExchangeMapper, HeaderRules } from '../../../src/otel';
import { MonotonicClock } from '../../../src/source';
import { ProcessInfoCache } from '../../../src/workload';

/** A mapper as the agent makes one with default rules, with the clock and the process lookups it reads. */
export function defaultMapper(): { clock: MonotonicClock; processes: ProcessInfoCache; mapper: ExchangeMapper } {
  const clock = new MonotonicClock();
  const processes = new ProcessInfoCache();
  const mapper = new ExchangeMapper({
    rules: new HeaderRules({ capture: DEFAULT_CAPTURE_HEADERS, redact: DEFAULT_REDACT_HEADERS }),
    toHrTime: (ns) => clock.toHrTime(ns),
    processInfo: (pid, comm) => processes.get(pid, comm),
  });
  return { clock, processes, mapper };
}
