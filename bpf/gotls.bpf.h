/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * TLS plaintext of Go programs, from uprobes on crypto/tls.(*Conn).Write and
 * Read (Go does not use OpenSSL). The loader attaches them per program file
 * on request ("attach-go"), at offsets user space found in the program's
 * function table (src/source/go-binary.ts): the entry of each method (its
 * stack check's jump, which the kernel emulates), and Read's return
 * instructions instead of a uretprobe (a uretprobe
 * rewrites the return address on the goroutine's stack, and Go copies
 * stacks when they grow, so the trampoline address would be carried into
 * the new stack and the return could go astray).
 *
 * Go >= 1.17 on x86-64 passes arguments and results in registers
 * (ABIInternal): the receiver in RAX, a []byte's pointer and length in RBX
 * and RCX, the first result (n) in RAX; R14 always holds the running
 * goroutine (g). A call is keyed by process and goroutine, not thread: a
 * Read blocks in the network poller and resumes on whichever thread is free.
 * The same key finds the call from the socket syscalls it makes (tls.bpf.h),
 * through R14 in the syscall's saved user registers: that joins the TLS
 * connection to its socket with no Go struct offsets. Other architectures
 * and older Go are never attached (user space counts and reports them).
 */
#ifndef __HT_GOTLS_BPF_H
#define __HT_GOTLS_BPF_H

#if defined(__TARGET_ARCH_x86)
#define HT_GO_G(regs) ((regs)->r14)
#define HT_GO_ARG1(regs) ((regs)->ax)
#define HT_GO_ARG2(regs) ((regs)->bx)
#define HT_GO_ARG3(regs) ((regs)->cx)
#define HT_GO_RET1(regs) ((regs)->ax)
#define HT_GO_SUPPORTED 1
#else
#define HT_GO_SUPPORTED 0
#endif

/*
 * The session key of a *tls.Conn: Go heaps start at the same address in
 * every process, so the process is mixed in (tgid above bit 42, where amd64
 * Go heaps do not reach), then the bits are spread by an odd multiplier (a
 * bijection) so the keys do not line up with OpenSSL's SSL pointers.
 */
static __always_inline __u64 ht_go_conn_key(__u32 tgid, __u64 conn)
{
	return (conn ^ ((__u64)tgid << 42)) * 0x9E3779B97F4A7C15ULL;
}

#if HT_GO_SUPPORTED
/*
 * True when the probe sits on the prologue's stack-check JBE (cookie
 * HT_GO_AT_CHECK) and the jump will be taken (CF or ZF): the goroutine's
 * stack grows and the function starts again, hitting the probe once more.
 * Only that second visit counts. Kernels without attach cookies (< 5.15)
 * count both; they cannot join Go sockets either (no bpf_task_pt_regs).
 */
static __always_inline bool ht_go_restarts(struct pt_regs *ctx)
{
	if (!bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_get_attach_cookie))
		return false;
	return bpf_get_attach_cookie(ctx) == HT_GO_AT_CHECK && (ctx->flags & (0x01 | 0x40));
}

static __always_inline int ht_go_enter(struct pt_regs *ctx, __u8 source, __u8 direction)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	struct ht_go_key key = { .g = HT_GO_G(ctx), .tgid = tgid };
	struct ht_ssl_call call = {};
	struct ht_ssl_session *sess;
	__u64 conn, len = HT_GO_ARG3(ctx);

	/* A first look, as for OpenSSL: a read is judged at its return. */
	if (ht_go_restarts(ctx) || ht_is_self(tgid) || !ht_process_wanted(ht_filters_now(), tgid))
		return 0;
	/* A write is sent from here: a process not seen yet gets its identity first (proc.bpf.h). */
	if (direction == HT_DIR_EGRESS && len > 0)
		ht_proc_detour(ctx, &ht_proc_uprobe_progs, source);
	conn = ht_go_conn_key(tgid, HT_GO_ARG1(ctx));
	sess = bpf_map_lookup_elem(&ht_ssl_sessions, &conn);
	if (!sess) {
		struct ht_ssl_session fresh = {};

		bpf_map_update_elem(&ht_ssl_sessions, &conn, &fresh, BPF_NOEXIST);
	}
	call.ssl = conn;
	call.buf = (const void *)HT_GO_ARG2(ctx);
	call.enter_ns = bpf_ktime_get_ns();
	call.direction = direction;
	call.source = source;
	if (direction == HT_DIR_INGRESS) {
		bpf_map_update_elem(&ht_go_calls, &key, &call, BPF_ANY);
		return 0;
	}
	/*
	 * A write is sent now, not at a return: the peer may answer (and its
	 * answer be read and sent by another goroutine) before this goroutine
	 * gets a thread back after the syscall, and a response must never reach
	 * user space before its request. Conn.Write sends all of b or fails
	 * (the connection is then broken), so len(b) is what it moves.
	 *
	 * Write's returns get no probes (a return is single-stepped, ~10x the
	 * cost of this entry). So the call is kept for the join only while the
	 * Conn's socket is unknown (a connection older than the agent: its
	 * handshake was not seen), and left behind once Write returns: the
	 * syscall side drops it when this goroutine next uses another socket
	 * (ht_go_current_call). Otherwise any call left by this goroutine goes.
	 */
	if (sess && sess->confirmed)
		bpf_map_delete_elem(&ht_go_calls, &key);
	else
		bpf_map_update_elem(&ht_go_calls, &key, &call, BPF_ANY);
	if (len > 0)
		ht_ssl_emit(&call, id, len, false);
	return 0;
}
#endif

