/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * TLS plaintext from uprobes on OpenSSL's SSL_write/SSL_read (and _ex), in
 * the system libssl or in binaries that link it statically (node). The
 * loader attaches these per library file on request ("attach-tls"); the
 * sections have no target so the skeleton does not auto-attach them.
 *
 * (BPF_KPROBE/BPF_KRETPROBE read uprobe arguments too; libbpf 1.1 has no
 * BPF_UPROBE.) Entry stores the call by thread id; the return probe copies the bytes that
 * moved (reads are only filled then) and always deletes the entry.
 */
#ifndef __HT_SSL_BPF_H
#define __HT_SSL_BPF_H

static __always_inline int ht_ssl_enter(__u64 ssl, const void *buf, __u64 len_ptr, __u8 source,
					__u8 direction)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32, tid = (__u32)id;
	struct ht_ssl_call call = {};
	struct ht_ssl_session *sess;

	/* A first look only, to skip the bookkeeping of unwanted processes: the
	 * call's bytes are judged at its return (ht_ssl_emit), by the set in
	 * force then, as the filters may change while the call blocks. */
	if (ht_is_self(tgid) || !ht_process_wanted(ht_filters_now(), tgid))
		return 0;

	sess = bpf_map_lookup_elem(&ht_ssl_sessions, &ssl);
	if (!sess) {
		struct ht_ssl_session fresh = {};

		bpf_map_update_elem(&ht_ssl_sessions, &ssl, &fresh, BPF_NOEXIST);
		sess = bpf_map_lookup_elem(&ht_ssl_sessions, &ssl);
		if (!sess)
			return 0;
	}
	/* Memory BIO: SSL_read decrypts what this thread just read from a socket.
	 * A guess (socket BIOs correct it during the call), so the socket is not
	 * marked as carrying ciphertext on its strength. */
	if (direction == HT_DIR_INGRESS && !sess->confirmed) {
		struct ht_thread_sock *last = bpf_map_lookup_elem(&ht_thread_last_sock, &tid);

		if (last && last->direction == HT_DIR_INGRESS)
			sess->sk = last->sk;
	}

	call.ssl = ssl;
	call.buf = buf;
	call.len_ptr = len_ptr;
	call.enter_ns = bpf_ktime_get_ns();
	call.direction = direction;
	call.source = source;
	bpf_map_update_elem(&ht_ssl_calls, &tid, &call, BPF_ANY);
	return 0;
}

static __always_inline __u64 ht_ssl_id(__u64 ssl)
{
	/* Another multiplier than ht_sock_id: session and socket ids never mix. */
	return ((ssl ^ sock_id_key) * 0xC2B2AE3D27D4EB4FULL) >> 12;
}

/* memory_bio: the library may hand its ciphertext to the socket after the
 * call (OpenSSL with memory BIOs); Go's crypto/tls writes it inside the call. */
static __always_inline void ht_ssl_emit(struct ht_ssl_call *call, __u64 id, __u64 moved,
					bool memory_bio)
{
	__u32 tid = (__u32)id;
	__u8 dir = call->direction == HT_DIR_EGRESS ? 0 : 1;
	struct ht_ssl_session *sess = bpf_map_lookup_elem(&ht_ssl_sessions, &call->ssl);
	volatile struct ht_filter_set *f = ht_filters_now();
	struct ht_emit_args a = {};
	struct ht_data_scratch *s;
	bool wanted;

	if (!sess)
		return;
	a.sk = sess->sk;
	a.buf = call->buf;
	a.conn_id = ht_ssl_id(call->ssl);
	a.ts_ns = call->direction == HT_DIR_EGRESS ? call->enter_ns : bpf_ktime_get_ns();
	a.seq = (__u32)sess->pos[dir & 1];
	a.total = moved > 0xffffffffULL ? 0xffffffffU : (__u32)moved;
	a.fd = -1;
	a.flags = HT_FLAG_TLS;
	a.direction = call->direction;
	a.source = call->source;
	sess->pos[dir & 1] += moved;
	/* The whole set, one slot: the process, and --port once the socket is
	 * known (without it user space decides later). */
	wanted = ht_process_wanted(f, id >> 32) &&
		 (!a.sk || ht_ports_wanted(f, ht_sk_lport(a.sk), ht_sk_rport(a.sk)));
	if (wanted) {
		s = ht_data_begin(&a, id);
		if (s) {
			sess->emitted = 1;
			ht_data_send(NULL, s, &a, HT_COPY_STEPS); /* one buffer: it returns */
		}
	}
	/* Memory BIO: the ciphertext of this write leaves on the next socket write. */
	if (memory_bio && !sess->confirmed && call->direction == HT_DIR_EGRESS)
		bpf_map_update_elem(&ht_thread_pending_ssl, &tid, &call->ssl, BPF_ANY);
}

