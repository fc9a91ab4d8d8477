/**
 * The byte layout of bpf/headertap.h, as TypeScript sees it. The C compiler's
 * view is printed by bpf/layout.c; test/component/layout.test.ts fails when the two
 * disagree. Constants are append-only, like the header's.
 */

/** [offset, size] of each field, named as in the C structs. */
export const LAYOUT = {
  ht_data_event: {
    size: 104 + 16384,
    fields: {
      kind: [0, 1],
      direction: [1, 1],
      source: [2, 1],
      family: [3, 1],
      tgid: [4, 4],
      tid: [8, 4],
      fd: [12, 4],
      sock_id: [16, 8],
      ts_ns: [24, 8],
      seq: [32, 4],
      msg_size: [36, 4],
      buf_size: [40, 4],
      lport: [44, 2],
      rport: [46, 2],
      laddr: [48, 16],
      raddr: [64, 16],
      comm: [80, 16],
      flags: [96, 4],
      buf: [104, 16384],
    },
  },
  ht_close_event: {
    size: 24,
    fields: { kind: [0, 1], sock_id: [8, 8], ts_ns: [16, 8], flags: [1, 1] },
  },
  ht_exec_event: {
    size: 32,
    fields: { kind: [0, 1], tgid: [4, 4], ts_ns: [8, 8], comm: [16, 16] },
  },
  ht_proc_event: {
    size: 32 + 64 + 256 + 1024,
    fields: {
      kind: [0, 1],
      flags: [1, 1],
      tgid: [4, 4],
      start_ns: [8, 8],
      comm: [16, 16],
      exe: [32, 64],
      service_name: [96, 256],
      resource_attributes: [352, 1024],
    },
  },
  ht_tls_open_event: {
    size: 48,
    fields: { kind: [0, 1], flags: [1, 1], tgid: [4, 4], tid: [8, 4], fd: [12, 4], dev: [16, 8], ino: [24, 8], comm: [32, 16] },
  },
  ht_tls_learned_event: {
    size: 40 + 256,
    fields: {
      kind: [0, 1],
      flags: [1, 1],
      tgid: [4, 4],
      err: [8, 4],
      attached: [12, 4],
      hold_ns: [16, 8],
      st_dev: [24, 8],
      st_ino: [32, 8],
      path: [40, 256],
    },
  },
  ht_attach_event: {
    size: 16,
    fields: { kind: [0, 1], request_id: [4, 4], err: [8, 4], attached: [12, 4] },
  },
  ht_ready_event: {
    size: 32,
    fields: {
      kind: [0, 1],
      version: [1, 1],
      loader_pid: [4, 4],
      realtime_offset_ns: [8, 8],
      max_data: [16, 4],
      ringbuf_bytes: [20, 4],
      ncpus: [24, 4],
    },
  },
  ht_stats_event: {
    size: 16 + 8 * 8,
    fields: { kind: [0, 1], realtime_offset_ns: [8, 8], counters: [16, 64] },
  },
  ht_cpu_stats_event: {
    size: 8 + 8 * 8,
    fields: { kind: [0, 1], cpu: [4, 4], counters: [8, 64] },
  },
} as const;

