import type { Log } from '../../src/common/log';

/** A Log that drops every message (tests that check counters, not messages). */
export const silentLog: Log = {
  info: () => {},
  warn: () => {},
  debug: () => {},
};
