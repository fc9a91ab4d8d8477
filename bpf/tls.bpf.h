/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Joining TLS sessions (SSL objects) to their TCP sockets, without reading
 * the TLS library's private structs (their layout changes between versions):
 *
 *  - socket BIO (curl, nginx, python): SSL_read/SSL_write call read/write on
 *    the socket themselves, so a socket syscall made while the thread is
 *    inside an SSL call belongs to that call's session;
 *  - memory BIO (node): the ciphertext of an SSL_write leaves on the thread's
 *    next socket write, and SSL_read decrypts what the thread last read;
 *  - Go's crypto/tls: Conn.Write/Read make the socket syscalls themselves,
 *    on the same goroutine (perhaps another thread: keyed by goroutine).
 *
 * Sockets found this way carry ciphertext: their syscall bytes are not sent.
 */
#ifndef __HT_TLS_BPF_H
#define __HT_TLS_BPF_H

/* The session's socket is sk (confirmed: not a guess). */
static __always_inline void ht_ssl_bind(__u64 ssl, struct sock *sk)
{
	struct ht_ssl_session *sess = bpf_map_lookup_elem(&ht_ssl_sessions, &ssl);
	__u64 skp = (__u64)sk;
	__u8 one = 1;

	if (sess) {
		sess->sk = sk;
		sess->confirmed = 1;
	} else {
		struct ht_ssl_session fresh = { .sk = sk, .confirmed = 1 };

		bpf_map_update_elem(&ht_ssl_sessions, &ssl, &fresh, BPF_ANY);
	}
	/* Once per socket: every ciphertext syscall passes here. */
	if (!bpf_map_lookup_elem(&ht_tls_socks, &skp))
		bpf_map_update_elem(&ht_tls_socks, &skp, &one, BPF_ANY);
}

/*
 * The crypto/tls call the current goroutine is in, when the thread runs Go:
 * the goroutine is R14 in the user registers the syscall saved (Go's
 * syscall paths keep g there on amd64, Go >= 1.17). Kernels before 5.15
 * have no bpf_task_pt_regs: Go sockets are then not joined (the program
 * still loads, the branch is removed).
 */
static __always_inline struct ht_ssl_call *ht_go_current_call(__u32 tgid, struct sock *sk)
{
#if defined(__TARGET_ARCH_x86)
	struct ht_go_key key = { .tgid = tgid };
	struct ht_ssl_session *sess;
	struct ht_ssl_call *call;
	struct pt_regs *regs;

	if (!bpf_core_enum_value_exists(enum bpf_func_id, BPF_FUNC_task_pt_regs))
		return NULL;
	regs = (struct pt_regs *)bpf_task_pt_regs(bpf_get_current_task_btf());
	key.g = BPF_CORE_READ(regs, r14);
	call = bpf_map_lookup_elem(&ht_go_calls, &key);
	if (!call)
		return NULL;
	/* A call makes syscalls on its own Conn's socket only: one known to be
	 * on another socket is over (a Write, whose returns have no probes). */
	sess = bpf_map_lookup_elem(&ht_ssl_sessions, &call->ssl);
	if (sess && sess->confirmed && sess->sk != sk) {
		bpf_map_delete_elem(&ht_go_calls, &key);
		return NULL;
	}
	return call;
#else
	return NULL;
#endif
}

/*
 * Called for every socket syscall of a wanted process once TLS probes exist.
 * Learns session<->socket links and returns true when the syscall's bytes are
 * TLS ciphertext (and must not be sent as plain data).
 */
static __always_inline bool ht_tls_note_syscall(__u64 id, struct sock *sk, __u8 direction)
{
	__u32 tid = (__u32)id;
	struct ht_ssl_call *call;
	struct ht_thread_sock last = {}, *last_p;
	__u64 skp = (__u64)sk;
	__u64 *pending;

	if (!tls_enabled)
		return false;
	call = bpf_map_lookup_elem(&ht_ssl_calls, &tid);
	if (call) {
		ht_ssl_bind(call->ssl, sk);
		ht_count(HT_CNT_CIPHERTEXT);
		return true;
	}
	if (go_enabled) {
		call = ht_go_current_call(id >> 32, sk);
		if (call) {
			ht_ssl_bind(call->ssl, sk);
			ht_count(HT_CNT_CIPHERTEXT);
			return true;
		}
	}
	pending = bpf_map_lookup_elem(&ht_thread_pending_ssl, &tid);
	if (pending) {
		__u64 ssl = *pending;

		bpf_map_delete_elem(&ht_thread_pending_ssl, &tid);
		if (direction == HT_DIR_EGRESS) {
			ht_ssl_bind(ssl, sk);
			ht_count(HT_CNT_CIPHERTEXT);
			return true;
		}
	}
	/* Every syscall passes here: overwrite the thread's entry in place when
	 * it has one, as a map update costs several times a lookup. */
	last_p = bpf_map_lookup_elem(&ht_thread_last_sock, &tid);
	if (last_p) {
		last_p->sk = sk;
		last_p->direction = direction;
	} else {
		last.sk = sk;
		last.direction = direction;
		bpf_map_update_elem(&ht_thread_last_sock, &tid, &last, BPF_ANY);
	}
	if (bpf_map_lookup_elem(&ht_tls_socks, &skp)) {
		ht_count(HT_CNT_CIPHERTEXT);
		return true;
	}
	return false;
}

#endif /* __HT_TLS_BPF_H */
