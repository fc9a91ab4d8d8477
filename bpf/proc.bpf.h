/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Process identity from the kernel. User space reads a process's executable
 * and OTEL_* environment from /proc when its first event arrives; a process
 * that lives a few milliseconds (OTEL_SERVICE_NAME=svc curl …) is gone by
 * then. So the first data event of each process is preceded by what /proc
 * would have said (struct ht_proc_event), read here, in the process's own
 * context: bpf_probe_read_user reads the current task's memory only, which is
 * why this runs in the data path (syscall exit, TLS return) and not in a
 * tracepoint of another task.
 *
 * The environment walk is long (HT_ENV_STEPS entries), and the verifier
 * walks it once per program that contains it, with the states of all the
 * code around it: inlined into the eleven data programs it made loading take
 * 8 s (each ~500 000 instructions processed). So it lives in two programs of
 * its own, one per program type (ht_proc_sys for the syscall tracepoints,
 * ht_proc_uprobe for the TLS uprobes), verified once each. A data program
 * that meets a process not seen yet takes a detour, before any side effect:
 * it tail-calls the reader, which sends the identity and tail-calls back
 * into the program that handles the call's source (slot = HT_SRC_*), which
 * starts again, finds the process seen, and goes on. Two tail calls, once
 * per process.
 */
#ifndef __HT_PROC_BPF_H
#define __HT_PROC_BPF_H

/* Environment entries looked at per process at most: real environments hold
 * a few dozen; the verifier walks each step once. */
#define HT_ENV_STEPS 256
/* Bytes of one entry read at once: "OTEL_RESOURCE_ATTRIBUTES=" and a value
 * that fits its field. A longer entry takes more steps. */
#define HT_ENV_ENTRY_MAX 1280

#define HT_ENV_SERVICE_PREFIX_LEN 18
#define HT_ENV_ATTRIBUTES_PREFIX_LEN 25

/* thread group id -> start_time of the process a proc event was sent for.
 * LRU: exited processes age out; a process evicted while alive is sent again
 * (harmless). Cleared at exec (ht_exec), which changes who the process is. */
struct {
	__uint(type, BPF_MAP_TYPE_LRU_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u64);
} ht_procs_seen SEC(".maps");

/* The event being built and the entry being read: too big for the stack. */
struct ht_proc_scratch {
	struct ht_proc_event ev;
	char entry[HT_ENV_ENTRY_MAX];
	__u32 return_to; /* the detour's caller: its HT_SRC_* slot */
};
_Static_assert(__builtin_offsetof(struct ht_proc_scratch, entry) % 8 == 0,
	       "entry is read a word at a time (ht_env_is_service)");

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ht_proc_scratch);
} ht_proc_scratch SEC(".maps");

/*
 * Whether an entry starts with one of the two prefixes, compared a word at a
 * time with no branch per character: the verifier walks every branch of
 * every one of the HT_ENV_STEPS steps, and a character loop made each step
 * ~40 paths. The words are the prefixes' bytes in little-endian order (the
 * scratch keeps entry 8-aligned). Bytes left from a longer earlier entry
 * after a NUL never match: every prefix byte is non-NUL.
 */
#if __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "the OTEL_* prefix words below are little-endian"
#endif
#define HT_W_OTEL_SER 0x5245535f4c45544fULL /* "OTEL_SER" */
#define HT_W_VICE_NAM 0x4d414e5f45434956ULL /* "VICE_NAM" */
#define HT_W_E_EQ 0x3d45                     /* "E=" */
#define HT_W_OTEL_RES 0x5345525f4c45544fULL /* "OTEL_RES" */
#define HT_W_OURCE_AT 0x54415f454352554fULL /* "OURCE_AT" */
#define HT_W_TRIBUTES 0x5345545542495254ULL /* "TRIBUTES" */

static __always_inline bool ht_env_is_service(const char *entry)
{
	const __u64 *w = (const __u64 *)entry;

	return !((w[0] ^ HT_W_OTEL_SER) | (w[1] ^ HT_W_VICE_NAM) |
		 (*(const __u16 *)(entry + 16) ^ HT_W_E_EQ));
}

static __always_inline bool ht_env_is_attributes(const char *entry)
{
	const __u64 *w = (const __u64 *)entry;

	return !((w[0] ^ HT_W_OTEL_RES) | (w[1] ^ HT_W_OURCE_AT) | (w[2] ^ HT_W_TRIBUTES) |
		 (__u8)(entry[24] ^ '='));
}

/* OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES from the process's environment
 * (mm->env_start..env_end, the block /proc/PID/environ shows). */
static __always_inline void ht_read_otel_env(struct ht_proc_scratch *sc, struct mm_struct *mm)
{
	struct ht_proc_event *ev = &sc->ev;
	unsigned long pos = BPF_CORE_READ(mm, env_start);
	unsigned long end = BPF_CORE_READ(mm, env_end);
	bool mid = false; /* inside an entry longer than HT_ENV_ENTRY_MAX */

	for (int i = 0; i < HT_ENV_STEPS; i++) {
		long n;

		if (pos >= end)
			return;
		n = bpf_probe_read_user_str(sc->entry, HT_ENV_ENTRY_MAX, (const void *)pos);
		if (n <= 0) {
			ev->flags |= HT_PROC_ENV_UNREADABLE;
			return;
		}
		if (!mid && ht_env_is_service(sc->entry)) {
			if (n - HT_ENV_SERVICE_PREFIX_LEN <= HT_ENV_SERVICE_LEN)
				bpf_probe_read_kernel_str(ev->service_name, HT_ENV_SERVICE_LEN,
							  sc->entry + HT_ENV_SERVICE_PREFIX_LEN);
			else
				ev->flags |= HT_PROC_ENV_CUT;
		} else if (!mid && ht_env_is_attributes(sc->entry)) {
			if (n - HT_ENV_ATTRIBUTES_PREFIX_LEN <= HT_ENV_ATTRIBUTES_LEN && n < HT_ENV_ENTRY_MAX)
				bpf_probe_read_kernel_str(ev->resource_attributes, HT_ENV_ATTRIBUTES_LEN,
							  sc->entry + HT_ENV_ATTRIBUTES_PREFIX_LEN);
			else
				ev->flags |= HT_PROC_ENV_CUT;
		}
		/* n counts the NUL; n == HT_ENV_ENTRY_MAX: no NUL yet, the entry goes on. */
		mid = n == HT_ENV_ENTRY_MAX;
		pos += mid ? n - 1 : n;
	}
	if (pos < end)
		ev->flags |= HT_PROC_ENV_CUT;
}

/* Sends the current process's identity. */
static __always_inline void ht_send_proc(struct ht_proc_scratch *sc, struct task_struct *task,
					__u32 tgid, __u64 start_ns)
{
	struct ht_proc_event *ev = &sc->ev;
	struct mm_struct *mm;
	struct file *exe;

	ev->kind = HT_EV_PROC;
	ev->flags = 0;
	ev->_pad0 = 0;
	ev->tgid = tgid;
	ev->start_ns = start_ns;
	ht_process_comm(ev->comm);
	ev->exe[0] = '\0';
	ev->service_name[0] = '\0';
	ev->resource_attributes[0] = '\0';
	mm = BPF_CORE_READ(task, mm);
	if (!mm) {
		ev->flags |= HT_PROC_ENV_UNREADABLE;
	} else {
		exe = BPF_CORE_READ(mm, exe_file);
		if (exe)
			bpf_probe_read_kernel_str(ev->exe, HT_EXE_NAME_LEN,
						  BPF_CORE_READ(exe, f_path.dentry, d_name.name));
		ht_read_otel_env(sc, mm);
	}
	/* Once per process, and user space needs it before the data: wake it
	 * with the data event's own batch (the same flags). */
	if (bpf_ringbuf_output(&ht_events, ev, sizeof(*ev), ht_wakeup_flags()))
		ht_count(HT_CNT_RINGBUF_LOST);
}

/* Where the identity reader is in both program arrays below. */
#define HT_PROC_READER 0

