/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Building and sending data events, shared by the syscall tracepoints (socket
 * bytes) and the TLS uprobes (plaintext).
 */
#ifndef __HT_EMIT_BPF_H
#define __HT_EMIT_BPF_H

/*
 * Vector entries walked per call: UIO_MAXIOV, the most writev/sendmsg/readv/
 * recvmsg accept (more is EINVAL), so no vector call is cut short by the walk.
 * gRPC's C core writes a request in one sendmsg of 20-30 entries.
 */
#define HT_MAX_IOV 1024
/*
 * Copy steps one program runs. A step copies one piece (an entry, or its part
 * up to an event's end) or skips an empty entry. Kernels before 5.17 have no
 * bpf_loop, and the verifier cannot walk a loop of HT_MAX_IOV steps (it gives
 * up at 8192 pending branches), so a syscall exit program runs
 * HT_COPY_STEPS_FIRST steps (most calls need one or two) and ht_copy_more
 * goes on by tail call, HT_COPY_STEPS at a time. A call has at most
 * HT_MAX_IOV + HT_MAX_CHUNKS - 1 pieces: 16 + 17 * 64 steps, 18 programs,
 * within the kernel's 33 per chain. The TLS path (one buffer, up to
 * HT_MAX_CHUNKS pieces) runs HT_COPY_STEPS in its own program.
 */
#define HT_COPY_STEPS_FIRST 16
#define HT_COPY_STEPS HT_MAX_CHUNKS

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

/* Slot 0: ht_copy_more (syscalls.bpf.h), the rest of a long vector walk. */
int ht_copy_more(void *ctx);

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, 1);
	__uint(key_size, sizeof(__u32)); /* no BTF key type: prog arrays take none */
	__array(values, int(void *));
} ht_copy_progs SEC(".maps") = {
	.values = { [0] = (void *)&ht_copy_more },
};

/*
 * Sends ev with its first n buffer bytes as one event of the call: `seq` its
 * first byte, `size` the bytes of the call it stands for (n, plus on the
 * call's last event whatever was not copied).
 */
static __always_inline void ht_output_data(struct ht_data_event *ev, __u32 seq, __u32 size, __u32 n)
{
	n &= 2 * HT_MAX_DATA - 1; /* a no-op (n <= HT_MAX_DATA) the verifier needs */
	ev->seq = seq;
	ev->msg_size = size;
	ev->buf_size = n;
	if (bpf_ringbuf_output(&ht_events, ev, HT_DATA_HEADER_SIZE + n, ht_wakeup_flags()))
		ht_count(HT_CNT_RINGBUF_LOST);
	else
		ht_count(HT_CNT_DATA_EVENTS);
}

/*
 * Up to `steps` steps of the copy the cursor describes; a full event
 * with more of the call to follow is sent at once (HT_FLAG_MORE). True when
 * the copy is complete or cannot go on.
 */
static __always_inline bool ht_copy_steps(struct ht_data_scratch *s, const int steps)
{
	/* The cursor stays in the map value, not in registers: values read back
	 * from memory each step are unknown to the verifier, so every step starts
	 * from the same state and its branches are checked once, not once per
	 * combination of earlier steps' branches. */
	struct ht_copy_cursor *c = &s->cur;
	struct ht_data_event *ev = &s->ev;

	for (int step = 0; step < steps; step++) {
		__u64 len;
		__u32 n;

		if (c->stop || c->done + c->n >= c->want)
			return true;
		if (c->off >= c->len) {
			/* The next vector entry; an empty one takes a step of its own. */
			struct iovec *v;

			if (c->batch_at >= c->batch_len) {
				/* Entries are read HT_IOV_BATCH at a time: one helper call
				 * instead of one per entry. Only entries of the vector are
				 * read (the kernel read them all for the call). */
				__u64 left = c->iovcnt - c->next_iov;
				__u32 size;

				if (!c->iov || c->next_iov >= c->iovcnt) {
					c->stop = 1; /* the call moved more than its buffers hold: impossible */
					return true;
				}
				if (left > HT_IOV_BATCH)
					left = HT_IOV_BATCH;
				size = left * sizeof(struct iovec);
				if (size > sizeof(c->batch))
					size = sizeof(c->batch); /* a no-op the verifier needs */
				if (bpf_probe_read_user(c->batch, size, &c->iov[c->next_iov])) {
					c->failed = c->stop = 1;
					return true;
				}
				c->next_iov += left;
				c->batch_len = left;
				c->batch_at = 0;
			}
			v = &c->batch[c->batch_at & (HT_IOV_BATCH - 1)];
			c->batch_at++;
			c->base = v->iov_base;
			c->len = v->iov_len;
			c->off = 0;
			if (!c->len)
				continue;
		}
		n = c->n;
		len = c->len - c->off;
		if (len > c->want - c->done - n)
			len = c->want - c->done - n;
		if (len > HT_MAX_DATA - n)
			len = HT_MAX_DATA - n;
		/* The masks are no-ops (n < HT_MAX_DATA, len <= HT_MAX_DATA - n); they
		 * let the verifier see the copy stays inside buf + slack. */
		if (bpf_probe_read_user(&ev->buf[n & (HT_MAX_DATA - 1)], len & (2 * HT_MAX_DATA - 1),
					c->base + c->off)) {
			c->failed = c->stop = 1;
			return true;
		}
		c->n = n + len;
		c->off += len;
		if (c->n == HT_MAX_DATA && c->done + HT_MAX_DATA < c->want) {
			/* This event is full and more of the call follows: send it. */
			ev->flags |= HT_FLAG_MORE;
			ht_output_data(ev, c->seq + c->done, HT_MAX_DATA, HT_MAX_DATA);
			c->done += HT_MAX_DATA;
			c->n = 0;
		}
	}
	return c->stop || c->done + c->n >= c->want;
}

