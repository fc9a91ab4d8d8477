/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Building and sending data events, shared by the syscall tracepoints (socket
 * bytes) and the TLS uprobes (plaintext).
 */
#ifndef __HT_EMIT_BPF_H
#define __HT_EMIT_BPF_H

#define HT_MAX_IOV 16 /* vector entries copied per call; the rest count as missing bytes */

/* One data event to send. */
struct ht_emit_args {
	struct sock *sk;          /* NULL: TLS plaintext whose socket is not known yet */
	const void *buf;          /* the bytes, or NULL when iov is used */
	const struct iovec *iov;  /* vector calls */
	__u64 iovcnt;
	__u64 conn_id;            /* ht_data_event.sock_id */
	__u64 ts_ns;
	__u32 seq;
	__u32 total;              /* bytes the call moved */
	__s32 fd;
	__u32 flags;              /* HT_FLAG_* */
	__u8 direction;
	__u8 source;
	__u8 _pad0[6];
};

/* Copy up to `limit` of the `total` bytes a vector call moved into dst. */
static __always_inline __u32 ht_copy_iov(__u8 *dst, const struct iovec *iov, __u64 iovcnt,
					 __u32 total, __u32 limit, bool *failed)
{
	__u32 off = 0;

	for (int i = 0; i < HT_MAX_IOV; i++) {
		struct iovec v;
		__u32 n;

		if (i >= iovcnt || off >= total || off >= limit)
			break;
		if (bpf_probe_read_user(&v, sizeof(v), &iov[i])) {
			*failed = true;
			break;
		}
		n = v.iov_len < total - off ? v.iov_len : total - off;
		if (n > limit - off)
			n = limit - off;
		/* Masks are no-ops here (off < limit <= HT_MAX_DATA); they let the
		 * verifier see the copy stays inside buf + slack. */
		if (bpf_probe_read_user(&dst[off & (HT_MAX_DATA - 1)], n & (2 * HT_MAX_DATA - 1),
					v.iov_base)) {
			*failed = true;
			break;
		}
		off += n;
	}
	return off;
}

/*
 * Fills the per-CPU scratch event and sends the header plus the copied bytes.
 * Callers apply --port themselves (the syscall path at entry, the TLS path
 * once it knows the session's socket). Returns false when the event was not
 * sent (headertap's own peer, or the ring was full).
 */
static __always_inline bool ht_send_data(const struct ht_emit_args *a, __u64 id)
{
	__u32 cpu = bpf_get_smp_processor_id();
	struct ht_data_scratch *s = bpf_map_lookup_elem(&ht_scratch, &cpu);
	struct ht_data_event *ev;
	struct sock *sk = a->sk;
	__u32 total = a->total;
	__u32 limit = copy_limit < HT_MAX_DATA ? copy_limit : HT_MAX_DATA;
	bool failed = false;
	__u32 n = 0;

	if (!s)
		return false;
	ev = &s->ev;
	ev->flags = a->flags;
	if (sk) {
		ev->family = ht_sk_addrs(sk, ev->laddr, ev->raddr);
		ev->lport = ht_sk_lport(sk);
		ev->rport = ht_sk_rport(sk);
		if (ht_peer_is_self(ev->raddr, ev->rport)) {
			ht_count(HT_CNT_SELF_SKIPPED);
			return false;
		}
	} else {
		/* User space applies --port once a later event names the socket. */
		__builtin_memset(ev->laddr, 0, HT_ADDR_LEN);
		__builtin_memset(ev->raddr, 0, HT_ADDR_LEN);
		ev->lport = 0;
		ev->rport = 0;
		ev->family = 0;
		ev->flags |= HT_FLAG_NO_SOCK;
		ht_count(HT_CNT_TLS_NO_SOCK);
	}

	ev->kind = HT_EV_DATA;
	ev->direction = a->direction;
	ev->source = a->source;
	ev->tgid = id >> 32;
	ev->tid = (__u32)id;
	ev->fd = a->fd;
	ev->sock_id = a->conn_id;
	ev->_pad0 = 0;
	ev->seq = a->seq;
	ev->ts_ns = a->ts_ns;
	ev->msg_size = total;
	ht_process_comm(ev->comm);

	if (a->buf) {
		n = total < limit ? total : limit;
		if (bpf_probe_read_user(ev->buf, n & (2 * HT_MAX_DATA - 1), a->buf)) {
			failed = true;
			n = 0;
		}
	} else {
		n = ht_copy_iov(ev->buf, a->iov, a->iovcnt, total, limit, &failed);
	}
	n &= 2 * HT_MAX_DATA - 1;
	ev->buf_size = n;
	if (failed)
		ht_count(HT_CNT_COPY_FAILED);
	else if (n < total)
		ht_count(HT_CNT_TRUNCATED);

	if (bpf_ringbuf_output(&ht_events, ev, HT_DATA_HEADER_SIZE + n, ht_wakeup_flags())) {
		ht_count(HT_CNT_RINGBUF_LOST);
		return false;
	}
	ht_count(HT_CNT_DATA_EVENTS);
	return true;
}

/* The end of a connection (flags 0) or of a TLS session (HT_FLAG_TLS) whose id user space knows. */
static __always_inline void ht_send_close(__u64 id, __u8 flags)
{
	struct ht_close_event ev = {};

	ev.kind = HT_EV_CLOSE;
	ev.flags = flags;
	ev.sock_id = id;
	ev.ts_ns = bpf_ktime_get_ns();
	if (bpf_ringbuf_output(&ht_events, &ev, sizeof(ev), ht_wakeup_flags()))
		ht_count(HT_CNT_RINGBUF_LOST);
	else
		ht_count(HT_CNT_CLOSE_EVENTS);
}

#endif /* __HT_EMIT_BPF_H */