static __always_inline int ht_ssl_exit(struct pt_regs *ctx, long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	struct ht_ssl_call *call = bpf_map_lookup_elem(&ht_ssl_calls, &tid);
	__u64 moved = 0;

	if (!call)
		return 0;
	if (call->len_ptr) {
		/* _ex variants: 1 on success, the byte count through a pointer. */
		if (ret == 1 && bpf_probe_read_user(&moved, sizeof(moved), (void *)call->len_ptr))
			moved = 0;
	} else if (ret > 0) {
		moved = ret;
	}
	if (moved > 0) {
		/* A process not seen yet: its identity first (proc.bpf.h); this program then starts again. */
		ht_proc_detour(ctx, &ht_proc_uprobe_progs, call->source);
		ht_ssl_emit(call, id, moved, true);
	}
	bpf_map_delete_elem(&ht_ssl_calls, &tid);
	return 0;
}

/* int SSL_write(SSL *ssl, const void *buf, int num) */
SEC("uprobe")
int BPF_KPROBE(ht_ssl_write, void *ssl, const void *buf, int num)
{
	return ht_ssl_enter((__u64)ssl, buf, 0, HT_SRC_SSL_WRITE, HT_DIR_EGRESS);
}

/* int SSL_write_ex(SSL *ssl, const void *buf, size_t num, size_t *written) */
SEC("uprobe")
int BPF_KPROBE(ht_ssl_write_ex, void *ssl, const void *buf, size_t num, size_t *written)
{
	return ht_ssl_enter((__u64)ssl, buf, (__u64)written, HT_SRC_SSL_WRITE, HT_DIR_EGRESS);
}

/* int SSL_read(SSL *ssl, void *buf, int num) */
SEC("uprobe")
int BPF_KPROBE(ht_ssl_read, void *ssl, void *buf, int num)
{
	return ht_ssl_enter((__u64)ssl, buf, 0, HT_SRC_SSL_READ, HT_DIR_INGRESS);
}

/* int SSL_read_ex(SSL *ssl, void *buf, size_t num, size_t *readbytes) */
SEC("uprobe")
int BPF_KPROBE(ht_ssl_read_ex, void *ssl, void *buf, size_t num, size_t *readbytes)
{
	return ht_ssl_enter((__u64)ssl, buf, (__u64)readbytes, HT_SRC_SSL_READ, HT_DIR_INGRESS);
}

/* The return of any of the four: an int (-1 on WANT_READ/WRITE), so
 * read as int: the upper half of the register is not sign-extended. */
SEC("uretprobe")
int BPF_KRETPROBE(ht_ssl_ret, int ret)
{
	return ht_ssl_exit(ctx, ret);
}

/* A TLS session (OpenSSL's SSL, Go's Conn) ends: user space closes its
 * stream if it sent any data, and the key may be reused. */
static __always_inline void ht_ssl_session_end(__u64 key)
{
	struct ht_ssl_session *sess = bpf_map_lookup_elem(&ht_ssl_sessions, &key);

	if (!sess)
		return;
	if (sess->emitted)
		ht_send_close(ht_ssl_id(key), HT_FLAG_TLS);
	bpf_map_delete_elem(&ht_ssl_sessions, &key);
}

/* void SSL_free(SSL *ssl): the session ends; its pointer may be reused. */
SEC("uprobe")
int BPF_KPROBE(ht_ssl_free, void *ssl)
{
	ht_ssl_session_end((__u64)ssl);
	return 0;
}

