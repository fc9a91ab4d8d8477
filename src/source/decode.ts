import { isUtf8 } from 'node:buffer';
import { CONSTANTS as C, DATA, LAYOUT } from './layout';
import type { AttachEvent, CloseEvent, CpuStatsEvent, DataEvent, ExecEvent, KernelCounters, ProcEvent, ReadyEvent, SourceEvent, StatsEvent, TlsLearnedEvent } from './types';

/** Why a frame could not be decoded; counted, never thrown. */
export type DecodeProblem = 'unknown_kind' | 'short_frame';

export type DecodeResult = SourceEvent | DecodeProblem;

function u64(frame: Buffer, off: number): number {
  return frame.readUInt32LE(off) + frame.readUInt32LE(off + 4) * 0x1_0000_0000;
}

function cString(frame: Buffer, off: number, len: number): string {
  let end = off;
  while (end < off + len && frame[end] !== 0) end++;
  return frame.toString('latin1', off, end);
}

function decodeData(frame: Buffer): DataEvent | DecodeProblem {
  if (frame.length < C.HT_DATA_HEADER_SIZE) return 'short_frame';
  const bufSize = frame.readUInt32LE(DATA.bufSize);
  if (frame.length < C.HT_DATA_HEADER_SIZE + bufSize) return 'short_frame';
  const flags = frame.readUInt32LE(DATA.flags);
  return {
    kind: 'data',
    direction: frame[DATA.direction] === C.HT_DIR_EGRESS ? 'egress' : 'ingress',
    source: frame[DATA.source],
    pid: frame.readUInt32LE(DATA.tgid),
    tid: frame.readUInt32LE(DATA.tid),
    fd: frame.readInt32LE(DATA.fd),
    sockId: u64(frame, DATA.sockId),
    tls: (flags & C.HT_FLAG_TLS) !== 0,
    hasSocket: (flags & C.HT_FLAG_NO_SOCK) === 0,
    tsNs: u64(frame, DATA.tsNs),
    seq: frame.readUInt32LE(DATA.seq),
    msgSize: frame.readUInt32LE(DATA.msgSize),
    data: frame.subarray(DATA.buf, DATA.buf + bufSize),
    localAddr: frame.subarray(DATA.laddr, DATA.laddr + C.HT_ADDR_LEN),
    localPort: frame.readUInt16LE(DATA.lport),
    remoteAddr: frame.subarray(DATA.raddr, DATA.raddr + C.HT_ADDR_LEN),
    remotePort: frame.readUInt16LE(DATA.rport),
    comm: cString(frame, DATA.comm, C.HT_COMM_LEN),
    flags,
  };
}

function decodeClose(frame: Buffer): CloseEvent | DecodeProblem {
  const f = LAYOUT.ht_close_event.fields;
  if (frame.length < LAYOUT.ht_close_event.size) return 'short_frame';
  return {
    kind: 'close',
    sockId: u64(frame, f.sock_id[0]),
    tls: (frame[f.flags[0]] & C.HT_FLAG_TLS) !== 0,
    tsNs: u64(frame, f.ts_ns[0]),
  };
}

function decodeExec(frame: Buffer): ExecEvent | DecodeProblem {
  const f = LAYOUT.ht_exec_event.fields;
  if (frame.length < LAYOUT.ht_exec_event.size) return 'short_frame';
  return {
    kind: 'exec',
    pid: frame.readUInt32LE(f.tgid[0]),
    tsNs: u64(frame, f.ts_ns[0]),
    comm: cString(frame, f.comm[0], C.HT_COMM_LEN),
  };
}

/** Names and environment values as the process has them: UTF-8 when valid, else Latin-1 (as header text). */
function textField(frame: Buffer, off: number, len: number): string {
  let end = off;
  while (end < off + len && frame[end] !== 0) end++;
  const bytes = frame.subarray(off, end);
  return isUtf8(bytes) ? bytes.toString('utf8') : bytes.toString('latin1');
}

function decodeProc(frame: Buffer): ProcEvent | DecodeProblem {
  const f = LAYOUT.ht_proc_event.fields;
  if (frame.length < LAYOUT.ht_proc_event.size) return 'short_frame';
  const flags = frame[f.flags[0]];
  return {
    kind: 'proc',
    pid: frame.readUInt32LE(f.tgid[0]),
    startNs: u64(frame, f.start_ns[0]),
    comm: cString(frame, f.comm[0], C.HT_COMM_LEN),
    executableName: textField(frame, f.exe[0], C.HT_EXE_NAME_LEN),
    serviceName: textField(frame, f.service_name[0], C.HT_ENV_SERVICE_LEN),
    resourceAttributes: textField(frame, f.resource_attributes[0], C.HT_ENV_ATTRIBUTES_LEN),
    envUnreadable: (flags & C.HT_PROC_ENV_UNREADABLE) !== 0,
    envCut: (flags & C.HT_PROC_ENV_CUT) !== 0,
  };
}

