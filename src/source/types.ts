/** What the source stage hands to the next one: decoded kernel and loader events. */

export type Direction = 'egress' | 'ingress';

/** Bytes one socket syscall moved, as the kernel saw them. */
export interface DataEvent {
  kind: 'data';
  /** egress: the process sent the bytes; ingress: it received them. */
  direction: Direction;
  /** HT_SRC_*: which call moved them. */
  source: number;
  pid: number;
  tid: number;
  fd: number;
  /** Opaque id of the kernel socket, unique while it lives. */
  sockId: number;
  /** CLOCK_MONOTONIC nanoseconds. */
  tsNs: number;
  /** TCP sequence number of data[0] (mod 2^32). */
  seq: number;
  /** Bytes the call moved; data.length is smaller when the copy was cut. */
  msgSize: number;
  data: Buffer;
  /** 16-byte addresses, IPv4 as ::ffff:a.b.c.d; see formatAddress(). */
  localAddr: Buffer;
  localPort: number;
  remoteAddr: Buffer;
  remotePort: number;
  /** The process name (/proc/PID/comm). */
  comm: string;
  flags: number;
}

/** A socket that produced data reached TCP_CLOSE. */
export interface CloseEvent {
  kind: 'close';
  sockId: number;
  tsNs: number;
}

/** The loader attached every program. */
export interface ReadyEvent {
  kind: 'ready';
  version: number;
  loaderPid: number;
  /** CLOCK_REALTIME - CLOCK_MONOTONIC, nanoseconds. */
  realtimeOffsetNs: bigint;
  maxData: number;
  ringbufBytes: number;
  ncpus: number;
}

/** Kernel-side counter totals since the loader started. */
export interface KernelCounters {
  dataEvents: number;
  closeEvents: number;
  ringbufLost: number;
  truncated: number;
  copyFailed: number;
  selfSkipped: number;
  /** Calls not captured because a kernel tracking map update failed. */
  mapFull: number;
}

export interface StatsEvent {
  kind: 'stats';
  realtimeOffsetNs: bigint;
  counters: KernelCounters;
}

/** One CPU's counter totals; sent only for CPUs whose ring-buffer reservations failed. */
export interface CpuStatsEvent {
  kind: 'cpu_stats';
  cpu: number;
  counters: KernelCounters;
}

export type SourceEvent = DataEvent | CloseEvent | ReadyEvent | StatsEvent | CpuStatsEvent;

export interface Endpoint {
  address: string;
  port: number;
}