export const CONSTANTS = {
  HT_MAX_DATA: 16384,
  HT_MAX_CHUNKS: 64,
  HT_MAX_COPY: 16384 * 64,
  HT_DATA_HEADER_SIZE: 104,
  HT_COMM_LEN: 16,
  HT_ADDR_LEN: 16,
  HT_LAYOUT_VERSION: 1,
  HT_EV_DATA: 1,
  HT_EV_CLOSE: 2,
  HT_EV_READY: 64,
  HT_EV_STATS: 65,
  HT_EV_EXEC: 3,
  HT_EV_ATTACH: 66,
  HT_EV_CPU_STATS: 67,
  HT_EV_PROC: 4,
  HT_EV_TLS_OPEN: 5,
  HT_EV_TLS_LEARNED: 68,
  HT_TLS_OPEN_STOPPED: 1,
  HT_TLS_PATH_LEN: 256,
  HT_PROC_ENV_UNREADABLE: 1,
  HT_PROC_ENV_CUT: 2,
  HT_EXE_NAME_LEN: 64,
  HT_ENV_SERVICE_LEN: 256,
  HT_ENV_ATTRIBUTES_LEN: 1024,
  HT_DIR_EGRESS: 1,
  HT_DIR_INGRESS: 2,
  HT_SRC_WRITE: 1,
  HT_SRC_WRITEV: 2,
  HT_SRC_SENDTO: 3,
  HT_SRC_SENDMSG: 4,
  HT_SRC_READ: 5,
  HT_SRC_READV: 6,
  HT_SRC_RECVFROM: 7,
  HT_SRC_RECVMSG: 8,
  HT_SRC_SSL_WRITE: 9,
  HT_SRC_SSL_READ: 10,
  HT_FLAG_TLS: 1,
  HT_FLAG_NO_SOCK: 2,
  HT_FLAG_MORE: 4,
  HT_TLS_FN_SSL_WRITE: 1,
  HT_TLS_FN_SSL_READ: 2,
  HT_TLS_FN_SSL_WRITE_EX: 4,
  HT_TLS_FN_SSL_READ_EX: 8,
  HT_TLS_FN_SSL_FREE: 16,
  HT_CNT_DATA_EVENTS: 0,
  HT_CNT_CLOSE_EVENTS: 1,
  HT_CNT_RINGBUF_LOST: 2,
  HT_CNT_TRUNCATED: 3,
  HT_CNT_COPY_FAILED: 4,
  HT_CNT_SELF_SKIPPED: 5,
  HT_CNT_TLS_NO_SOCK: 6,
  HT_CNT_CIPHERTEXT: 7,
  HT_CNT_MAX: 8,
  HT_MAX_FILTER_PIDS: 16,
  HT_MAX_FILTER_COMMS: 8,
  HT_MAX_FILTER_PORTS: 16,
  HT_MAX_FILTER_CGROUPS: 8,
  HT_MAX_SELF_PIDS: 8,
  HT_RINGBUF_KB_DEFAULT: 16384,
  HT_RINGBUF_KB_MIN: 64,
  HT_RINGBUF_KB_MAX: 1 << 22,
} as const;

/**
 * What headertap.h fixes for the loader's options, so the agent checks the
 * same limits and gives the same defaults (src/cli/options.ts).
 */
export const LOADER_LIMITS = {
  /** --pid, --comm, --port, --cgroup values at most (the kernel's filter tables). */
  pids: CONSTANTS.HT_MAX_FILTER_PIDS,
  comms: CONSTANTS.HT_MAX_FILTER_COMMS,
  ports: CONSTANTS.HT_MAX_FILTER_PORTS,
  cgroups: CONSTANTS.HT_MAX_FILTER_CGROUPS,
  /** --ringbuf-kb: default and bounds, a power of two. */
  ringbufKb: { default: CONSTANTS.HT_RINGBUF_KB_DEFAULT, min: CONSTANTS.HT_RINGBUF_KB_MIN, max: CONSTANTS.HT_RINGBUF_KB_MAX },
  /** Bytes copied per syscall at most. */
  copyBytes: CONSTANTS.HT_MAX_DATA,
} as const;

/** Field offsets of ht_data_event, for the decoder's hot path. */
export const DATA = {
  direction: LAYOUT.ht_data_event.fields.direction[0],
  source: LAYOUT.ht_data_event.fields.source[0],
  family: LAYOUT.ht_data_event.fields.family[0],
  tgid: LAYOUT.ht_data_event.fields.tgid[0],
  tid: LAYOUT.ht_data_event.fields.tid[0],
  fd: LAYOUT.ht_data_event.fields.fd[0],
  sockId: LAYOUT.ht_data_event.fields.sock_id[0],
  tsNs: LAYOUT.ht_data_event.fields.ts_ns[0],
  seq: LAYOUT.ht_data_event.fields.seq[0],
  msgSize: LAYOUT.ht_data_event.fields.msg_size[0],
  bufSize: LAYOUT.ht_data_event.fields.buf_size[0],
  lport: LAYOUT.ht_data_event.fields.lport[0],
  rport: LAYOUT.ht_data_event.fields.rport[0],
  laddr: LAYOUT.ht_data_event.fields.laddr[0],
  raddr: LAYOUT.ht_data_event.fields.raddr[0],
  comm: LAYOUT.ht_data_event.fields.comm[0],
  flags: LAYOUT.ht_data_event.fields.flags[0],
  buf: LAYOUT.ht_data_event.fields.buf[0],
} as const;
