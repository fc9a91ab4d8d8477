/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Process identity from the kernel. User space reads a process's executable
 * and OTEL_* environment from /proc when its first event arrives; a process
 * that lives a few milliseconds (OTEL_SERVICE_NAME=svc curl …) is gone by
 * then. So the first data event of each process also sends what /proc would
 * have said (struct ht_proc_event), read here, in the process's own context:
 * bpf_probe_read_user reads the current task's memory only, which is why
 * this runs in the data path (syscall exit, SSL uretprobe) and not in a
 * tracepoint of another task.
 */
#ifndef __HT_PROC_BPF_H
#define __HT_PROC_BPF_H

/* Environment entries looked at per process at most: real environments hold
 * a few dozen; the verifier walks each step once. */
#define HT_ENV_STEPS 256
/* Bytes of one entry read at once: "OTEL_RESOURCE_ATTRIBUTES=" and a value
 * that fits its field. A longer entry takes more steps. */
#define HT_ENV_ENTRY_MAX 1280

#define HT_ENV_SERVICE_PREFIX "OTEL_SERVICE_NAME="
#define HT_ENV_SERVICE_PREFIX_LEN 18
#define HT_ENV_ATTRIBUTES_PREFIX "OTEL_RESOURCE_ATTRIBUTES="
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
};

struct {
	__uint(type, BPF_MAP_TYPE_PERCPU_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, struct ht_proc_scratch);
} ht_proc_scratch SEC(".maps");

static __always_inline bool ht_env_prefix(const char *entry, const char *prefix, const int len)
{
	for (int i = 0; i < len; i++)
		if (entry[i] != prefix[i])
			return false;
	return true;
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
		if (!mid && ht_env_prefix(sc->entry, HT_ENV_SERVICE_PREFIX, HT_ENV_SERVICE_PREFIX_LEN)) {
			if (n - HT_ENV_SERVICE_PREFIX_LEN <= HT_ENV_SERVICE_LEN)
				bpf_probe_read_kernel_str(ev->service_name, HT_ENV_SERVICE_LEN,
							  sc->entry + HT_ENV_SERVICE_PREFIX_LEN);
			else
				ev->flags |= HT_PROC_ENV_CUT;
		} else if (!mid && ht_env_prefix(sc->entry, HT_ENV_ATTRIBUTES_PREFIX,
						 HT_ENV_ATTRIBUTES_PREFIX_LEN)) {
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
static __always_inline void ht_send_proc(struct task_struct *task, __u32 tgid, __u64 start_ns)
{
	__u32 zero = 0;
	struct ht_proc_scratch *sc = bpf_map_lookup_elem(&ht_proc_scratch, &zero);
	struct ht_proc_event *ev;
	struct mm_struct *mm;
	struct file *exe;

	if (!sc)
		return;
	ev = &sc->ev;
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

/* At a data event of the current process: its identity, the first time. */
static __always_inline void ht_note_process(__u32 tgid)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	__u64 start_ns = BPF_CORE_READ(task, group_leader, start_time);
	__u64 *seen = bpf_map_lookup_elem(&ht_procs_seen, &tgid);

	if (seen && *seen == start_ns)
		return;
	bpf_map_update_elem(&ht_procs_seen, &tgid, &start_ns, BPF_ANY);
	ht_send_proc(task, tgid, start_ns);
}

#endif /* __HT_PROC_BPF_H */
