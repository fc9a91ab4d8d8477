// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * The benchmark's reference probe: the least a syscall-tracing capture can
 * do. The same eight socket syscalls headertap traces, enter and exit; at
 * exit, 256 bytes of the buffer go into a ring buffer, the reader woken per
 * 64 KiB. No socket lookup, no filter but its own process, no state. What headertap costs
 * beyond this is what its features cost.
 */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>

#define REF_BYTES 256

struct ref_event {
	__u32 tgid;
	__u32 len;
	__u8 buf[REF_BYTES];
};

const volatile __u32 self_tgid = 0;
/* Wake the reader once this much waits, as headertap does (see its
 * ht_wakeup_flags): a wakeup per event costs more than the probe itself. */
const volatile __u32 wakeup_bytes = 65536;

struct {
	__uint(type, BPF_MAP_TYPE_RINGBUF);
	__uint(max_entries, 16 << 20);
} ref_events SEC(".maps");

/* thread id -> buffer of the syscall it is in */
struct {
	__uint(type, BPF_MAP_TYPE_HASH);
	__uint(max_entries, 16384);
	__type(key, __u32);
	__type(value, __u64);
} ref_active SEC(".maps");

struct {
	__uint(type, BPF_MAP_TYPE_ARRAY);
	__uint(max_entries, 1);
	__type(key, __u32);
	__type(value, __u64);
} ref_lost SEC(".maps");

static __always_inline int ref_enter(const void *buf)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id;
	__u64 p = (__u64)buf;

	if ((id >> 32) == self_tgid)
		return 0;
	bpf_map_update_elem(&ref_active, &tid, &p, BPF_ANY);
	return 0;
}

/* The first buffer of an iovec array. */
static __always_inline int ref_enter_iov(const struct iovec *iov)
{
	struct iovec v = {};

	bpf_probe_read_user(&v, sizeof(v), iov);
	return ref_enter(v.iov_base);
}

static __always_inline int ref_enter_msg(const struct user_msghdr *m)
{
	struct user_msghdr msg = {};

	bpf_probe_read_user(&msg, sizeof(msg), m);
	return ref_enter_iov(msg.msg_iov);
}

static __always_inline int ref_exit(long ret)
{
	__u64 id = bpf_get_current_pid_tgid();
	__u32 tid = (__u32)id, zero = 0;
	__u64 *p = bpf_map_lookup_elem(&ref_active, &tid);
	struct ref_event *ev;

	if (!p)
		return 0;
	if (ret > 0) {
		ev = bpf_ringbuf_reserve(&ref_events, sizeof(*ev), 0);
		if (ev) {
			ev->tgid = id >> 32;
			ev->len = ret;
			bpf_probe_read_user(ev->buf, REF_BYTES, (const void *)*p);
			/* wakeup_bytes 0: the default, a wakeup whenever the reader sleeps */
			bpf_ringbuf_submit(ev, !wakeup_bytes ? 0
					   : bpf_ringbuf_query(&ref_events, BPF_RB_AVAIL_DATA) >= wakeup_bytes
						       ? BPF_RB_FORCE_WAKEUP
						       : BPF_RB_NO_WAKEUP);
		} else {
			__u64 *lost = bpf_map_lookup_elem(&ref_lost, &zero);

			if (lost)
				__sync_fetch_and_add(lost, 1);
		}
	}
	bpf_map_delete_elem(&ref_active, &tid);
	return 0;
}

SEC("tracepoint/syscalls/sys_enter_write")
int ref_enter_write(struct trace_event_raw_sys_enter *ctx) { return ref_enter((const void *)ctx->args[1]); }
SEC("tracepoint/syscalls/sys_enter_sendto")
int ref_enter_sendto(struct trace_event_raw_sys_enter *ctx) { return ref_enter((const void *)ctx->args[1]); }
SEC("tracepoint/syscalls/sys_enter_read")
int ref_enter_read(struct trace_event_raw_sys_enter *ctx) { return ref_enter((const void *)ctx->args[1]); }
SEC("tracepoint/syscalls/sys_enter_recvfrom")
int ref_enter_recvfrom(struct trace_event_raw_sys_enter *ctx) { return ref_enter((const void *)ctx->args[1]); }
SEC("tracepoint/syscalls/sys_enter_writev")
int ref_enter_writev(struct trace_event_raw_sys_enter *ctx) { return ref_enter_iov((const struct iovec *)ctx->args[1]); }
SEC("tracepoint/syscalls/sys_enter_readv")
int ref_enter_readv(struct trace_event_raw_sys_enter *ctx) { return ref_enter_iov((const struct iovec *)ctx->args[1]); }
SEC("tracepoint/syscalls/sys_enter_sendmsg")
int ref_enter_sendmsg(struct trace_event_raw_sys_enter *ctx) { return ref_enter_msg((const struct user_msghdr *)ctx->args[1]); }
SEC("tracepoint/syscalls/sys_enter_recvmsg")
int ref_enter_recvmsg(struct trace_event_raw_sys_enter *ctx) { return ref_enter_msg((const struct user_msghdr *)ctx->args[1]); }

#define REF_EXIT(name)                                                          \
	SEC("tracepoint/syscalls/sys_exit_" #name)                             \
	int ref_exit_##name(struct trace_event_raw_sys_exit *ctx)              \
	{                                                                       \
		return ref_exit(ctx->ret);                                      \
	}

REF_EXIT(write)
REF_EXIT(sendto)
REF_EXIT(read)
REF_EXIT(recvfrom)
REF_EXIT(writev)
REF_EXIT(readv)
REF_EXIT(sendmsg)
REF_EXIT(recvmsg)

char LICENSE[] SEC("license") = "Dual BSD/GPL";
