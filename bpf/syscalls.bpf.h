/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Socket data on syscalls:* tracepoints. Enter checks the filters and stores
 * the arguments by thread id; exit acts only on success and always deletes.
 * Reads are copied at exit (the buffer is filled then); writes are copied at
 * exit too, once the return value says how many bytes the socket took.
 * Syscalls carrying TLS ciphertext are skipped (tls.bpf.h).
 */
#ifndef __HT_SYSCALLS_BPF_H
#define __HT_SYSCALLS_BPF_H

#define HT_MSG_PEEK 2

static __always_inline int ht_enter_io(int fd, const void *buf, const struct iovec *iov,
				       __u64 iovcnt, __u8 source, __u8 direction)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32, tid = (__u32)id;
	struct ht_active_io io = {};
	volatile struct ht_filter_set *f;
	struct sock *sk;

	if (ht_is_self(tgid)) {
		sk = ht_tcp_sock_of_fd(fd);
		if (sk) {
			ht_register_self_sock(sk);
			ht_count(HT_CNT_SELF_SKIPPED);
		}
		return 0;
	}
	f = ht_filters_now(); /* this call is judged by this one set */
	if (!ht_process_wanted(f, tgid))
		return 0;
	sk = ht_tcp_sock_of_fd(fd);
	if (!sk)
		return 0;
	/* Before the port filter: TLS sessions learn their socket here even when
	 * the port filter then drops them. */
	if (ht_tls_note_syscall(id, sk, direction))
		return 0;
	if (!ht_ports_wanted(f, ht_sk_lport(sk), ht_sk_rport(sk)))
		return 0;

	io.sk = sk;
	io.buf = buf;
	io.iov = iov;
	io.iovcnt = iovcnt;
	io.enter_ns = bpf_ktime_get_ns();
	io.seq = direction == HT_DIR_EGRESS ? BPF_CORE_READ((struct tcp_sock *)sk, write_seq)
					    : BPF_CORE_READ((struct tcp_sock *)sk, copied_seq);
	io.fd = fd;
	io.source = source;
	io.direction = direction;
	bpf_map_update_elem(&ht_active_io, &tid, &io, BPF_ANY);
	return 0;
}

static __always_inline int ht_exit_io(void *ctx, long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	struct ht_active_io *io = bpf_map_lookup_elem(&ht_active_io, &tid);
	struct ht_data_scratch *s;
	struct ht_emit_args a;
	__u64 skp;
	__u8 one = 1;

	if (!io)
		return 0;
	if (ret <= 0) {
		bpf_map_delete_elem(&ht_active_io, &tid);
		return 0;
	}
	/* A process not seen yet: its identity first (proc.bpf.h); this program then starts again. */
	ht_proc_detour(ctx, &ht_proc_sys_progs, io->source);
	a = (struct ht_emit_args){
		.sk = io->sk,
		.buf = io->buf,
		.iov = io->iov,
		.iovcnt = io->iovcnt,
		.conn_id = ht_sock_id(io->sk),
		.ts_ns = io->direction == HT_DIR_EGRESS ? io->enter_ns : bpf_ktime_get_ns(),
		.seq = io->seq,
		.total = ret > 0xffffffffL ? 0xffffffffU : (__u32)ret,
		.fd = io->fd,
		.direction = io->direction,
		.source = io->source,
	};
	skp = (__u64)io->sk;
	/* Everything else first: sending may end this program in a tail call. */
	bpf_map_delete_elem(&ht_active_io, &tid);
	s = ht_data_begin(&a, id);
	if (!s)
		return 0;
	if (!bpf_map_lookup_elem(&ht_seen_socks, &skp))
		bpf_map_update_elem(&ht_seen_socks, &skp, &one, BPF_ANY);
	ht_data_send(ctx, s, &a, HT_COPY_STEPS_FIRST);
	return 0;
}

/* sendmsg/recvmsg: the vector lives in a user_msghdr. */
static __always_inline int ht_enter_msg(int fd, const struct user_msghdr *umsg, __u8 source,
					__u8 direction)
{
	struct user_msghdr msg;

	if (bpf_probe_read_user(&msg, sizeof(msg), umsg))
		return 0;
	return ht_enter_io(fd, NULL, msg.msg_iov, msg.msg_iovlen, source, direction);
}

SEC("tracepoint/syscalls/sys_enter_write")
int ht_enter_write(struct trace_event_raw_sys_enter *ctx)
{
	return ht_enter_io(ctx->args[0], (const void *)ctx->args[1], NULL, 0, HT_SRC_WRITE,
			   HT_DIR_EGRESS);
}

SEC("tracepoint/syscalls/sys_enter_writev")
int ht_enter_writev(struct trace_event_raw_sys_enter *ctx)
{
	return ht_enter_io(ctx->args[0], NULL, (const struct iovec *)ctx->args[1], ctx->args[2],
			   HT_SRC_WRITEV, HT_DIR_EGRESS);
}

