/**
 * The capture filters the kernel applies (--pid, --comm, --port, --cgroup):
 * their value, how the loader is told (flags at start, a set-filters command
 * while running), and how they read in messages.
 */

/** One complete filter set: AND across kinds, OR within a kind, empty = off. */
export interface CaptureFilters {
  pids: readonly number[];
  /** Process names as in /proc/PID/comm (1 to 15 bytes). */
  comms: readonly string[];
  /** Either end of the connection. */
  ports: readonly number[];
  /** cgroup v2 directories (absolute paths): their tasks and those below. */
  cgroups: readonly string[];
}

export const NO_FILTERS: CaptureFilters = { pids: [], comms: [], ports: [], cgroups: [] };

/** Filter values at most per kind (bpf/headertap.h HT_MAX_FILTER_*). */
export const FILTER_LIMITS = { pids: 16, comms: 8, ports: 16, cgroups: 8 } as const;

/** The loader reads commands into a 16 * PATH_MAX buffer (bpf/loader.c); stay well under it. */
const MAX_COMMAND_BYTES = 60_000;

/** Everything but printable ASCII, space and % is escaped: one token per value, one command per line. */
function percentEncode(value: string): string {
  let out = '';
  for (const byte of Buffer.from(value, 'utf8')) {
    out += byte > 0x20 && byte < 0x7f && byte !== 0x25 ? String.fromCharCode(byte) : `%${byte.toString(16).padStart(2, '0')}`;
  }
  return out;
}

/** The arguments of the loader's `set-filters` command (after its ID). */
export function setFiltersArgs(f: CaptureFilters): string {
  const tokens = [
    ...f.pids.map((p) => `pid=${p}`),
    ...f.comms.map((c) => `comm=${percentEncode(c)}`),
    ...f.ports.map((p) => `port=${p}`),
    ...f.cgroups.map((c) => `cgroup=${percentEncode(c)}`),
  ];
  const args = tokens.join(' ');
  if (args.length > MAX_COMMAND_BYTES) throw new RangeError('the --cgroup paths are too long for the loader');
  return args;
}

/** The same filters, in the same order. */
export function sameFilters(a: CaptureFilters, b: CaptureFilters): boolean {
  const same = (x: readonly unknown[], y: readonly unknown[]) => x.length === y.length && x.every((v, i) => v === y[i]);
  return same(a.pids, b.pids) && same(a.comms, b.comms) && same(a.ports, b.ports) && same(a.cgroups, b.cgroups);
}

/** "pid 12, port 8080", or "none (all processes)". */
export function describeFilters(f: CaptureFilters): string {
  const parts = [...f.pids.map((p) => `pid ${p}`), ...f.comms.map((c) => `comm ${c}`), ...f.ports.map((p) => `port ${p}`), ...f.cgroups.map((c) => `cgroup ${c}`)];
  return parts.length ? parts.join(', ') : 'none (all processes)';
}
