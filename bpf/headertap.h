/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * The kernel/user boundary of headertap: every byte layout shared by the BPF
 * programs (headertap.bpf.c), the loader (loader.c) and the TypeScript decoder
 * (src/source/layout.ts). Only fixed-width types, explicit padding, sizes
 * checked with _Static_assert. test/component/layout.test.ts compares this file with
 * layout.ts through bpf/layout.c: change both or the test fails.
 *
 * Event kinds, sources, directions and counter indices are append-only: never
 * renumber, recordings (--record) and older agents depend on them.
 */
#ifndef __HEADERTAP_H
#define __HEADERTAP_H

/* Bytes one data event carries at most. A power of two (the BPF side masks
 * with it). */
#define HT_MAX_DATA 16384
/* Events one call's bytes are sent in at most, so the most of one call that is
 * copied (--copy-bytes, which the agent sets from --max-header-bytes) is
 * HT_MAX_COPY. Bytes beyond the copy are reported as missing, never guessed. */
#define HT_MAX_CHUNKS 64
#define HT_MAX_COPY (HT_MAX_DATA * HT_MAX_CHUNKS)

#define HT_COMM_LEN 16
#define HT_ADDR_LEN 16 /* IPv6, or IPv4 as ::ffff:a.b.c.d */

/* Filter table sizes (struct ht_filter_set; the loader's set-filters command). */
#define HT_MAX_FILTER_PIDS 16
#define HT_MAX_FILTER_COMMS 8
#define HT_MAX_FILTER_PORTS 16
#define HT_MAX_FILTER_CGROUPS 8 /* cgroup v2 subtrees (a BPF_MAP_TYPE_CGROUP_ARRAY) */
#define HT_MAX_SELF_PIDS 8

/* Ring buffer size in KiB (the loader's --ringbuf-kb, the agent's default and
 * bounds): a power of two; the map's max_entries in bytes. */
#define HT_RINGBUF_KB_DEFAULT 16384
#define HT_RINGBUF_KB_MIN 64
#define HT_RINGBUF_KB_MAX (1 << 22)

/* First byte of every frame: what the event is. */
#define HT_EV_DATA 1   /* bytes moved by a socket syscall (struct ht_data_event) */
#define HT_EV_CLOSE 2  /* a socket (or TLS session) seen before ended (struct ht_close_event) */
#define HT_EV_EXEC 3   /* a process called execve (struct ht_exec_event) */
#define HT_EV_PROC 4   /* a process's identity, read in its context at its first data event (struct ht_proc_event) */
#define HT_EV_TLS_OPEN 5 /* a process opened a libssl file no probe covers yet (struct ht_tls_open_event) */
#define HT_EV_READY 64 /* loader: programs attached (struct ht_ready_event) */
#define HT_EV_STATS 65 /* loader: counter totals, once a second (struct ht_stats_event) */
#define HT_EV_ATTACH 66 /* loader: result of an attach-tls command (struct ht_attach_event) */
#define HT_EV_CPU_STATS 67 /* loader: one CPU's counter totals, after HT_EV_STATS, for CPUs that lost events */
#define HT_EV_TLS_LEARNED 68 /* loader: it probed a libssl a process just opened (struct ht_tls_learned_event) */

/* ht_data_event.direction, from the observed process's point of view. */
#define HT_DIR_EGRESS 1  /* the process sent these bytes */
#define HT_DIR_INGRESS 2 /* the process received these bytes */

/* ht_data_event.source: the call that moved the bytes. */
#define HT_SRC_WRITE 1
#define HT_SRC_WRITEV 2
#define HT_SRC_SENDTO 3
#define HT_SRC_SENDMSG 4
#define HT_SRC_READ 5
#define HT_SRC_READV 6
#define HT_SRC_RECVFROM 7
#define HT_SRC_RECVMSG 8
#define HT_SRC_SSL_WRITE 9 /* SSL_write or SSL_write_ex: TLS plaintext */
#define HT_SRC_SSL_READ 10 /* SSL_read or SSL_read_ex: TLS plaintext */
#define HT_SRC_GO_TLS_WRITE 11 /* Go's crypto/tls.(*Conn).Write: TLS plaintext */
#define HT_SRC_GO_TLS_READ 12  /* Go's crypto/tls.(*Conn).Read: TLS plaintext */

/* ht_data_event.flags and ht_close_event.flags */
#define HT_FLAG_TLS 1      /* TLS plaintext; sock_id names the TLS session (SSL object) */
#define HT_FLAG_NO_SOCK 2  /* the session's socket is not known yet: no addresses, family 0 */
#define HT_FLAG_MORE 4     /* data: the next event carries more bytes of the same call */

