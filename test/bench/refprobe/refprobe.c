// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * refprobe: loads refprobe.bpf.c and drains its ring buffer, counting events
 * and bytes and throwing them away. Set WAKEUP_EVERY_EVENT=1 for libbpf's
 * default of one wakeup per event. Prints "refprobe ready" on stderr once
 * attached; on SIGINT/SIGTERM prints one line "events N bytes N lost N".
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "refprobe.skel.h"

static volatile sig_atomic_t exiting;
static unsigned long long events, bytes;

static void on_signal(int sig)
{
	(void)sig;
	exiting = 1;
}

static int on_event(void *ctx, void *data, size_t len)
{
	(void)ctx;
	(void)data;
	events++;
	bytes += len;
	return 0;
}

int main(void)
{
	struct refprobe_bpf *skel;
	struct ring_buffer *rb;
	unsigned long long lost = 0;
	__u32 zero = 0;
	int err;

	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	skel = refprobe_bpf__open();
	if (!skel) {
		fprintf(stderr, "refprobe: open failed: %s\n", strerror(errno));
		return 1;
	}
	skel->rodata->self_tgid = getpid();
	if (getenv("WAKEUP_EVERY_EVENT"))
		skel->rodata->wakeup_bytes = 0;
	err = refprobe_bpf__load(skel);
	if (!err)
		err = refprobe_bpf__attach(skel);
	if (err) {
		fprintf(stderr, "refprobe: load/attach failed: %s\n", strerror(-err));
		return 1;
	}
	rb = ring_buffer__new(bpf_map__fd(skel->maps.ref_events), on_event, NULL, NULL);
	if (!rb) {
		fprintf(stderr, "refprobe: ring buffer: %s\n", strerror(errno));
		return 1;
	}
	fprintf(stderr, "refprobe ready\n");
	while (!exiting) {
		err = ring_buffer__poll(rb, 20 /* ms: events wait at most this long */);
		if (err < 0 && err != -EINTR)
			break;
	}
	ring_buffer__consume(rb);
	bpf_map_lookup_elem(bpf_map__fd(skel->maps.ref_lost), &zero, &lost);
	fprintf(stderr, "events %llu bytes %llu lost %llu\n", events, bytes, lost);
	ring_buffer__free(rb);
	refprobe_bpf__destroy(skel);
	return 0;
}