/* Tracepoint programs: the reader, then each syscall exit at its HT_SRC_*. */
int ht_proc_sys(void *ctx);
int ht_exit_write(struct trace_event_raw_sys_exit *ctx);
int ht_exit_writev(struct trace_event_raw_sys_exit *ctx);
int ht_exit_sendto(struct trace_event_raw_sys_exit *ctx);
int ht_exit_sendmsg(struct trace_event_raw_sys_exit *ctx);
int ht_exit_read(struct trace_event_raw_sys_exit *ctx);
int ht_exit_readv(struct trace_event_raw_sys_exit *ctx);
int ht_exit_recvfrom(struct trace_event_raw_sys_exit *ctx);
int ht_exit_recvmsg(struct trace_event_raw_sys_exit *ctx);

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, HT_SRC_RECVMSG + 1);
	__uint(key_size, sizeof(__u32)); /* no BTF key type: prog arrays take none */
	__array(values, int(void *));
} ht_proc_sys_progs SEC(".maps") = {
	.values = {
		[HT_PROC_READER] = (void *)&ht_proc_sys,
		[HT_SRC_WRITE] = (void *)&ht_exit_write,
		[HT_SRC_WRITEV] = (void *)&ht_exit_writev,
		[HT_SRC_SENDTO] = (void *)&ht_exit_sendto,
		[HT_SRC_SENDMSG] = (void *)&ht_exit_sendmsg,
		[HT_SRC_READ] = (void *)&ht_exit_read,
		[HT_SRC_READV] = (void *)&ht_exit_readv,
		[HT_SRC_RECVFROM] = (void *)&ht_exit_recvfrom,
		[HT_SRC_RECVMSG] = (void *)&ht_exit_recvmsg,
	},
};

/* Uprobe programs: the reader, then the program that sends each TLS source. */
int ht_proc_uprobe(struct pt_regs *ctx);
int ht_ssl_ret(struct pt_regs *ctx);
int ht_go_write(struct pt_regs *ctx);
int ht_go_ret(struct pt_regs *ctx);

struct {
	__uint(type, BPF_MAP_TYPE_PROG_ARRAY);
	__uint(max_entries, HT_SRC_GO_TLS_READ + 1);
	__uint(key_size, sizeof(__u32));
	__array(values, int(void *));
} ht_proc_uprobe_progs SEC(".maps") = {
	.values = {
		[HT_PROC_READER] = (void *)&ht_proc_uprobe,
		[HT_SRC_SSL_WRITE] = (void *)&ht_ssl_ret,
		[HT_SRC_SSL_READ] = (void *)&ht_ssl_ret,
		[HT_SRC_GO_TLS_WRITE] = (void *)&ht_go_write,
		[HT_SRC_GO_TLS_READ] = (void *)&ht_go_ret,
	},
};

/* The start of the current process (its leader's start_time): tells pid reuse apart. */
static __always_inline __u64 ht_process_start(struct task_struct *task)
{
	return BPF_CORE_READ(task, group_leader, start_time);
}

/*
 * At a data call of the current process, before the program changed any
 * state: if its identity was not sent yet, go and send it (the program
 * starts again afterwards: see the top of this file). Returns when the
 * identity was sent before, or when the detour cannot be taken (then user
 * space reads /proc, as without this).
 */
static __always_inline void ht_proc_detour(void *ctx, void *progs, __u32 source)
{
	__u32 tgid = bpf_get_current_pid_tgid() >> 32, zero = 0;
	__u64 start_ns = ht_process_start((struct task_struct *)bpf_get_current_task());
	__u64 *seen = bpf_map_lookup_elem(&ht_procs_seen, &tgid);
	struct ht_proc_scratch *sc;

	if (seen && *seen == start_ns)
		return;
	sc = bpf_map_lookup_elem(&ht_proc_scratch, &zero);
	if (!sc)
		return;
	sc->return_to = source;
	bpf_tail_call(ctx, progs, HT_PROC_READER);
}

/* The reader: marks the process seen, sends its identity, goes back. */
static __always_inline void ht_proc_read(void *ctx, void *progs)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u32 tgid = bpf_get_current_pid_tgid() >> 32, zero = 0;
	__u64 start_ns = ht_process_start(task);
	struct ht_proc_scratch *sc = bpf_map_lookup_elem(&ht_proc_scratch, &zero);

	if (!sc)
		return;
	/* Seen first: should the identity not go out, the call still does. */
	bpf_map_update_elem(&ht_procs_seen, &tgid, &start_ns, BPF_ANY);
	ht_send_proc(sc, task, tgid, start_ns);
	bpf_tail_call(ctx, progs, sc->return_to);
	/* Never seen (the arrays are filled at load): the call's bytes are not sent. */
	ht_count(HT_CNT_TRUNCATED);
}

SEC("tracepoint")
int ht_proc_sys(void *ctx)
{
	ht_proc_read(ctx, &ht_proc_sys_progs);
	return 0;
}

SEC("uprobe")
int ht_proc_uprobe(struct pt_regs *ctx)
{
	ht_proc_read(ctx, &ht_proc_uprobe_progs);
	return 0;
}

#endif /* __HT_PROC_BPF_H */
