/* SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause) */
/*
 * Connection end, from stable tracepoints (no kprobes). TLS session ends come
 * from the SSL_free uprobe (ssl.bpf.h).
 *
 * A connection ends when its socket is destroyed (tcp:tcp_destroy_sock, Linux
 * 4.15+): its last file descriptor is closed and TCP is done with it. Not
 * when it reaches TCP_CLOSE: a client that half-closed (shutdown(SHUT_WR))
 * gets there as soon as the server's FIN arrives, often with the response
 * still unread in its receive queue. Sockets are destroyed before they are
 * freed, so user space drops a connection's state before its socket address
 * (and id) can be reused.
 */
#ifndef __HT_LIFECYCLE_BPF_H
#define __HT_LIFECYCLE_BPF_H

/* headertap's own sockets closing: forget their endpoints, so a later
 * connection reusing that port is not mistaken for our traffic. */
SEC("tracepoint/sock/inet_sock_set_state")
int ht_sock_state(struct trace_event_raw_inet_sock_set_state *ctx)
{
	struct sock *sk = (struct sock *)ctx->skaddr;
	struct ht_endpoint local = {};
	__u8 raddr[HT_ADDR_LEN];
	__u64 *owner;

	if (ctx->protocol != IPPROTO_TCP || ctx->newstate != TCP_CLOSE)
		return 0;
	ht_sk_addrs(sk, local.addr, raddr);
	local.port = ctx->sport;
	owner = bpf_map_lookup_elem(&ht_self_endpoints, &local);
	if (owner && *owner == (__u64)sk)
		bpf_map_delete_elem(&ht_self_endpoints, &local);
	return 0;
}

SEC("tracepoint/tcp/tcp_destroy_sock")
int ht_sock_destroy(struct trace_event_raw_tcp_event_sk *ctx)
{
	__u64 skp = (__u64)ctx->skaddr;

	/* Forget it as a TLS carrier: the address may come back as another
	 * socket. (Only TLS probes add entries: none without them.) */
	if (tls_enabled)
		bpf_map_delete_elem(&ht_tls_socks, &skp);

	if (!bpf_map_lookup_elem(&ht_seen_socks, &skp))
		return 0;
	bpf_map_delete_elem(&ht_seen_socks, &skp);
	ht_send_close(ht_sock_id((struct sock *)skp), 0);
	return 0;
}

#endif /* __HT_LIFECYCLE_BPF_H */