/* ht_tls_open_event.flags, ht_tls_learned_event.flags */
#define HT_TLS_OPEN_STOPPED 1 /* the kernel stopped the process (SIGSTOP) until the loader probed the file */

#define HT_TLS_PATH_LEN 256 /* ht_tls_learned_event.path, NUL included */

/* ht_proc_event.flags */
#define HT_PROC_ENV_UNREADABLE 1 /* the environment could not be read (paged out, no mm): no OTEL_* values */
#define HT_PROC_ENV_CUT 2        /* the scan stopped before the environment's end (HT_ENV_STEPS entries), or an
				  * OTEL_* value was longer than its field: that value is left out */

/* ht_proc_event field sizes */
#define HT_EXE_NAME_LEN 64        /* base name of the executable, NUL included (longer ones are cut) */
#define HT_ENV_SERVICE_LEN 256    /* OTEL_SERVICE_NAME's value, NUL included (SDKs take 255 characters at most) */
#define HT_ENV_ATTRIBUTES_LEN 1024 /* OTEL_RESOURCE_ATTRIBUTES's value, NUL included */

/* ht_attach_event.attached: the TLS library functions a target got probes on. */
#define HT_TLS_FN_SSL_WRITE 1
#define HT_TLS_FN_SSL_READ 2
#define HT_TLS_FN_SSL_WRITE_EX 4
#define HT_TLS_FN_SSL_READ_EX 8
#define HT_TLS_FN_SSL_FREE 16
/* Answers to attach-go: Go's crypto/tls.(*Conn) methods (entry and every return). */
#define HT_TLS_FN_GO_WRITE 32
#define HT_TLS_FN_GO_READ 64
#define HT_TLS_FN_GO_CLOSE 128
#define HT_TLS_FN_GO_HANDSHAKE 256 /* crypto/tls.(*Conn).handshakeContext */

/* Attach cookie of a Go entry probe placed on the prologue's stack-check JBE
 * (loader.c attach_go, gotls.bpf.h): its flags tell a restart after growth. */
#define HT_GO_AT_CHECK 1

/* Kernel features the loader found (ht_ready_event.features); none is needed. */
#define HT_KF_KPROBES 1  /* kprobes can be attached (a kprobe PMU); headertap uses none */
#define HT_KF_BPF_LOOP 2 /* the bpf_loop helper (5.17+); the copy uses tail calls either way */

/* Counter indices in the per-CPU ht_counters map; the loader sums CPUs. */
#define HT_CNT_DATA_EVENTS 0  /* data events written to the ring buffer */
#define HT_CNT_CLOSE_EVENTS 1 /* close events written to the ring buffer */
#define HT_CNT_RINGBUF_LOST 2 /* events dropped because the ring buffer was full */
#define HT_CNT_TRUNCATED 3    /* calls whose copy is shorter than what they moved */
#define HT_CNT_COPY_FAILED 4  /* user memory could not be read (the event keeps the bytes read before) */
#define HT_CNT_SELF_SKIPPED 5 /* syscalls skipped as headertap's own traffic */
#define HT_CNT_TLS_NO_SOCK 6  /* TLS plaintext events sent before their socket was known */
#define HT_CNT_CIPHERTEXT 7   /* socket syscalls skipped because they carry TLS ciphertext */
#define HT_CNT_MAX 8

/*
 * One syscall's worth of socket bytes, or a part of it: a call copied beyond
 * HT_MAX_DATA bytes comes as consecutive events (HT_FLAG_MORE on all but the
 * last). `seq` is the TCP sequence number of the first byte
 * (write_seq/copied_seq), so user space sees exactly which bytes it missed:
 * sendfile()d bodies, lost events and the copy limit all show up as a jump,
 * never as silently glued-together streams.
 */
struct ht_data_event {
	__u8 kind;      /* HT_EV_DATA */
	__u8 direction; /* HT_DIR_* */
	__u8 source;    /* HT_SRC_* */
	__u8 family;    /* AF_INET (2) or AF_INET6 (10): the socket's own family */
	__u32 tgid;     /* process id */
	__u32 tid;      /* thread id */
	__s32 fd;
	__u64 sock_id;  /* opaque, unique among live sockets, < 2^52 (exact in a JS number) */
	__u64 ts_ns;    /* CLOCK_MONOTONIC: syscall entry for egress, exit for ingress */
	__u32 seq;      /* TCP sequence number of buf[0]; wraps at 2^32 */
	__u32 msg_size; /* bytes of the call from seq on that this event stands for: the
			 * call's return value, less what earlier events of it carried
			 * (buf_size when HT_FLAG_MORE is set) */
	__u32 buf_size; /* bytes copied into buf: <= msg_size and <= HT_MAX_DATA */
	__u16 lport;    /* local port, host byte order */
	__u16 rport;    /* remote port, host byte order */
	__u8 laddr[HT_ADDR_LEN];
	__u8 raddr[HT_ADDR_LEN];
	char comm[HT_COMM_LEN]; /* the process's name (thread group leader's comm) */
	__u32 flags;            /* HT_FLAG_* */
	__u32 _pad0;
	__u8 buf[HT_MAX_DATA]; /* only buf_size bytes travel */
};
#define HT_DATA_HEADER_SIZE 104 /* offsetof(struct ht_data_event, buf) */