SEC("tracepoint/syscalls/sys_enter_sendto")
int ht_enter_sendto(struct trace_event_raw_sys_enter *ctx)
{
	return ht_enter_io(ctx->args[0], (const void *)ctx->args[1], NULL, 0, HT_SRC_SENDTO,
			   HT_DIR_EGRESS);
}

SEC("tracepoint/syscalls/sys_enter_sendmsg")
int ht_enter_sendmsg(struct trace_event_raw_sys_enter *ctx)
{
	return ht_enter_msg(ctx->args[0], (const struct user_msghdr *)ctx->args[1], HT_SRC_SENDMSG,
			    HT_DIR_EGRESS);
}

SEC("tracepoint/syscalls/sys_enter_read")
int ht_enter_read(struct trace_event_raw_sys_enter *ctx)
{
	return ht_enter_io(ctx->args[0], (const void *)ctx->args[1], NULL, 0, HT_SRC_READ,
			   HT_DIR_INGRESS);
}

SEC("tracepoint/syscalls/sys_enter_readv")
int ht_enter_readv(struct trace_event_raw_sys_enter *ctx)
{
	return ht_enter_io(ctx->args[0], NULL, (const struct iovec *)ctx->args[1], ctx->args[2],
			   HT_SRC_READV, HT_DIR_INGRESS);
}

SEC("tracepoint/syscalls/sys_enter_recvfrom")
int ht_enter_recvfrom(struct trace_event_raw_sys_enter *ctx)
{
	/* MSG_PEEK leaves the bytes queued: they are captured by the real read. */
	if (ctx->args[3] & HT_MSG_PEEK)
		return 0;
	return ht_enter_io(ctx->args[0], (const void *)ctx->args[1], NULL, 0, HT_SRC_RECVFROM,
			   HT_DIR_INGRESS);
}

SEC("tracepoint/syscalls/sys_enter_recvmsg")
int ht_enter_recvmsg(struct trace_event_raw_sys_enter *ctx)
{
	if (ctx->args[2] & HT_MSG_PEEK)
		return 0;
	return ht_enter_msg(ctx->args[0], (const struct user_msghdr *)ctx->args[1], HT_SRC_RECVMSG,
			    HT_DIR_INGRESS);
}

/* One exit handler per syscall: each tracepoint needs its own program. */
#define HT_EXIT_PROG(name)                                                                   \
	SEC("tracepoint/syscalls/sys_exit_" #name)                                          \
	int ht_exit_##name(struct trace_event_raw_sys_exit *ctx)                            \
	{                                                                                    \
		return ht_exit_io(ctx, ctx->ret);                                            \
	}

HT_EXIT_PROG(write)
HT_EXIT_PROG(writev)
HT_EXIT_PROG(sendto)
HT_EXIT_PROG(sendmsg)
HT_EXIT_PROG(read)
HT_EXIT_PROG(readv)
HT_EXIT_PROG(recvfrom)
HT_EXIT_PROG(recvmsg)

/* The rest of a vector call's copy (emit.bpf.h): reached only by tail call
 * from the exit programs above, never attached. */
SEC("tracepoint")
int ht_copy_more(void *ctx)
{
	__u32 cpu = bpf_get_smp_processor_id();
	struct ht_data_scratch *s = bpf_map_lookup_elem(&ht_scratch, &cpu);

	if (s)
		ht_copy_run(ctx, s, HT_COPY_STEPS);
	return 0;
}

/*
 * headertap's own connect(): register the local port as soon as the kernel
 * picked it, before a local collector can accept and answer on the other end.
 */
SEC("tracepoint/syscalls/sys_enter_connect")
int ht_enter_connect(struct trace_event_raw_sys_enter *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	__s32 fd = ctx->args[0];

	if (!ht_is_self(id >> 32))
		return 0;
	bpf_map_update_elem(&ht_self_connect, &tid, &fd, BPF_ANY);
	return 0;
}

SEC("tracepoint/syscalls/sys_exit_connect")
int ht_exit_connect(struct trace_event_raw_sys_exit *ctx)
{
	__u32 tid = (__u32)bpf_get_current_pid_tgid();
	__s32 *fd = bpf_map_lookup_elem(&ht_self_connect, &tid);
	struct sock *sk;

	if (!fd)
		return 0;
	/* Non-blocking connect returns -EINPROGRESS with the port already bound. */
	sk = ht_tcp_sock_of_fd(*fd);
	if (sk)
		ht_register_self_sock(sk);
	bpf_map_delete_elem(&ht_self_connect, &tid);
	return 0;
}

#endif /* __HT_SYSCALLS_BPF_H */
