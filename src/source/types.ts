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
  /**
   * Opaque id of the kernel socket, unique while it lives; for TLS plaintext
   * (tls true) the id of the TLS session instead (another id space).
   */
  sockId: number;
  /** TLS plaintext from the TLS library, not socket bytes. */
  tls: boolean;
  /**
   * False for TLS plaintext whose socket was not known yet: addresses and
   * ports are then zero and a later event of the session names them.
   */
  hasSocket: boolean;
  /** CLOCK_MONOTONIC nanoseconds. */
  tsNs: number;
  /** TCP sequence number of data[0] (mod 2^32); for TLS, the plaintext offset. */
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

/** A socket that produced data was destroyed (its process closed it and TCP is done with it), or (tls) a TLS session was freed. */
export interface CloseEvent {
  kind: 'close';
  sockId: number;
  tls: boolean;
  tsNs: number;
}

/** A process called execve: its program and libraries may hold TLS functions. */
export interface ExecEvent {
  kind: 'exec';
  pid: number;
  comm: string;
  tsNs: number;
}

/**
 * Who a process is, as the kernel read it in the process's own context at
 * its first data event (before that event): for processes gone before user
 * space can read /proc. Only OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES
 * of its environment are sent.
 */
export interface ProcEvent {
  kind: 'proc';
  pid: number;
  /** The process's start time (kernel ns): a reused pid has another. */
  startNs: number;
  comm: string;
  /** Base name of its executable; '' when unknown. */
  executableName: string;
  /** OTEL_SERVICE_NAME's value ('' when unset or left out, see envCut). */
  serviceName: string;
  /** OTEL_RESOURCE_ATTRIBUTES's value, unparsed ('' when unset or left out). */
  resourceAttributes: string;
  /** The environment could not be read: the two values are unknown, not unset. */
  envUnreadable: boolean;
  /** A value was too long for the kernel's copy, or the environment too long to scan: missing values may be set. */
  envCut: boolean;
}

/**
 * The loader probed a libssl file a process had just opened (the kernel
 * stopped the process until then, when stopped is true).
 */
export interface TlsLearnedEvent {
  kind: 'tls_learned';
  pid: number;
  /** 0, or a negative errno (-2, ENOENT: no TLS functions in the file). */
  err: number;
  /** HT_TLS_FN_* bits of the functions probed. */
  attached: number;
  stopped: boolean;
  /** How long the process was held for the attach (ns). */
  holdNs: number;
  /** "dev:inode" as stat() gives them: the same key as TlsFs.fileKey. */
  fileKey: string;
  path: string;
}

/** The loader's answer to an attach-tls command. */
export interface AttachEvent {
  kind: 'attach';
  requestId: number;
  /** 0, or a negative errno (-2, ENOENT: no TLS functions in the file). */
  err: number;
  /** HT_TLS_FN_* bits of the functions probed. */
  attached: number;
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
  /** HT_KF_* bits: what the kernel offers beyond what headertap needs. */
  features: number;
}

/** Kernel-side counter totals since the loader started. */
export interface KernelCounters {
  dataEvents: number;
  closeEvents: number;
  ringbufLost: number;
  truncated: number;
  copyFailed: number;
  selfSkipped: number;
  /** TLS plaintext events sent before their socket was known. */
  tlsNoSocket: number;
  /** Socket syscalls skipped because they carried TLS ciphertext. */
  ciphertextSkipped: number;
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

export type SourceEvent = DataEvent | CloseEvent | ExecEvent | ProcEvent | TlsLearnedEvent | AttachEvent | ReadyEvent | StatsEvent | CpuStatsEvent;

export interface Endpoint {
  address: string;
  port: number;
}