/* func (c *Conn) Write(b []byte) (int, error): entry */
SEC("uprobe")
int ht_go_write(struct pt_regs *ctx)
{
#if HT_GO_SUPPORTED
	return ht_go_enter(ctx, HT_SRC_GO_TLS_WRITE, HT_DIR_EGRESS);
#else
	return 0;
#endif
}

/* func (c *Conn) Read(b []byte) (int, error): entry */
SEC("uprobe")
int ht_go_read(struct pt_regs *ctx)
{
#if HT_GO_SUPPORTED
	return ht_go_enter(ctx, HT_SRC_GO_TLS_READ, HT_DIR_INGRESS);
#else
	return 0;
#endif
}

/* Every return instruction of Read: its buffer is filled now, n in RAX. */
SEC("uprobe")
int ht_go_ret(struct pt_regs *ctx)
{
#if HT_GO_SUPPORTED
	__u64 id = bpf_get_current_pid_tgid();
	struct ht_go_key key = { .g = HT_GO_G(ctx), .tgid = id >> 32 };
	struct ht_ssl_call *call = bpf_map_lookup_elem(&ht_go_calls, &key);
	long n;

	if (!call)
		return 0;
	n = (long)HT_GO_RET1(ctx);
	if (call->direction == HT_DIR_INGRESS && n > 0) {
		ht_proc_detour(ctx, &ht_proc_uprobe_progs, HT_SRC_GO_TLS_READ);
		ht_ssl_emit(call, id, n, false);
	}
	bpf_map_delete_elem(&ht_go_calls, &key);
#endif
	return 0;
}

/*
 * func (c *Conn) handshakeContext(ctx context.Context) error: the handshake,
 * whoever starts it (Handshake, HandshakeContext, the first Read or Write).
 * Its syscalls join the Conn to its socket: its last read may already hold
 * the first request, which the first Read then decrypts with no syscall.
 * No bytes are sent for it. Inside a Read or Write of the same Conn, that
 * call's entry stays (it joins the same socket, and a Read's return needs it).
 */
SEC("uprobe")
int ht_go_handshake(struct pt_regs *ctx)
{
#if HT_GO_SUPPORTED
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	struct ht_go_key key = { .g = HT_GO_G(ctx), .tgid = tgid };
	struct ht_ssl_call call = {}, *prev;
	__u64 conn;

	if (ht_go_restarts(ctx) || ht_is_self(tgid) || !ht_process_wanted(ht_filters_now(), tgid))
		return 0;
	conn = ht_go_conn_key(tgid, HT_GO_ARG1(ctx));
	prev = bpf_map_lookup_elem(&ht_go_calls, &key);
	if (prev && prev->ssl == conn && prev->direction)
		return 0;
	call.ssl = conn;
	call.enter_ns = bpf_ktime_get_ns();
	bpf_map_update_elem(&ht_go_calls, &key, &call, BPF_ANY); /* direction 0: nothing to send */
#endif
	return 0;
}

/* Every return instruction of handshakeContext: only its own entry goes. */
SEC("uprobe")
int ht_go_handshake_ret(struct pt_regs *ctx)
{
#if HT_GO_SUPPORTED
	struct ht_go_key key = { .g = HT_GO_G(ctx), .tgid = bpf_get_current_pid_tgid() >> 32 };
	struct ht_ssl_call *call = bpf_map_lookup_elem(&ht_go_calls, &key);

	if (call && !call->direction)
		bpf_map_delete_elem(&ht_go_calls, &key);
#endif
	return 0;
}

/* func (c *Conn) Close() error: the session ends; the Conn's memory may be reused. */
SEC("uprobe")
int ht_go_close(struct pt_regs *ctx)
{
#if HT_GO_SUPPORTED
	ht_ssl_session_end(ht_go_conn_key(bpf_get_current_pid_tgid() >> 32, HT_GO_ARG1(ctx)));
#endif
	return 0;
}

#endif /* __HT_GOTLS_BPF_H */
