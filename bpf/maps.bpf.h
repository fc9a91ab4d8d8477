/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/* Maps, filters and settings shared by every headertap probe. */
#ifndef __HT_MAPS_BPF_H
#define __HT_MAPS_BPF_H

/* Settings fixed at load: read-only globals set by the loader through
 * skel->rodata between open and load. */

/* This agent's own processes (agent, loader): never captured; other agents' traffic is found by ht_self_endpoints. */
const volatile __u32 self_tgids[HT_MAX_SELF_PIDS] = {};
const volatile __u32 n_self_tgids = 0;
/* Bytes copied per syscall at most (<= HT_MAX_COPY), in events of HT_MAX_DATA.
 * Not a load-time constant: the loader changes it while running
 * ("set-copy-bytes", from a live --max-header-bytes); a call reads it once. */
volatile __u32 copy_limit = HT_MAX_DATA;
/* TLS capture (exec events, uprobes); the loader's --no-tls clears it. */
const volatile __u32 tls_capture = 1;
/* Stop a process that opens a libssl not probed yet until the loader probed
 * it (HT_EV_TLS_OPEN); the loader's --no-tls-hold clears it. */
const volatile __u32 tls_hold = 1;
/* Random key mixed into socket ids so kernel addresses never leave the loader. */
const volatile __u64 sock_id_key = 0;
/* Wake the loader only once this many bytes wait in the ring buffer (it also
 * polls every few milliseconds): see ht_wakeup_flags(). */
const volatile __u32 wakeup_bytes = 65536;

/*
 * Capture filters, replaced while running by the loader's set-filters command
 * (loader.c, which says what a switch guarantees). Two slots: a probe reads
 * ht_filter_slot once and judges the whole call by that slot's complete set;
 * the loader fills the other slot, then flips the index. In .bss, so the
 * loader writes them through the skeleton's memory map (no syscall) and
 * probes read them with plain loads; unfiltered capture tests `any` only.
 */
volatile struct ht_filter_set ht_filters[2];
volatile __u32 ht_filter_slot;

/*
 * --cgroup: only tasks in one of these cgroup v2 directories or below them.
 * Index -> cgroup directory fd, filled by the loader; slot s uses indices
 * [s * HT_MAX_FILTER_CGROUPS, (s + 1) * HT_MAX_FILTER_CGROUPS)
 * (ht_filter_set.cgroup_index).
 */
struct {
	__uint(type, BPF_MAP_TYPE_CGROUP_ARRAY);
	__uint(max_entries, 2 * HT_MAX_FILTER_CGROUPS);
	__type(key, __u32);
	__type(value, __u32);
} ht_cgroup_filter SEC(".maps");

/* Events to user space. Size set by the loader (--ringbuf-kb). */
struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, HT_RINGBUF_KB_DEFAULT * 1024);
} ht_events SEC(".maps");

/* HT_CNT_* counters, per CPU so probes never contend; the loader sums them. */
struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, HT_CNT_MAX);
	__type(key, __u32);
	__type(value, __u64);
} ht_counters SEC(".maps");

/* A syscall between its enter and exit tracepoints. */
struct ht_active_io {
	struct sock *sk;
	const void *buf;          /* write/read/sendto/recvfrom buffer, or NULL */
	const struct iovec *iov;  /* writev/readv/sendmsg/recvmsg vector, or NULL */
	__u64 iovcnt;
	__u64 enter_ns;
	/* TCP sequence number of the first byte this call moves, read at entry:
	 * at exit, copied_seq may already count a FIN the same read consumed. */
	__u32 seq;
	__s32 fd;
	__u8 source;    /* HT_SRC_* */
	__u8 direction; /* HT_DIR_* */
	__u8 _pad0[6];
};

