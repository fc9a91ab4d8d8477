/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Process filters, and from a file descriptor to its TCP socket and 4-tuple.
 *
 * The socket is found through the task's fd table at syscall time, not by
 * tracking connect()/accept(): that works for connections opened before the
 * agent started and needs no kprobes (which this project may not rely on).
 */
#ifndef __HT_SOCK_BPF_H
#define __HT_SOCK_BPF_H

#define HT_AF_INET 2
#define HT_AF_INET6 10
#define HT_SOCK_STREAM 1
#define HT_S_IFMT 00170000
#define HT_S_IFSOCK 0140000

static __always_inline bool ht_is_self(__u32 tgid)
{
	for (__u32 i = 0; i < HT_MAX_SELF_PIDS; i++) {
		if (i >= n_self_tgids)
			break;
		if (self_tgids[i] == tgid)
			return true;
	}
	return false;
}

static __always_inline bool ht_comm_eq(const char *a, const volatile char *b)
{
	for (int i = 0; i < HT_COMM_LEN; i++) {
		if (a[i] != b[i])
			return false;
		if (a[i] == '\0')
			return true;
	}
	return true;
}

/* The process name as /proc/PID/comm shows it: the thread group leader's. */
static __always_inline void ht_process_comm(char comm[HT_COMM_LEN])
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();

	BPF_CORE_READ_STR_INTO((char(*)[HT_COMM_LEN])comm, task, group_leader, comm);
}

/* The filter set in force now. Read once per probe: every check of one call
 * uses the same complete set (see ht_filters in maps.bpf.h). */
static __always_inline volatile struct ht_filter_set *ht_filters_now(void)
{
	return &ht_filters[ht_filter_slot & 1];
}

/* --comm: is the process named one of the filter names? */
static __always_inline bool ht_comm_wanted(volatile struct ht_filter_set *f)
{
	char comm[HT_COMM_LEN] = {};

	ht_process_comm(comm);
	for (__u32 i = 0; i < HT_MAX_FILTER_COMMS; i++) {
		if (i >= f->n_comms)
			break;
		if (ht_comm_eq(comm, f->comms[i]))
			return true;
	}
	return false;
}

/* --cgroup: is the current task in one of the filter cgroups' subtrees? */
static __always_inline bool ht_cgroup_wanted(volatile struct ht_filter_set *f)
{
	__u32 base = f->cgroup_index;

	for (__u32 i = 0; i < HT_MAX_FILTER_CGROUPS; i++) {
		if (i >= f->n_cgroups)
			break;
		/* 1: under it; 0: not; < 0: no cgroup at that index (treated as not). */
		if (bpf_current_task_under_cgroup(&ht_cgroup_filter, base + i) == 1)
			return true;
	}
	return false;
}

/* --pid, --comm and --cgroup: cheap checks every probe makes first. */
static __always_inline bool ht_process_wanted(volatile struct ht_filter_set *f, __u32 tgid)
{
	if (!f->any)
		return true;
	if (f->n_tgids) {
		bool hit = false;

		for (__u32 i = 0; i < HT_MAX_FILTER_PIDS; i++) {
			if (i >= f->n_tgids)
				break;
			if (f->tgids[i] == tgid) {
				hit = true;
				break;
			}
		}
		if (!hit)
			return false;
	}
	if (f->n_comms && !ht_comm_wanted(f))
		return false;
	/* Last: walking cgroup ancestry costs the most. */
	if (f->n_cgroups && !ht_cgroup_wanted(f))
		return false;
	return true;
}

/* --port: either end of the connection. */
static __always_inline bool ht_ports_wanted(volatile struct ht_filter_set *f, __u16 lport,
					    __u16 rport)
{
	if (!f->n_ports)
		return true;
	for (__u32 i = 0; i < HT_MAX_FILTER_PORTS; i++) {
		if (i >= f->n_ports)
			break;
		if (f->ports[i] == lport || f->ports[i] == rport)
			return true;
	}
	return false;
}

