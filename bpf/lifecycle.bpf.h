/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Connection end, from sock:inet_sock_set_state (a stable tracepoint, no
 * kprobes). TLS session ends come from the SSL_free uprobe (ssl.bpf.h). Sockets reach TCP_CLOSE before they are freed, so user space
 * drops a connection's state before its socket address can be reused.
 */
#ifndef __HT_LIFECYCLE_BPF_H
#define __HT_LIFECYCLE_BPF_H

SEC("tracepoint/sock/inet_sock_set_state")
int ht_sock_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	struct sock *sk = (struct sock *)ctx->skaddr;
	__u64 skp = (__u64)sk;
	struct ht_endpoint local = {};
	__u8 raddr[HT_ADDR_LEN];
	__u64 *owner;

	if (ctx->protocol != IPPROTO_TCP || ctx->newstate != TCP_CLOSE)
		return 0;

	/* One of our own sockets closing: forget its endpoint, so a later
	 * connection reusing that port is not mistaken for our traffic. */
	ht_sk_addrs(sk, local.addr, raddr);
	local.port = ctx->sport;
	owner = bpf_map_lookup_elem(&ht_self_endpoints, &local);
	if (owner && *owner == skp)
		bpf_map_delete_elem(&ht_self_endpoints, &local);

	/* Forget it as a TLS carrier: the address may come back as another
	 * socket. (Only TLS probes add entries: none without them.) */
	if (tls_enabled)
		bpf_map_delete_elem(&ht_tls_socks, &skp);

	if (!bpf_map_lookup_elem(&ht_seen_socks, &skp))
		return 0;
	bpf_map_delete_elem(&ht_seen_socks, &skp);
	ht_send_close(ht_sock_id(sk), 0);
	return 0;
}

#endif /* __HT_LIFECYCLE_BPF_H */