/* thread id -> the socket syscall it is in. Entries live for one syscall; the
 * size bounds how many threads can be inside one at the same time. LRU: a
 * thread that never reaches the exit tracepoint (killed inside a blocking
 * call) cannot leak its entry for good. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct ht_active_io);
} ht_active_io SEC(".maps");

/* thread id -> fd of a connect() by one of headertap's own threads. LRU, as above. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 1024);
	__type(key, __u32);
	__type(value, __s32);
} ht_self_connect SEC(".maps");

/*
 * Local address:port of the TCP sockets of every headertap agent on the host
 * -> the struct sock that registered it. Each loader registers its own
 * agent's sockets (self_tgids); a socket whose local end is in here belongs
 * to an agent (its exports, seen by another agent), one whose *peer* is in
 * here is the far end of an agent's traffic (a collector or receiver on this
 * host reading exports): neither is captured. LRU: stale entries age out.
 *
 * Shared between agents: the loader pins it in bpffs (HT_PIN_SELF_ENDPOINTS,
 * see loader.c share_self_endpoints()) and every loader reuses the pinned
 * map. Its key, value and size are part of that contract: change them and
 * the pin's name must change too.
 */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 4096);
	__type(key, struct ht_endpoint);
	__type(value, __u64);
} ht_self_endpoints SEC(".maps");

/* struct sock pointers that produced data events -> 1, so a close event is
 * sent only for sockets user space knows. LRU: bounded under connection floods
 * (user space also evicts idle connections). */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u8);
} ht_seen_socks SEC(".maps");

/*
 * TLS. The uprobes on the TLS library see plaintext and the SSL object; the
 * socket behind it is learned from socket syscalls on the same thread: inside
 * SSL_read/SSL_write when the SSL object owns its socket (curl, nginx,
 * python), or just around the call when it uses memory BIOs (node).
 */

/* Set by the loader once a TLS library has probes: until then the syscall
 * path skips all TLS bookkeeping. */
volatile __u32 tls_enabled = 0;

/* (dev, inode) of libssl files the loader probed, or tried to -> the result.
 * Written by the loader only; an open of any other libssl file is reported
 * (HT_EV_TLS_OPEN). */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 1024);
	__type(key, struct ht_tls_file_key);
	__type(value, struct ht_tls_file);
} ht_tls_files SEC(".maps");

/* An SSL_read/SSL_write call between its uprobe and uretprobe. */
struct ht_ssl_call {
	__u64 ssl;              /* the SSL object (user-space pointer) */
	const void *buf;        /* plaintext buffer */
	__u64 len_ptr;          /* size_t * of SSL_read_ex/SSL_write_ex, else 0 */
	__u64 enter_ns;
	__u8 direction;         /* HT_DIR_* */
	__u8 source;            /* HT_SRC_SSL_* */
	__u8 _pad0[6];
};

/* thread id -> the SSL call it is in. LRU, like ht_active_io: a thread that
 * never returns from the call cannot leak its entry for good. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct ht_ssl_call);
} ht_ssl_calls SEC(".maps");

/* What is known about one TLS session. */
struct ht_ssl_session {
	struct sock *sk;  /* the socket carrying it, NULL until known */
	__u64 pos[2];     /* plaintext bytes so far: [0] sent, [1] received */
	__u8 confirmed;   /* sk was seen under or right after an SSL call, not guessed */
	__u8 emitted;     /* data events went out: SSL_free sends a close event */
	__u8 _pad0[6];
};

/* SSL object pointer -> its session. LRU: sessions never freed age out. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, struct ht_ssl_session);
} ht_ssl_sessions SEC(".maps");

/* struct sock pointer -> 1 for sockets carrying TLS: their syscall bytes are
 * ciphertext and never sent to user space. Cleared when the socket is destroyed. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, __u64);
	__type(value, __u8);
} ht_tls_socks SEC(".maps");

/* The last TCP socket a thread did I/O on, and in which direction. */
struct ht_thread_sock {
	struct sock *sk;
	__u8 direction; /* HT_DIR_* */
	__u8 _pad0[7];
};

/* thread id -> its last socket syscall: a memory-BIO SSL_read decrypts what
 * the thread just read from that socket. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, struct ht_thread_sock);
} ht_thread_last_sock SEC(".maps");

/* thread id -> SSL object whose SSL_write returned without its socket known:
 * with memory BIOs the ciphertext leaves on the thread's next socket write. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u64);
} ht_thread_pending_ssl SEC(".maps");

/*
 * Go's crypto/tls (gotls.bpf.h). Calls are keyed by goroutine: a Read that
 * blocks resumes on another thread.
 */