/* The connected TCP (IPv4/IPv6) socket behind fd in the current task, or NULL. */
static __always_inline struct sock *ht_tcp_sock_of_fd(int fd)
{
	struct task_struct *task = (struct task_struct *)bpf_get_current_task();
	struct fdtable *fdt = BPF_CORE_READ(task, files, fdt);
	struct file **fds;
	struct file *file = NULL;
	struct socket *sock;
	struct sock *sk;
	__u16 family;

	if (!fdt || fd < 0 || (unsigned int)fd >= BPF_CORE_READ(fdt, max_fds))
		return NULL;
	fds = BPF_CORE_READ(fdt, fd);
	if (bpf_probe_read_kernel(&file, sizeof(file), &fds[fd]) || !file)
		return NULL;
	if ((BPF_CORE_READ(file, f_inode, i_mode) & HT_S_IFMT) != HT_S_IFSOCK)
		return NULL;
	sock = BPF_CORE_READ(file, private_data);
	if (!sock || BPF_CORE_READ(sock, type) != HT_SOCK_STREAM)
		return NULL;
	sk = BPF_CORE_READ(sock, sk);
	if (!sk)
		return NULL;
	family = BPF_CORE_READ(sk, __sk_common.skc_family);
	if (family != HT_AF_INET && family != HT_AF_INET6)
		return NULL;
	/* sk_protocol was a bitfield before 5.6; the probed read handles both. */
	if (BPF_CORE_READ_BITFIELD_PROBED(sk, sk_protocol) != IPPROTO_TCP)
		return NULL;
	return sk;
}

static __always_inline __u16 ht_sk_lport(struct sock *sk)
{
	return BPF_CORE_READ(sk, __sk_common.skc_num);
}

static __always_inline __u16 ht_sk_rport(struct sock *sk)
{
	return bpf_ntohs(BPF_CORE_READ(sk, __sk_common.skc_dport));
}

/* Local and remote addresses, IPv4 as ::ffff:a.b.c.d; returns the family. */
static __always_inline __u16 ht_sk_addrs(struct sock *sk, __u8 laddr[HT_ADDR_LEN],
					 __u8 raddr[HT_ADDR_LEN])
{
	__u16 family = BPF_CORE_READ(sk, __sk_common.skc_family);

	if (family == HT_AF_INET) {
		__builtin_memset(laddr, 0, HT_ADDR_LEN);
		__builtin_memset(raddr, 0, HT_ADDR_LEN);
		laddr[10] = laddr[11] = 0xff;
		raddr[10] = raddr[11] = 0xff;
		BPF_CORE_READ_INTO((__u32 *)&laddr[12], sk, __sk_common.skc_rcv_saddr);
		BPF_CORE_READ_INTO((__u32 *)&raddr[12], sk, __sk_common.skc_daddr);
	} else {
		BPF_CORE_READ_INTO((struct in6_addr *)laddr, sk, __sk_common.skc_v6_rcv_saddr);
		BPF_CORE_READ_INTO((struct in6_addr *)raddr, sk, __sk_common.skc_v6_daddr);
	}
	return family;
}

/* Remember one of this agent's sockets by its local address:port (for every agent to see). */
static __always_inline void ht_register_self_sock(struct sock *sk)
{
	struct ht_endpoint local = {};
	__u8 raddr[HT_ADDR_LEN];
	__u64 skp = (__u64)sk;

	ht_sk_addrs(sk, local.addr, raddr);
	local.port = ht_sk_lport(sk);
	if (local.port)
		bpf_map_update_elem(&ht_self_endpoints, &local, &skp, BPF_ANY);
}

/* Is this address:port an end of a headertap agent's socket (this agent's or another's)? */
static __always_inline bool ht_agent_endpoint(const __u8 addr[HT_ADDR_LEN], __u16 port)
{
	struct ht_endpoint ep = {};

	__builtin_memcpy(ep.addr, addr, HT_ADDR_LEN);
	ep.port = port;
	return bpf_map_lookup_elem(&ht_self_endpoints, &ep) != NULL;
}

/* A stable opaque id: the socket address mixed with a random key by an
 * invertible multiply, cut to 52 bits so JavaScript numbers hold it exactly. */
static __always_inline __u64 ht_sock_id(struct sock *sk)
{
	return (((__u64)sk ^ sock_id_key) * 0x9E3779B97F4A7C15ULL) >> 12;
}

#endif /* __HT_SOCK_BPF_H */