function decodeTlsLearned(frame: Buffer): TlsLearnedEvent | DecodeProblem {
  const f = LAYOUT.ht_tls_learned_event.fields;
  if (frame.length < LAYOUT.ht_tls_learned_event.size) return 'short_frame';
  return {
    kind: 'tls_learned',
    pid: frame.readUInt32LE(f.tgid[0]),
    err: frame.readInt32LE(f.err[0]),
    attached: frame.readUInt32LE(f.attached[0]),
    stopped: (frame[f.flags[0]] & C.HT_TLS_OPEN_STOPPED) !== 0,
    holdNs: u64(frame, f.hold_ns[0]),
    fileKey: `${frame.readBigUInt64LE(f.st_dev[0])}:${frame.readBigUInt64LE(f.st_ino[0])}`,
    path: textField(frame, f.path[0], C.HT_TLS_PATH_LEN),
  };
}

function decodeAttach(frame: Buffer): AttachEvent | DecodeProblem {
  const f = LAYOUT.ht_attach_event.fields;
  if (frame.length < LAYOUT.ht_attach_event.size) return 'short_frame';
  return {
    kind: 'attach',
    requestId: frame.readUInt32LE(f.request_id[0]),
    err: frame.readInt32LE(f.err[0]),
    attached: frame.readUInt32LE(f.attached[0]),
  };
}

function decodeReady(frame: Buffer): ReadyEvent | DecodeProblem {
  const f = LAYOUT.ht_ready_event.fields;
  if (frame.length < LAYOUT.ht_ready_event.size) return 'short_frame';
  return {
    kind: 'ready',
    version: frame[f.version[0]],
    loaderPid: frame.readUInt32LE(f.loader_pid[0]),
    realtimeOffsetNs: frame.readBigInt64LE(f.realtime_offset_ns[0]),
    maxData: frame.readUInt32LE(f.max_data[0]),
    ringbufBytes: frame.readUInt32LE(f.ringbuf_bytes[0]),
    ncpus: frame.readUInt32LE(f.ncpus[0]),
    features: frame.readUInt32LE(f.features[0]),
  };
}

function decodeCounters(frame: Buffer, off: number): KernelCounters {
  const at = (i: number) => u64(frame, off + 8 * i);
  return {
    dataEvents: at(C.HT_CNT_DATA_EVENTS),
    closeEvents: at(C.HT_CNT_CLOSE_EVENTS),
    ringbufLost: at(C.HT_CNT_RINGBUF_LOST),
    truncated: at(C.HT_CNT_TRUNCATED),
    copyFailed: at(C.HT_CNT_COPY_FAILED),
    selfSkipped: at(C.HT_CNT_SELF_SKIPPED),
    tlsNoSocket: at(C.HT_CNT_TLS_NO_SOCK),
    ciphertextSkipped: at(C.HT_CNT_CIPHERTEXT),
  };
}

function decodeStats(frame: Buffer): StatsEvent | DecodeProblem {
  const f = LAYOUT.ht_stats_event.fields;
  if (frame.length < LAYOUT.ht_stats_event.size) return 'short_frame';
  const counters = decodeCounters(frame, f.counters[0]);
  return { kind: 'stats', realtimeOffsetNs: frame.readBigInt64LE(f.realtime_offset_ns[0]), counters };
}

function decodeCpuStats(frame: Buffer): CpuStatsEvent | DecodeProblem {
  const f = LAYOUT.ht_cpu_stats_event.fields;
  if (frame.length < LAYOUT.ht_cpu_stats_event.size) return 'short_frame';
  return { kind: 'cpu_stats', cpu: frame.readUInt32LE(f.cpu[0]), counters: decodeCounters(frame, f.counters[0]) };
}

/** One frame (without its length prefix) to an event; the first byte says which. */
export function decodeFrame(frame: Buffer): DecodeResult {
  if (frame.length === 0) return 'short_frame';
  switch (frame[0]) {
    case C.HT_EV_DATA:
      return decodeData(frame);
    case C.HT_EV_CLOSE:
      return decodeClose(frame);
    case C.HT_EV_EXEC:
      return decodeExec(frame);
    case C.HT_EV_PROC:
      return decodeProc(frame);
    case C.HT_EV_TLS_LEARNED:
      return decodeTlsLearned(frame);
    case C.HT_EV_ATTACH:
      return decodeAttach(frame);
    case C.HT_EV_READY:
      return decodeReady(frame);
    case C.HT_EV_STATS:
      return decodeStats(frame);
    case C.HT_EV_CPU_STATS:
      return decodeCpuStats(frame);
    default:
      return 'unknown_kind';
  }
}

const V4_MAPPED_PREFIX = Buffer.from([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);

/** True for ::ffff:a.b.c.d, the form IPv4 addresses take in events. */
export function isV4Mapped(addr: Buffer): boolean {
  return addr.compare(V4_MAPPED_PREFIX, 0, 12, 0, 12) === 0;
}

/**
 * An event address as text: dotted quad for IPv4 (also IPv4 on a dual-stack
 * IPv6 socket, as semantic conventions expect), RFC 5952 form for IPv6.
 */
export function formatAddress(addr: Buffer): string {
  if (isV4Mapped(addr)) return `${addr[12]}.${addr[13]}.${addr[14]}.${addr[15]}`;
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(addr.readUInt16BE(i));
  // Longest run of two or more zero groups becomes "::" (first one on ties).
  let bestStart = -1;
  let bestLen = 1;
  for (let i = 0; i < 8; ) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  const hex = groups.map((g) => g.toString(16));
  if (bestStart < 0) return hex.join(':');
  const head = hex.slice(0, bestStart).join(':');
  const tail = hex.slice(bestStart + bestLen).join(':');
  return `${head}::${tail}`;
}
