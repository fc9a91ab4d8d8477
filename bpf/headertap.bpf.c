// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/* headertap's kernel side: one object, one skeleton, probes split by concern. */
#include "vmlinux.h"
#include <bpf/bpf_helpers.h>
#include <bpf/bpf_core_read.h>
#include <bpf/bpf_endian.h>
#include <bpf/bpf_tracing.h>
#include "headertap.h"
#include "maps.bpf.h"
#include "sock.bpf.h"
#include "proc.bpf.h"
#include "emit.bpf.h"
#include "tls.bpf.h"
#include "syscalls.bpf.h"
#include "ssl.bpf.h"
#include "gotls.bpf.h"
#include "lifecycle.bpf.h"

char LICENSE[] SEC("license") = "Dual BSD/GPL";