/* A socket that carried data events was destroyed (closed by its process and
 * done with by TCP), or (flags HT_FLAG_TLS) a TLS session was freed. */
struct ht_close_event {
	__u8 kind;  /* HT_EV_CLOSE */
	__u8 flags; /* HT_FLAG_TLS: sock_id is a TLS session id */
	__u8 _pad0[6];
	__u64 sock_id;
	__u64 ts_ns;
};

/* A process replaced its program: user space looks for TLS libraries in it. */
struct ht_exec_event {
	__u8 kind; /* HT_EV_EXEC */
	__u8 _pad0[3];
	__u32 tgid;
	__u64 ts_ns;
	char comm[HT_COMM_LEN];
};

/*
 * Who a process is, read by the kernel in the process's own context at its
 * first data event (once per process, again after an exec): what user space
 * reads from /proc when the process still runs, for processes that are gone
 * by then. Only the two OTEL_* variables leave the kernel, never the rest
 * of the environment.
 */
struct ht_proc_event {
	__u8 kind;  /* HT_EV_PROC */
	__u8 flags; /* HT_PROC_* */
	__u16 _pad0;
	__u32 tgid;
	__u64 start_ns;          /* the process's start (task start_time): tells pid reuse apart */
	char comm[HT_COMM_LEN];  /* as in data events */
	char exe[HT_EXE_NAME_LEN]; /* base name of its executable (mm->exe_file), '' when unknown */
	char service_name[HT_ENV_SERVICE_LEN];          /* OTEL_SERVICE_NAME's value, '' when unset */
	char resource_attributes[HT_ENV_ATTRIBUTES_LEN]; /* OTEL_RESOURCE_ATTRIBUTES's value, '' when unset */
};

/*
 * A process opened a file named libssl.so[.N…] whose (dev, inode) is not in
 * ht_tls_files: a libssl the agent has not probed (a private copy under
 * LD_LIBRARY_PATH, a container's). Sent at the process's first mmap of it,
 * before any of its code ran; with HT_TLS_OPEN_STOPPED the process is
 * stopped until the loader has probed the file (loader.c tls_open()).
 */
struct ht_tls_open_event {
	__u8 kind;  /* HT_EV_TLS_OPEN */
	__u8 flags; /* HT_TLS_OPEN_* */
	__u16 _pad0;
	__u32 tgid;
	__u32 tid;
	__s32 fd;  /* the open file: /proc/TGID/fd/FD */
	__u64 dev; /* the file's super_block s_dev (kernel encoding) */
	__u64 ino;
	char comm[HT_COMM_LEN];
};

/* Key and value of ht_tls_files: libssl files already probed (or found to
 * have no TLS functions, or failed): opening them again stops nothing. */
struct ht_tls_file_key {
	__u64 dev; /* kernel encoding: major << 20 | minor */
	__u64 ino;
};

struct ht_tls_file {
	__s32 err;       /* the attach result: 0 or a negative errno */
	__u32 attached;  /* HT_TLS_FN_* */
};

/* Written by the loader after it probed a file of an HT_EV_TLS_OPEN (and
 * resumed the process): for the agent's list of probed files. */
struct ht_tls_learned_event {
	__u8 kind;  /* HT_EV_TLS_LEARNED */
	__u8 flags; /* HT_TLS_OPEN_STOPPED: the process was held, and resumed */
	__u16 _pad0;
	__u32 tgid;
	__s32 err;      /* as ht_attach_event.err */
	__u32 attached; /* HT_TLS_FN_* */
	__u64 hold_ns;  /* from reading the event to resuming the process (the attach) */
	__u64 st_dev;   /* the file as stat() shows it (user-space encoding) */
	__u64 st_ino;
	char path[HT_TLS_PATH_LEN]; /* where /proc/TGID/fd/FD pointed */
};

/* Written by the loader in answer to "attach-tls ID PATH" (and attach-go, set-filters). */
struct ht_attach_event {
	__u8 kind; /* HT_EV_ATTACH */
	__u8 _pad0[3];
	__u32 request_id; /* the command's ID */
	__s32 err;        /* 0, or a negative errno: -ENOENT means no TLS functions in PATH */
	__u32 attached;   /* HT_TLS_FN_* bits */
};