/* A new program: user space checks it (and later its libraries) for TLS functions. */
SEC("tracepoint/sched/sched_process_exec")
int ht_exec(struct trace_event_raw_sched_process_exec *ctx)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tgid = id >> 32;
	struct ht_exec_event ev = {};

	/* Another program, another identity: sent again at its next data event. */
	bpf_map_delete_elem(&ht_procs_seen, &tgid);
	if (!tls_capture || ht_is_self(tgid) || !ht_process_wanted(ht_filters_now(), tgid))
		return 0;
	ev.kind = HT_EV_EXEC;
	ev.tgid = tgid;
	ev.ts_ns = bpf_ktime_get_ns();
	ht_process_comm(ev.comm);
	/* Rare, and the sooner user space probes the new program the fewer of
	 * its first TLS calls go unseen: wake the reader now (flags 0). */
	if (bpf_ringbuf_output(&ht_events, &ev, sizeof(ev), 0))
		ht_count(HT_CNT_RINGBUF_LOST);
	return 0;
}

#define HT_SIGSTOP 19
#define HT_FMODE_WRITE 0x2

/* Base names of OpenSSL's libssl: libssl.so, libssl.so.3, libssl.so.1.1 (not NSS's libssl3.so). */
static __always_inline bool ht_is_libssl_name(const char name[16])
{
	static const char want[] = "libssl.so";

	for (int i = 0; i < 9; i++)
		if (name[i] != want[i])
			return false;
	return name[9] == '\0' || name[9] == '.';
}

#define HT_MAP_ANONYMOUS 0x20

/*
 * A libssl mapped by a process (ld.so's or dlopen's first mmap of the
 * file): if no probe covers that file yet, tell the loader now and stop the
 * process (SIGSTOP, taking effect before mmap returns to it, before any code
 * of the library ran) until the loader has put the probes on and sent
 * SIGCONT. Otherwise a short-lived program with its own libssl copy makes its
 * TLS calls before user space could look at its maps. The stop happens only
 * with the event in the ring buffer: whoever stops also gets resumed.
 * mmap, not openat: file mappings are far rarer than opens (a server opening
 * files pays nothing), and anonymous ones cost one branch.
 */
SEC("tracepoint/syscalls/sys_enter_mmap")
int ht_enter_mmap(struct trace_event_raw_sys_enter *ctx)
{
	struct task_struct *task;
	int fd = (int)ctx->args[4];
	__u64 id = bpf_get_current_pid_tgid();
	struct ht_tls_file_key key = {};
	struct ht_tls_open_event *e;
	struct fdtable *fdt;
	struct file *file = NULL;
	struct file **fds;
	char name[16] = {};

	if (fd < 0 || (ctx->args[3] & HT_MAP_ANONYMOUS) || !tls_capture)
		return 0;
	task = (struct task_struct *)bpf_get_current_task();
	fdt = BPF_CORE_READ(task, files, fdt);
	if (!fdt || (unsigned int)fd >= BPF_CORE_READ(fdt, max_fds))
		return 0;
	fds = BPF_CORE_READ(fdt, fd);
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) || !file)
		return 0;
	bpf_probe_read_kernel_str(name, sizeof(name), BPF_CORE_READ(file, f_path.dentry, d_name.name));
	if (!ht_is_libssl_name(name))
		return 0;
	/* Open for writing (being copied or installed): not a library being loaded. */
	if (BPF_CORE_READ(file, f_mode) & HT_FMODE_WRITE)
		return 0;
	if (ht_is_self(id >> 32) || !ht_process_wanted(ht_filters_now(), id >> 32))
		return 0;
	key.dev = BPF_CORE_READ(file, f_inode, i_sb, s_dev);
	key.ino = BPF_CORE_READ(file, f_inode, i_ino);
	if (bpf_map_lookup_elem(&ht_tls_files, &key))
		return 0;
	e = bpf_ringbuf_reserve(&ht_events, sizeof(*e), 0);
	if (!e) {
		ht_count(HT_CNT_RINGBUF_LOST);
		return 0;
	}
	e->kind = HT_EV_TLS_OPEN;
	e->_pad0 = 0;
	e->tgid = id >> 32;
	e->tid = (__u32)id;
	e->fd = fd;
	e->dev = key.dev;
	e->ino = key.ino;
	ht_process_comm(e->comm);
	e->flags = tls_hold && !bpf_send_signal(HT_SIGSTOP) ? HT_TLS_OPEN_STOPPED : 0;
	/* Rare and urgent (the process waits): wake the loader now (flags 0). */
	bpf_ringbuf_submit(e, 0);
	return 0;
}

#endif /* __HT_SSL_BPF_H */