/*
 * Fills the per-CPU scratch event's header for one call's bytes. Returns
 * NULL when the call is not sent (headertap's own peer). Callers apply
 * --port themselves (the syscall path at entry, the TLS path once it knows
 * the session's socket), then call ht_data_send().
 */
static __always_inline struct ht_data_scratch *ht_data_begin(const struct ht_emit_args *a, __u64 id)
{
	__u32 cpu = bpf_get_smp_processor_id();
	struct ht_data_scratch *s = bpf_map_lookup_elem(&ht_scratch, &cpu);
	struct ht_data_event *ev;
	struct sock *sk = a->sk;

	if (!s)
		return NULL;
	ev = &s->ev;
	ev->flags = a->flags;
	if (sk) {
		ev->family = ht_sk_addrs(sk, ev->laddr, ev->raddr);
		ev->lport = ht_sk_lport(sk);
		ev->rport = ht_sk_rport(sk);
		/* An agent's socket (another agent's export, seen here), or the
		 * far end of one (a collector on this host reading exports). */
		if (ht_agent_endpoint(ev->raddr, ev->rport) || ht_agent_endpoint(ev->laddr, ev->lport)) {
			ht_count(HT_CNT_SELF_SKIPPED);
			return NULL;
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
	ev->ts_ns = a->ts_ns;
	ht_process_comm(ev->comm);
	return s;
}

/* Sends the call's last event and counts how its copy ended. */
static __always_inline void ht_copy_finish(struct ht_data_scratch *s)
{
	struct ht_copy_cursor *c = &s->cur;
	__u32 done = c->done, n = c->n;

	s->ev.flags &= ~HT_FLAG_MORE;
	if (c->failed)
		ht_count(HT_CNT_COPY_FAILED);
	else if (done + n < c->total)
		ht_count(HT_CNT_TRUNCATED); /* the copy limit; or a tail call failed, never seen */
	ht_output_data(&s->ev, c->seq + done, c->total - done, n);
}

/*
 * Runs the copy the cursor describes, `steps` at a time. With ctx (a syscall
 * exit tracepoint's), a walk longer than that goes on in ht_copy_more by tail
 * call, which does not return. Without (the TLS path: one buffer, done in
 * HT_COPY_STEPS), it returns.
 */
static __always_inline void ht_copy_run(void *ctx, struct ht_data_scratch *s, const int steps)
{
	if (!ht_copy_steps(s, steps) && ctx)
		bpf_tail_call(ctx, &ht_copy_progs, 0); /* returns only if it could not jump */
	ht_copy_finish(s);
}

/*
 * Copies and sends the bytes of the call ht_data_begin() started: up to
 * copy_limit of them (--copy-bytes), as consecutive events of at most
 * HT_MAX_DATA bytes, so a large header block written in one call arrives
 * whole. May end in a tail call: this must be the caller's last action.
 */
static __always_inline void ht_data_send(void *ctx, struct ht_data_scratch *s,
					 const struct ht_emit_args *a, const int steps)
{
	__u32 limit = copy_limit < HT_MAX_COPY ? copy_limit : HT_MAX_COPY;
	__u32 want = a->total < limit ? a->total : limit;
	struct ht_copy_cursor *c = &s->cur;
	const void *buf = a->buf;
	struct iovec v;

	if (!buf && a->iovcnt == 1 && !bpf_probe_read_user(&v, sizeof(v), a->iov))
		buf = v.iov_base; /* one entry: its length is at least what the call moved */
	if (buf && want <= HT_MAX_DATA) {
		/* One buffer and one event, nearly every call: no cursor, no loop. */
		__u32 n = want;

		barrier_var(n); /* keeps the mask below, which the verifier needs */
		if (bpf_probe_read_user(s->ev.buf, n & (2 * HT_MAX_DATA - 1), buf)) {
			ht_count(HT_CNT_COPY_FAILED);
			n = 0;
		} else if (n < a->total) {
			ht_count(HT_CNT_TRUNCATED);
		}
		ht_output_data(&s->ev, a->seq, a->total, n);
		return;
	}

	/* Every cursor field but the batch entries, which batch_len covers. */
	c->iov = a->iov;
	c->iovcnt = a->iovcnt;
	c->next_iov = 0;
	c->batch_len = 0;
	c->batch_at = 0;
	c->seq = a->seq;
	c->total = a->total;
	c->want = want;
	c->base = buf;
	c->len = buf ? want : 0;
	c->off = 0;
	c->done = 0;
	c->n = 0;
	c->failed = 0;
	c->stop = 0;
	ht_copy_run(ctx, s, steps);
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