/* Set by the loader once a Go program has probes: until then the syscall
 * path does not look for Go calls. */
volatile __u32 go_enabled = 0;

/* A goroutine of a process. */
struct ht_go_key {
	__u64 g;    /* the runtime's g pointer (R14 on amd64) */
	__u32 tgid;
	__u32 _pad0;
};

/* goroutine -> the crypto/tls Write or Read it is in (ht_ssl_call.ssl holds
 * the Conn's session key). Sized for servers with many idle keep-alive
 * connections, each a goroutine parked inside Read; LRU, so goroutines that
 * left a call by panic cannot fill it for good. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 65536);
	__type(key, struct ht_go_key);
	__type(value, struct ht_ssl_call);
} ht_go_calls SEC(".maps");

/*
 * How far the copy of one call's bytes got: kept next to the event being
 * built, so a tail call (ht_copy_more) can go on where the last program
 * stopped. Valid from ht_data_begin() until the call's last event is sent.
 */
#define HT_IOV_BATCH 16 /* vector entries read from user memory at once; a power of two */

struct ht_copy_cursor {
	const struct iovec *iov; /* vector calls: the entries; NULL for one buffer */
	__u64 iovcnt;
	__u64 next_iov;     /* index of the next entry to read into batch */
	struct iovec batch[HT_IOV_BATCH]; /* entries read, not all used yet */
	__u32 batch_len;    /* entries in batch */
	__u32 batch_at;     /* the next one to use */
	const __u8 *base;   /* the buffer being copied (the call's own, or an entry's) */
	__u64 len;          /* its length */
	__u64 off;          /* bytes of it copied so far */
	__u32 seq;          /* sequence number of the call's first byte */
	__u32 total;        /* bytes the call moved */
	__u32 want;         /* bytes to copy: total, at most copy_limit */
	__u32 done;         /* bytes sent in earlier events of the call */
	__u32 n;            /* bytes in ev.buf now */
	__u8 failed;        /* user memory could not be read */
	__u8 stop;          /* nothing more can be copied (failed, or the entries ran out) */
	__u8 _pad0[2];
};

/*
 * Where data events are built before bpf_ringbuf_output(): they are too big
 * for the 512-byte stack, and building them here lets only the copied bytes
 * travel. One slot per CPU (the loader sizes it; per-CPU arrays cap values at
 * 32 KiB). Tracepoint programs run with preemption off and the kernel starts
 * no other tracepoint program on the CPU meanwhile (bpf_prog_active), so a
 * slot survives the tail calls of one syscall's copy. The slack after buf
 * keeps every masked copy inside the value, so the verifier can prove bounds
 * without knowing off + len <= HT_MAX_DATA.
 */
struct ht_data_scratch {
	struct ht_copy_cursor cur;
	struct ht_data_event ev;
	__u8 slack[2 * HT_MAX_DATA];
};

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1); /* the loader sets it to the number of possible CPUs */
	__type(key, __u32);
	__type(value, struct ht_data_scratch);
} ht_scratch SEC(".maps");

/*
 * Flags for bpf_ringbuf_output(). By default every event written while the
 * reader sleeps wakes it: an inter-processor interrupt (a VM exit on virtual
 * machines), which costs more than the whole probe, on every syscall of a
 * reader that keeps up. Events are batched instead: the reader is woken when
 * wakeup_bytes are waiting and otherwise finds them at its next poll.
 */
static __always_inline __u64 ht_wakeup_flags(void)
{
	return bpf_ringbuf_query(&ht_events, BPF_RB_AVAIL_DATA) >= wakeup_bytes ? BPF_RB_FORCE_WAKEUP
										  : BPF_RB_NO_WAKEUP;
}

static __always_inline void ht_count(__u32 idx)
{
	__u64 *v = bpf_map_lookup_elem(&ht_counters, &idx);

	if (v)
		*v += 1;
}

#endif /* __HT_MAPS_BPF_H */