/* Written by the loader (not the kernel) once every program is attached. */
struct ht_ready_event {
	__u8 kind;    /* HT_EV_READY */
	__u8 version; /* HT_LAYOUT_VERSION */
	__u16 _pad0;
	__u32 loader_pid;
	__s64 realtime_offset_ns; /* CLOCK_REALTIME - CLOCK_MONOTONIC */
	__u32 max_data;           /* bytes copied per syscall at most (--copy-bytes) */
	__u32 ringbuf_bytes;
	__u32 ncpus;
	__u32 features; /* HT_KF_* bits */
};

/* Written by the loader once a second and at exit: totals since start. */
struct ht_stats_event {
	__u8 kind; /* HT_EV_STATS */
	__u8 _pad0[7];
	__s64 realtime_offset_ns; /* refreshed, follows clock adjustments */
	__u64 counters[HT_CNT_MAX];
};

/* Written by the loader after a stats event, one per CPU whose ring-buffer
 * reservations failed: that CPU's totals, so loss under a hot CPU is visible. */
struct ht_cpu_stats_event {
	__u8 kind; /* HT_EV_CPU_STATS */
	__u8 _pad0[3];
	__u32 cpu;
	__u64 counters[HT_CNT_MAX];
};

#define HT_LAYOUT_VERSION 1

/* An address:port of one of headertap's own sockets (key of ht_self_endpoints). */
struct ht_endpoint {
	__u8 addr[HT_ADDR_LEN];
	__u16 port;
	__u16 _pad0;
};

/*
 * One complete set of capture filters: --pid, --comm, --port, --cgroup,
 * combined with AND across kinds and OR within a kind. A count of zero turns
 * that kind off; `any` is zero when every kind is off, so unfiltered capture
 * costs one branch. Shared by the BPF side (maps.bpf.h, two slots in .bss)
 * and the loader, which writes it; never sent to user space.
 */
struct ht_filter_set {
	__u32 any;          /* any kind below is on */
	__u32 n_tgids;
	__u32 n_comms;
	__u32 n_ports;
	__u32 n_cgroups;
	__u32 cgroup_index; /* where this set's cgroups start in ht_cgroup_filter */
	__u32 tgids[HT_MAX_FILTER_PIDS];
	__u16 ports[HT_MAX_FILTER_PORTS]; /* host byte order */
	char comms[HT_MAX_FILTER_COMMS][HT_COMM_LEN];
};

_Static_assert(sizeof(struct ht_data_event) == HT_DATA_HEADER_SIZE + HT_MAX_DATA,
	       "ht_data_event has hidden padding");
_Static_assert(sizeof(struct ht_close_event) == 24, "ht_close_event has hidden padding");
_Static_assert(sizeof(struct ht_exec_event) == 32, "ht_exec_event has hidden padding");
_Static_assert(sizeof(struct ht_proc_event) ==
		       32 + HT_EXE_NAME_LEN + HT_ENV_SERVICE_LEN + HT_ENV_ATTRIBUTES_LEN,
	       "ht_proc_event has hidden padding");
_Static_assert(sizeof(struct ht_tls_open_event) == 48, "ht_tls_open_event has hidden padding");
_Static_assert(sizeof(struct ht_tls_file_key) == 16, "ht_tls_file_key has hidden padding");
_Static_assert(sizeof(struct ht_tls_file) == 8, "ht_tls_file has hidden padding");
_Static_assert(sizeof(struct ht_tls_learned_event) == 40 + HT_TLS_PATH_LEN,
	       "ht_tls_learned_event has hidden padding");
_Static_assert(sizeof(struct ht_attach_event) == 16, "ht_attach_event has hidden padding");
_Static_assert(sizeof(struct ht_ready_event) == 32, "ht_ready_event has hidden padding");
_Static_assert(sizeof(struct ht_stats_event) == 16 + 8 * HT_CNT_MAX,
	       "ht_stats_event has hidden padding");
_Static_assert(sizeof(struct ht_cpu_stats_event) == 8 + 8 * HT_CNT_MAX,
	       "ht_cpu_stats_event has hidden padding");
_Static_assert(sizeof(struct ht_endpoint) == 20, "ht_endpoint has hidden padding");
_Static_assert(sizeof(struct ht_filter_set) ==
		       24 + 4 * HT_MAX_FILTER_PIDS + 2 * HT_MAX_FILTER_PORTS +
			       HT_COMM_LEN * HT_MAX_FILTER_COMMS,
	       "ht_filter_set has hidden padding");

#endif /* __HEADERTAP_H */
