// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * Prints headertap.h's layout as JSON: every struct field's offset and size
 * and every constant. test/component/layout.test.ts compares it with
 * src/source/layout.ts, so the two cannot drift apart silently.
 */
#include <stddef.h>
#include <stdio.h>
#include <linux/types.h>
#include "headertap.h"

#define FIELD(s, f)                                                                          \
	printf("%s\"%s\":[%zu,%zu]", first++ ? "," : "", #f, offsetof(struct s, f),           \
	       sizeof(((struct s *)0)->f))
#define CONST(c) printf(",\"%s\":%lld", #c, (long long)(c))

int main(void)
{
	int first;

	printf("{\"structs\":{");
	first = 0;
	printf("\"ht_data_event\":{\"size\":%zu,\"fields\":{", sizeof(struct ht_data_event));
	FIELD(ht_data_event, kind);
	FIELD(ht_data_event, direction);
	FIELD(ht_data_event, source);
	FIELD(ht_data_event, family);
	FIELD(ht_data_event, tgid);
	FIELD(ht_data_event, tid);
	FIELD(ht_data_event, fd);
	FIELD(ht_data_event, sock_id);
	FIELD(ht_data_event, ts_ns);
	FIELD(ht_data_event, seq);
	FIELD(ht_data_event, msg_size);
	FIELD(ht_data_event, buf_size);
	FIELD(ht_data_event, lport);
	FIELD(ht_data_event, rport);
	FIELD(ht_data_event, laddr);
	FIELD(ht_data_event, raddr);
	FIELD(ht_data_event, comm);
	FIELD(ht_data_event, flags);
	FIELD(ht_data_event, buf);
	first = 0;
	printf("}},\"ht_close_event\":{\"size\":%zu,\"fields\":{", sizeof(struct ht_close_event));
	FIELD(ht_close_event, kind);
	FIELD(ht_close_event, sock_id);
	FIELD(ht_close_event, ts_ns);
	FIELD(ht_close_event, flags);
	first = 0;
	printf("}},\"ht_exec_event\":{\"size\":%zu,\"fields\":{", sizeof(struct ht_exec_event));
	FIELD(ht_exec_event, kind);
	FIELD(ht_exec_event, tgid);
	FIELD(ht_exec_event, ts_ns);
	FIELD(ht_exec_event, comm);
	first = 0;
	printf("}},\"ht_proc_event\":{\"size\":%zu,\"fields\":{", sizeof(struct ht_proc_event));
	FIELD(ht_proc_event, kind);
	FIELD(ht_proc_event, flags);
	FIELD(ht_proc_event, tgid);
	FIELD(ht_proc_event, start_ns);
	FIELD(ht_proc_event, comm);
	FIELD(ht_proc_event, exe);
	FIELD(ht_proc_event, service_name);
	FIELD(ht_proc_event, resource_attributes);
	first = 0;
	printf("}},\"ht_tls_open_event\":{\"size\":%zu,\"fields\":{", sizeof(struct ht_tls_open_event));
	FIELD(ht_tls_open_event, kind);
	FIELD(ht_tls_open_event, flags);
	FIELD(ht_tls_open_event, tgid);
	FIELD(ht_tls_open_event, tid);
	FIELD(ht_tls_open_event, fd);
	FIELD(ht_tls_open_event, dev);
	FIELD(ht_tls_open_event, ino);
	FIELD(ht_tls_open_event, comm);
	first = 0;
	printf("}},\"ht_tls_learned_event\":{\"size\":%zu,\"fields\":{", sizeof(struct ht_tls_learned_event));
	FIELD(ht_tls_learned_event, kind);
	FIELD(ht_tls_learned_event, flags);
	FIELD(ht_tls_learned_event, tgid);
	FIELD(ht_tls_learned_event, err);
	FIELD(ht_tls_learned_event, attached);
	FIELD(ht_tls_learned_event, hold_ns);
	FIELD(ht_tls_learned_event, st_dev);
	FIELD(ht_tls_learned_event, st_ino);
	FIELD(ht_tls_learned_event, path);
	first = 0;
	printf("}},\"ht_attach_event\":{\"size\":%zu,\"fields\":{", sizeof(struct ht_attach_event));
	FIELD(ht_attach_event, kind);
	FIELD(ht_attach_event, request_id);
	FIELD(ht_attach_event, err);
	FIELD(ht_attach_event, attached);
	first = 0;
	printf("}},\"ht_ready_event\":{\"size\":%zu,\"fields\":{", sizeof(struct ht_ready_event));
	FIELD(ht_ready_event, kind);
	FIELD(ht_ready_event, version);
	FIELD(ht_ready_event, loader_pid);
	FIELD(ht_ready_event, realtime_offset_ns);
	FIELD(ht_ready_event, max_data);
	FIELD(ht_ready_event, ringbuf_bytes);
	FIELD(ht_ready_event, ncpus);
	FIELD(ht_ready_event, features);
	first = 0;
	printf("}},\"ht_stats_event\":{\"size\":%zu,\"fields\":{", sizeof(struct ht_stats_event));
	FIELD(ht_stats_event, kind);
	FIELD(ht_stats_event, realtime_offset_ns);
	FIELD(ht_stats_event, counters);
	first = 0;
	printf("}},\"ht_cpu_stats_event\":{\"size\":%zu,\"fields\":{", sizeof(struct ht_cpu_stats_event));
	FIELD(ht_cpu_stats_event, kind);
	FIELD(ht_cpu_stats_event, cpu);
	FIELD(ht_cpu_stats_event, counters);
	printf("}}},\"constants\":{\"HT_MAX_DATA\":%d", HT_MAX_DATA);
	CONST(HT_MAX_CHUNKS);
	CONST(HT_MAX_COPY);
	CONST(HT_DATA_HEADER_SIZE);
	CONST(HT_COMM_LEN);
	CONST(HT_ADDR_LEN);
	CONST(HT_LAYOUT_VERSION);
	CONST(HT_EV_DATA);
	CONST(HT_EV_CLOSE);
	CONST(HT_EV_READY);
	CONST(HT_EV_STATS);
	CONST(HT_EV_EXEC);
	CONST(HT_EV_ATTACH);
	CONST(HT_EV_CPU_STATS);
	CONST(HT_EV_PROC);
	CONST(HT_EV_TLS_OPEN);
	CONST(HT_EV_TLS_LEARNED);
	CONST(HT_TLS_OPEN_STOPPED);
	CONST(HT_TLS_PATH_LEN);
	CONST(HT_PROC_ENV_UNREADABLE);
	CONST(HT_PROC_ENV_CUT);
	CONST(HT_EXE_NAME_LEN);
	CONST(HT_ENV_SERVICE_LEN);
	CONST(HT_ENV_ATTRIBUTES_LEN);
	CONST(HT_DIR_EGRESS);
	CONST(HT_DIR_INGRESS);
	CONST(HT_SRC_WRITE);
	CONST(HT_SRC_WRITEV);
	CONST(HT_SRC_SENDTO);
	CONST(HT_SRC_SENDMSG);
	CONST(HT_SRC_READ);
	CONST(HT_SRC_READV);
	CONST(HT_SRC_RECVFROM);
	CONST(HT_SRC_RECVMSG);
	CONST(HT_SRC_SSL_WRITE);
	CONST(HT_SRC_SSL_READ);
	CONST(HT_SRC_GO_TLS_WRITE);
	CONST(HT_SRC_GO_TLS_READ);
	CONST(HT_FLAG_TLS);
	CONST(HT_FLAG_NO_SOCK);
	CONST(HT_FLAG_MORE);
	CONST(HT_TLS_FN_SSL_WRITE);
	CONST(HT_TLS_FN_SSL_READ);
	CONST(HT_TLS_FN_SSL_WRITE_EX);
	CONST(HT_TLS_FN_SSL_READ_EX);
	CONST(HT_TLS_FN_SSL_FREE);
	CONST(HT_TLS_FN_GO_WRITE);
	CONST(HT_TLS_FN_GO_READ);
	CONST(HT_TLS_FN_GO_CLOSE);
	CONST(HT_TLS_FN_GO_HANDSHAKE);
	CONST(HT_KF_KPROBES);
	CONST(HT_KF_BPF_LOOP);
	CONST(HT_CNT_DATA_EVENTS);
	CONST(HT_CNT_CLOSE_EVENTS);
	CONST(HT_CNT_RINGBUF_LOST);
	CONST(HT_CNT_TRUNCATED);
	CONST(HT_CNT_COPY_FAILED);
	CONST(HT_CNT_SELF_SKIPPED);
	CONST(HT_CNT_TLS_NO_SOCK);
	CONST(HT_CNT_CIPHERTEXT);
	CONST(HT_CNT_MAX);
	CONST(HT_MAX_FILTER_PIDS);
	CONST(HT_MAX_FILTER_COMMS);
	CONST(HT_MAX_FILTER_PORTS);
	CONST(HT_MAX_FILTER_CGROUPS);
	CONST(HT_MAX_SELF_PIDS);
	CONST(HT_RINGBUF_KB_DEFAULT);
	CONST(HT_RINGBUF_KB_MIN);
	CONST(HT_RINGBUF_KB_MAX);
	printf("}}\n");
	return 0;
}
