// SPDX-License-Identifier: (LGPL-2.1 OR BSD-2-Clause)
/*
 * headertap-loader: loads and attaches headertap's BPF programs and streams
 * their events to stdout as frames: a 4-byte little-endian length, then the
 * event exactly as headertap.h lays it out. Loader-made frames (ready, stats)
 * use the same framing. It exits when stdin reaches end of file (its parent,
 * the agent, went away or asked it to stop), on SIGINT/SIGTERM, or when stdout
 * closes.
 *
 * Errors are one line on stderr, "headertap-loader: <step>: <cause>; <fix>",
 * exit status 2 for environment problems the user can fix, 1 otherwise.
 *
 * Commands arrive on stdin, one a line, each answered by an HT_EV_ATTACH
 * frame carrying its ID and an error code (0 or a negative errno):
 *   attach-tls ID PATH   put the TLS uprobes on PATH (a library or program
 *                        exporting SSL_write/SSL_read).
 *   attach-go ID WRITE READ CLOSE HANDSHAKE WRITE_RETS READ_RETS HANDSHAKE_RETS PATH
 *                        put the Go crypto/tls uprobes on the Go program PATH:
 *                        decimal file offsets of (*Conn).Write's and Read's
 *                        entry probes, Close's and handshakeContext's (0:
 *                        none), a "j" suffix when the offset is the stack
 *                        check's JBE; comma-separated offsets of return
 *                        instructions of Write, of Read and of
 *                        handshakeContext ("-": none; Read's are required)
 *                        (src/source/go-binary.ts finds them). All or
 *                        nothing: on any failure no probe stays.
 *   set-filters ID [pid=N] [comm=NAME] [port=N] [cgroup=PATH]...
 *                        replace every capture filter at once (no value: capture
 *                        everything), with the meaning and limits of the flags.
 *                        Values are percent-encoded (%20 for a space, %25 for
 *                        %). A refused set (err < 0) leaves the old one in force.
 *                        See set_filters() for what the switch guarantees.
 *   set-copy-bytes ID N  bytes copied per socket call from now on, 1..1048576
 *                        (--copy-bytes at start); err -EINVAL otherwise.
 *
 * A file is probed once: attach-tls for a file already probed (same device
 * and inode) answers with the first result. The kernel reports a process
 * opening a libssl no probe covers yet (HT_EV_TLS_OPEN) and stops it; the
 * loader probes the file and resumes the process itself (tls_open()), then
 * tells the agent (HT_EV_TLS_LEARNED).
 */
#define _GNU_SOURCE /* F_SETPIPE_SZ */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <limits.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <linux/membarrier.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/sysmacros.h>
#include <sys/syscall.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>
#include <bpf/bpf.h>
#include <bpf/libbpf.h>
#include "headertap.h"
#include "headertap.skel.h"

#define EXIT_ENV 2
/* A number from headertap.h in a string literal. */
#define STR_(x) #x
#define STR(x) STR_(x)
#define CGROUP2_SUPER_MAGIC 0x63677270
#define BPF_FS_MAGIC 0xcafe4a11
/*
 * ht_self_endpoints is shared by every agent on the host through this pin
 * (maps.bpf.h). The name carries the map's layout version: a loader whose
 * map differs pins its own instead of failing to reuse an incompatible one.
 */
#define HT_BPFFS "/sys/fs/bpf"
#define HT_PIN_DIR HT_BPFFS "/headertap"
#define HT_PIN_AGENTS HT_PIN_DIR "/agents"
#define HT_PIN_SELF_ENDPOINTS HT_PIN_DIR "/self_endpoints_v1"
#define STATS_INTERVAL_NS 1000000000ULL
/* The BPF side wakes us only when wakeup_bytes wait (maps.bpf.h); below that,
 * events wait at most this long. */
#define POLL_INTERVAL_MS 20
#define WAKEUP_BYTES (64 * 1024)

/* Capture filters as given (flags, or a set-filters command), before they are
 * put in force by set_filters(). */
struct filter_args {
	struct ht_filter_set set;              /* any and cgroup_index are set_filters()' */
	int cgroup_fds[HT_MAX_FILTER_CGROUPS]; /* open cgroup v2 directories, for ht_cgroup_filter */
};

static struct env {
	struct filter_args filters; /* from the flags */
	__u32 self[HT_MAX_SELF_PIDS];
	int n_self;
	unsigned long ringbuf_kb;
	unsigned long copy_bytes;
	bool no_tls;
	bool no_tls_hold;
	bool verbose;
	bool verifier_stats;
} env = {
	.ringbuf_kb = HT_RINGBUF_KB_DEFAULT,
	.copy_bytes = HT_MAX_DATA,
};

static volatile sig_atomic_t exiting;
static bool stdout_broken;
/* HT_PIN_DIR, locked exclusively while a loader creates or removes the pin. */
static int pin_lock_fd = -1;
/* HT_PIN_AGENTS, locked shared for as long as this loader runs: the pin is in use. */
static int agents_fd = -1;

static const char usage[] =
	"Usage: headertap-loader [OPTION]...\n"
	"Load headertap's eBPF programs and stream framed events on stdout.\n"
	"Normally started by `headertap run`, not by hand.\n"
	"\n"
	"  --pid N          capture only process N (repeatable, up to " STR(HT_MAX_FILTER_PIDS) ")\n"
	"  --comm NAME      capture only processes named NAME (repeatable, up to " STR(HT_MAX_FILTER_COMMS) ")\n"
	"  --port N         capture only connections with N at either end (repeatable, up to " STR(HT_MAX_FILTER_PORTS) ")\n"
	"  --self-pid N     never capture process N nor its peers (repeatable; " STR(HT_MAX_SELF_PIDS) " slots, one the loader's)\n"
	"  --cgroup PATH    capture only processes in cgroup v2 directory PATH or below it\n"
	"                   (repeatable, up to " STR(HT_MAX_FILTER_CGROUPS) ")\n"
	"  --ringbuf-kb N   ring buffer size in KiB, a power of two >= " STR(HT_RINGBUF_KB_MIN) " (default " STR(HT_RINGBUF_KB_DEFAULT) ")\n"
	"  --copy-bytes N   bytes copied per syscall, 1..1048576, sent in events of up to\n"
	"                   " STR(HT_MAX_DATA) " bytes (default " STR(HT_MAX_DATA) ")\n"
	"  --no-tls         no TLS capture: no exec events, attach-tls and attach-go are refused\n"
	"  --no-tls-hold    do not stop a process that opens a libssl not probed yet until\n"
	"                   it is probed (its first TLS calls may then be missed)\n"
	"  --verbose        print libbpf's messages\n"
	"  --verifier-stats load the programs, print per program the instructions the\n"
	"                   verifier processed and its time, then exit (nothing attached)\n"
	"  --help           show this help\n";

static void die(int code, const char *fmt, ...)
{
	va_list ap;

	fputs("headertap-loader: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
	exit(code);
}

static unsigned long parse_num(const char *flag, const char *arg, unsigned long min,
			       unsigned long max)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(arg, &end, 10);
	if (errno || end == arg || *end || arg[0] == '-' || v < min || v > max)
		die(EXIT_ENV, "invalid %s '%s': expected an integer from %lu to %lu", flag, arg,
		    min, max);
	return v;
}

enum {
	OPT_PID = 1,
	OPT_COMM,
	OPT_PORT,
	OPT_SELF,
	OPT_RINGBUF,
	OPT_COPY,
	OPT_VERBOSE,
	OPT_HELP,
	OPT_NO_TLS,
	OPT_CGROUP,
	OPT_NO_TLS_HOLD,
	OPT_VERIFIER_STATS,
};

/* --cgroup: keep the directory open; its fd goes into ht_cgroup_filter. */
static int open_cgroup(const char *path, char *err, size_t errlen)
{
	struct statfs sfs;
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0) {
		int e = errno;

		snprintf(err, errlen, "invalid --cgroup '%s': %s; expected a cgroup v2 directory",
			 path, strerror(e));
		return -e;
	}
	if (fstatfs(fd, &sfs) || sfs.f_type != CGROUP2_SUPER_MAGIC) {
		close(fd);
		snprintf(err, errlen,
			 "invalid --cgroup '%s': not in a cgroup v2 file system; use a directory "
			 "under the cgroup2 mount (see `grep cgroup2 /proc/mounts`)",
			 path);
		return -EINVAL;
	}
	return fd;
}

static bool parse_u32(const char *arg, unsigned long min, unsigned long max, unsigned long *v)
{
	char *end;

	errno = 0;
	*v = strtoul(arg, &end, 10);
	return !errno && end != arg && !*end && arg[0] != '-' && *v >= min && *v <= max;
}

/*
 * Adds one --pid, --comm, --port or --cgroup value (opt: OPT_*) to f.
 * Returns 0, or a negative errno with a message in err.
 */
static int filter_add(struct filter_args *f, int opt, const char *value, char *err, size_t errlen)
{
	struct ht_filter_set *set = &f->set;
	unsigned long v;
	int fd;

	switch (opt) {
	case OPT_PID:
		if (set->n_tgids == HT_MAX_FILTER_PIDS)
			goto too_many;
		if (!parse_u32(value, 1, INT_MAX, &v))
			goto invalid;
		set->tgids[set->n_tgids++] = v;
		return 0;
	case OPT_COMM:
		if (set->n_comms == HT_MAX_FILTER_COMMS)
			goto too_many;
		if (!value[0] || strlen(value) >= HT_COMM_LEN) {
			snprintf(err, errlen, "invalid --comm '%s': expected 1 to %d characters", value,
				 HT_COMM_LEN - 1);
			return -EINVAL;
		}
		memset(set->comms[set->n_comms], 0, HT_COMM_LEN);
		strncpy(set->comms[set->n_comms++], value, HT_COMM_LEN - 1);
		return 0;
	case OPT_PORT:
		if (set->n_ports == HT_MAX_FILTER_PORTS)
			goto too_many;
		if (!parse_u32(value, 1, 65535, &v))
			goto invalid;
		set->ports[set->n_ports++] = v;
		return 0;
	case OPT_CGROUP:
		if (set->n_cgroups == HT_MAX_FILTER_CGROUPS)
			goto too_many;
		fd = open_cgroup(value, err, errlen);
		if (fd < 0)
			return fd;
		f->cgroup_fds[set->n_cgroups++] = fd;
		return 0;
	}
	snprintf(err, errlen, "unknown filter");
	return -EINVAL;
too_many:
	snprintf(err, errlen, "too many %s filters (at most %d)",
		 opt == OPT_PID ? "--pid" : opt == OPT_COMM ? "--comm" : opt == OPT_PORT ? "--port" : "--cgroup",
		 opt == OPT_PID ? HT_MAX_FILTER_PIDS : opt == OPT_COMM ? HT_MAX_FILTER_COMMS
			: opt == OPT_PORT ? HT_MAX_FILTER_PORTS : HT_MAX_FILTER_CGROUPS);
	return -E2BIG;
invalid:
	snprintf(err, errlen, "invalid %s '%s': expected an integer from 1 to %d",
		 opt == OPT_PID ? "--pid" : "--port", value, opt == OPT_PID ? INT_MAX : 65535);
	return -EINVAL;
}

static void filter_args_free(struct filter_args *f)
{
	for (__u32 i = 0; i < f->set.n_cgroups; i++)
		close(f->cgroup_fds[i]);
	f->set.n_cgroups = 0;
}

static void parse_args(int argc, char **argv)
{
	static const struct option opts[] = {
		{ "pid", required_argument, NULL, OPT_PID },
		{ "comm", required_argument, NULL, OPT_COMM },
		{ "port", required_argument, NULL, OPT_PORT },
		{ "self-pid", required_argument, NULL, OPT_SELF },
		{ "cgroup", required_argument, NULL, OPT_CGROUP },
		{ "ringbuf-kb", required_argument, NULL, OPT_RINGBUF },
		{ "copy-bytes", required_argument, NULL, OPT_COPY },
		{ "no-tls", no_argument, NULL, OPT_NO_TLS },
		{ "no-tls-hold", no_argument, NULL, OPT_NO_TLS_HOLD },
		{ "verbose", no_argument, NULL, OPT_VERBOSE },
		{ "verifier-stats", no_argument, NULL, OPT_VERIFIER_STATS },
		{ "help", no_argument, NULL, OPT_HELP },
		{},
	};
	int opt;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case OPT_PID:
		case OPT_COMM:
		case OPT_PORT:
		case OPT_CGROUP: {
			char err[PATH_MAX + 128];

			if (filter_add(&env.filters, opt, optarg, err, sizeof(err)))
				die(EXIT_ENV, "%s", err);
			break;
		}
		case OPT_SELF:
			if (env.n_self == HT_MAX_SELF_PIDS - 1) /* one slot kept for the loader */
				die(EXIT_ENV, "too many --self-pid values (at most %d)",
				    HT_MAX_SELF_PIDS - 1);
			env.self[env.n_self++] = parse_num("--self-pid", optarg, 1, INT_MAX);
			break;
		case OPT_RINGBUF:
			env.ringbuf_kb = parse_num("--ringbuf-kb", optarg, HT_RINGBUF_KB_MIN, HT_RINGBUF_KB_MAX);
			if (env.ringbuf_kb & (env.ringbuf_kb - 1))
				die(EXIT_ENV, "invalid --ringbuf-kb '%s': expected a power of two", optarg);
			break;
		case OPT_COPY:
			env.copy_bytes = parse_num("--copy-bytes", optarg, 1, HT_MAX_COPY);
			break;
		case OPT_NO_TLS:
			env.no_tls = true;
			break;
		case OPT_NO_TLS_HOLD:
			env.no_tls_hold = true;
			break;
		case OPT_VERBOSE:
			env.verbose = true;
			break;
		case OPT_VERIFIER_STATS:
			env.verifier_stats = true;
			break;
		case OPT_HELP:
			fputs(usage, stdout);
			exit(0);
		default:
			die(EXIT_ENV, "unknown option '%s'; see --help", argv[optind - 1]);
		}
	}
	if (optind < argc)
		die(EXIT_ENV, "unexpected argument '%s'; see --help", argv[optind]);
}

/* Set while probing a target for TLS functions: most targets have none, and
 * libbpf's "failed to find symbol" warnings are then expected, not news. */
static bool probing_tls;

static int libbpf_print_fn(enum libbpf_print_level level, const char *format, va_list args)
{
	if (probing_tls && !env.verbose)
		return 0;
	if (level == LIBBPF_DEBUG && !env.verbose)
		return 0;
	if (level == LIBBPF_INFO && !env.verbose)
		return 0;
	return vfprintf(stderr, format, args);
}

static void on_signal(int sig)
{
	(void)sig;
	exiting = 1;
}

static __s64 realtime_offset_ns(void)
{
	struct timespec rt, mono;

	clock_gettime(CLOCK_MONOTONIC, &mono);
	clock_gettime(CLOCK_REALTIME, &rt);
	return ((__s64)rt.tv_sec - mono.tv_sec) * 1000000000LL + (rt.tv_nsec - mono.tv_nsec);
}

static __u64 now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (__u64)ts.tv_sec * 1000000000ULL + ts.tv_nsec;
}

/* One frame: 4-byte little-endian length, then the bytes. Buffered. */
static void write_frame(const void *data, __u32 len)
{
	__u8 hdr[4] = { len & 0xff, (len >> 8) & 0xff, (len >> 16) & 0xff, len >> 24 };

	if (stdout_broken)
		return;
	if (fwrite(hdr, sizeof(hdr), 1, stdout) != 1 || fwrite(data, len, 1, stdout) != 1) {
		stdout_broken = true;
		exiting = 1;
	}
}

static void tls_open(struct headertap_bpf *skel, const struct ht_tls_open_event *e);

static int on_event(void *ctx, void *data, size_t len)
{
	/* First, and even when stdout is gone: the process may be stopped until this runs. */
	if (len >= sizeof(struct ht_tls_open_event) && *(__u8 *)data == HT_EV_TLS_OPEN) {
		tls_open(ctx, data);
		return 0;
	}
	write_frame(data, len);
	return 0; /* when stdout broke, go on reading: a later event may be a stopped process */
}

static void emit_stats(struct headertap_bpf *skel, int ncpus)
{
	struct ht_stats_event st = { .kind = HT_EV_STATS };
	int fd = bpf_map__fd(skel->maps.ht_counters);
	/* vals[counter * ncpus + cpu]: the per-CPU values of every counter */
	__u64 *vals = calloc((size_t)ncpus * HT_CNT_MAX, sizeof(__u64));

	if (!vals)
		return;
	for (__u32 i = 0; i < HT_CNT_MAX; i++) {
		if (bpf_map_lookup_elem(fd, &i, vals + (size_t)i * ncpus))
			continue;
		for (int c = 0; c < ncpus; c++)
			st.counters[i] += vals[(size_t)i * ncpus + c];
	}
	st.realtime_offset_ns = realtime_offset_ns();
	write_frame(&st, sizeof(st));
	/* Ring-buffer loss per CPU: one hot CPU can lose events while others don't. */
	for (int c = 0; c < ncpus; c++) {
		struct ht_cpu_stats_event cs = { .kind = HT_EV_CPU_STATS, .cpu = c };

		if (!vals[(size_t)HT_CNT_RINGBUF_LOST * ncpus + c])
			continue;
		for (__u32 i = 0; i < HT_CNT_MAX; i++)
			cs.counters[i] = vals[(size_t)i * ncpus + c];
		write_frame(&cs, sizeof(cs));
	}
	free(vals);
}

/* libbpf attaches tracepoints through tracefs; mount it when nobody has. */
static void ensure_tracefs(void)
{
	struct stat st;

	if (!stat("/sys/kernel/tracing/events/syscalls", &st) ||
	    !stat("/sys/kernel/debug/tracing/events/syscalls", &st))
		return;
	if (mount("tracefs", "/sys/kernel/tracing", "tracefs", 0, NULL) && errno != EBUSY)
		die(EXIT_ENV,
		    "cannot mount tracefs at /sys/kernel/tracing: %s; mount it with "
		    "`mount -t tracefs tracefs /sys/kernel/tracing` or run as root",
		    strerror(errno));
	if (stat("/sys/kernel/tracing/events/syscalls", &st))
		die(EXIT_ENV,
		    "kernel has no syscall tracepoints (/sys/kernel/tracing/events/syscalls "
		    "missing); headertap needs CONFIG_FTRACE_SYSCALLS=y");
}

/* A warning the agent shows (src/source/loader.ts): one line, the step, the cause, the consequence. */
static void warn(const char *fmt, ...)
{
	va_list ap;

	fputs("headertap-loader: warning: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/*
 * bpffs at /sys/fs/bpf, mounted when nobody has (systemd and Kubernetes
 * nodes have it). Each mount of bpffs is a separate instance, so two
 * loaders must not both mount it: the mount point is locked meanwhile.
 */
static bool ensure_bpffs(void)
{
	struct statfs sfs;
	bool ok;
	int fd;

	if (!statfs(HT_BPFFS, &sfs) && sfs.f_type == BPF_FS_MAGIC)
		return true;
	fd = open(HT_BPFFS, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return false;
	flock(fd, LOCK_EX);
	ok = !statfs(HT_BPFFS, &sfs) && sfs.f_type == BPF_FS_MAGIC;
	if (!ok)
		ok = !mount("bpf", HT_BPFFS, "bpf", 0, "mode=0700") && !statfs(HT_BPFFS, &sfs) &&
		     sfs.f_type == BPF_FS_MAGIC;
	close(fd);
	return ok;
}

/*
 * Every headertap agent on the host must know every other one's sockets, or
 * two agents record each other's OTLP exports, and then the records of those
 * exports, without end. So ht_self_endpoints is not this loader's own: it is
 * pinned in bpffs, and every loader reuses the pinned map (libbpf does, at
 * load, given the pin path). Each loader still registers only its own
 * agent's sockets; every loader skips sockets whose local or remote end is
 * registered (emit.bpf.h).
 *
 * The pin's lifetime, with loaders coming and going (and crashing):
 *  - a running loader holds a shared flock on HT_PIN_AGENTS; the kernel
 *    drops it when the loader dies, however it dies;
 *  - creating and removing the pin happen under an exclusive flock on
 *    HT_PIN_DIR, so a loader starting never reuses a pin the last one is
 *    removing;
 *  - a loader that finds no other holder starts from a fresh map (what is
 *    pinned was left by agents that crashed: stale endpoints that could
 *    hide an unrelated connection reusing their port); the last one to stop
 *    removes the pin, so nothing stays in bpffs after the last agent.
 * The empty directories stay (removing them would race with a loader
 * opening them).
 *
 * Without bpffs (not mountable, a container without /sys/fs/bpf from the
 * host) the map stays private and this loader says so: agents then rely on
 * the agent's user-space rule alone (src/cli/own-exports.ts).
 */
static void share_self_endpoints(struct headertap_bpf *skel)
{
	if (!ensure_bpffs()) {
		warn("no bpffs at %s (%s): other headertap agents on this host cannot see this one's "
		     "sockets in the kernel; mount it with `mount -t bpf bpf %s`",
		     HT_BPFFS, strerror(errno), HT_BPFFS);
		return;
	}
	if ((mkdir(HT_PIN_DIR, 0700) && errno != EEXIST) || (mkdir(HT_PIN_AGENTS, 0700) && errno != EEXIST) ||
	    (pin_lock_fd = open(HT_PIN_DIR, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0 ||
	    (agents_fd = open(HT_PIN_AGENTS, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) < 0) {
		warn("cannot use %s (%s): other headertap agents on this host cannot see this one's "
		     "sockets in the kernel",
		     HT_PIN_DIR, strerror(errno));
		return;
	}
	flock(pin_lock_fd, LOCK_EX); /* released once the map is loaded (pinned or reused) */
	if (!flock(agents_fd, LOCK_EX | LOCK_NB))
		unlink(HT_PIN_SELF_ENDPOINTS); /* no other agent runs: whatever is pinned is stale */
	flock(agents_fd, LOCK_SH);
	bpf_map__set_pin_path(skel->maps.ht_self_endpoints, HT_PIN_SELF_ENDPOINTS);
}

/* After load: the pin exists (made or reused); other loaders may start or stop. */
static void self_endpoints_shared(void)
{
	if (pin_lock_fd >= 0)
		flock(pin_lock_fd, LOCK_UN);
}

/* At exit: the last agent removes the pin. */
static void unshare_self_endpoints(void)
{
	if (pin_lock_fd < 0)
		return;
	flock(pin_lock_fd, LOCK_EX);
	/* Exclusive only when no other loader holds it shared (this one's shared lock is traded). */
	if (!flock(agents_fd, LOCK_EX | LOCK_NB))
		unlink(HT_PIN_SELF_ENDPOINTS);
	close(agents_fd);
	close(pin_lock_fd);
	agents_fd = pin_lock_fd = -1;
}

static void check_kernel(void)
{
	if (access("/sys/kernel/btf/vmlinux", R_OK))
		die(EXIT_ENV,
		    "kernel has no BTF (/sys/kernel/btf/vmlinux: %s); headertap needs a kernel "
		    "built with CONFIG_DEBUG_INFO_BTF=y (Debian 11+, Ubuntu 20.10+ have it)",
		    strerror(errno));
	if (!libbpf_probe_bpf_map_type(BPF_MAP_TYPE_RINGBUF, NULL))
		die(EXIT_ENV, "kernel has no BPF ring buffer; headertap needs Linux 5.8 or newer");
}

/*
 * What the kernel offers beyond what headertap needs, for the ready line
 * (HT_KF_*): nothing here changes what is loaded, it tells a user (and the
 * kernel matrix, test/kernels) which kernel the agent found.
 */
static __u32 kernel_features(void)
{
	__u32 f = 0;

	/* libbpf attaches kprobes through this PMU; a kernel without CONFIG_KPROBE_EVENTS has none. */
	if (!access("/sys/bus/event_source/devices/kprobe/type", R_OK))
		f |= HT_KF_KPROBES;
	if (libbpf_probe_bpf_helper(BPF_PROG_TYPE_TRACEPOINT, BPF_FUNC_loop, NULL) == 1)
		f |= HT_KF_BPF_LOOP;
	return f;
}

/* Settings fixed at load, between open and load (and copy_limit's start value: set-copy-bytes changes it later). */
static void set_rodata(struct headertap_bpf *skel)
{
	struct headertap_bpf__rodata *ro = skel->rodata;
	__u64 key = 0;

	for (int i = 0; i < env.n_self; i++)
		ro->self_tgids[i] = env.self[i];
	ro->n_self_tgids = env.n_self;
	skel->data->copy_limit = env.copy_bytes;
	ro->tls_capture = !env.no_tls;
	ro->tls_hold = !env.no_tls && !env.no_tls_hold;
	/* A small ring must not fill before anyone is woken. */
	ro->wakeup_bytes = env.ringbuf_kb * 1024 / 8 < WAKEUP_BYTES ? env.ringbuf_kb * 1024 / 8 : WAKEUP_BYTES;
	if (getrandom(&key, sizeof(key), 0) != sizeof(key))
		key = now_ns() * 0x9E3779B97F4A7C15ULL;
	ro->sock_id_key = key;
}

/*
 * Returns once no probe can still be reading what it read before this call.
 * Non-sleepable BPF programs run inside RCU read-side sections, and
 * MEMBARRIER_CMD_GLOBAL waits for an RCU grace period (synchronize_rcu).
 * Kernels with nohz_full refuse it: then sleep far longer than any probe runs.
 */
static void wait_for_probes(void)
{
	struct timespec pause = { .tv_nsec = 50 * 1000 * 1000 };

	if (syscall(__NR_membarrier, MEMBARRIER_CMD_GLOBAL, 0, 0) == 0)
		return;
	nanosleep(&pause, NULL);
}

/*
 * Puts a complete filter set in force; closes f's cgroup fds (the map keeps
 * its own references). Returns 0, or a negative errno with the old set still
 * in force.
 *
 * What a switch guarantees: every socket syscall and every TLS call is judged
 * by one complete set, the old or the new, never by a mix (one kind from
 * each). Probes read ht_filter_slot once per call (ht_filters_now()) and use
 * that slot throughout; this fills the slot not in force, flips the index,
 * then waits until no probe can still be using the old slot, so the next
 * switch may rewrite it. Capture never stops: no program is detached, no map
 * replaced. A call that entered under the old set may complete after the
 * switch (a blocking read, its bytes sent as the old set judged them); user
 * space applies the new set to connections it already follows, so no exchange
 * becomes a record half under each set (src/http/stitcher.ts, setFilter).
 */
static int set_filters(struct headertap_bpf *skel, struct filter_args *f, bool running)
{
	__u32 next = !(skel->bss->ht_filter_slot & 1);
	int map_fd = bpf_map__fd(skel->maps.ht_cgroup_filter);
	struct ht_filter_set *set = &f->set;
	int err = 0;

	set->cgroup_index = next * HT_MAX_FILTER_CGROUPS;
	set->any = set->n_tgids || set->n_comms || set->n_ports || set->n_cgroups;
	for (__u32 i = 0; i < HT_MAX_FILTER_CGROUPS; i++) {
		__u32 key = set->cgroup_index + i;

		if (i < set->n_cgroups) {
			if (bpf_map_update_elem(map_fd, &key, &f->cgroup_fds[i], BPF_ANY)) {
				err = -errno;
				break;
			}
		} else {
			/* Entries of an older set hold their cgroup: let it go. */
			bpf_map_delete_elem(map_fd, &key);
		}
	}
	if (!err) {
		memcpy((void *)&skel->bss->ht_filters[next], set, sizeof(*set));
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		skel->bss->ht_filter_slot = next;
	}
	filter_args_free(f); /* after the copy: it clears n_cgroups */
	if (!err && running)
		wait_for_probes();
	return err;
}

/* The TLS library functions probed in each target. */
static const struct tls_fn {
	const char *name;
	__u32 bit;  /* HT_TLS_FN_* */
	bool ret;   /* also probe the return (the byte count is known then) */
} tls_fns[] = {
	{ "SSL_write", HT_TLS_FN_SSL_WRITE, true },
	{ "SSL_read", HT_TLS_FN_SSL_READ, true },
	{ "SSL_write_ex", HT_TLS_FN_SSL_WRITE_EX, true },
	{ "SSL_read_ex", HT_TLS_FN_SSL_READ_EX, true },
	{ "SSL_free", HT_TLS_FN_SSL_FREE, false },
};
#define N_TLS_FNS (sizeof(tls_fns) / sizeof(tls_fns[0]))
#define HT_TLS_DATA_FNS \
	(HT_TLS_FN_SSL_WRITE | HT_TLS_FN_SSL_READ | HT_TLS_FN_SSL_WRITE_EX | HT_TLS_FN_SSL_READ_EX)
/* Links of every attached target: 9 per OpenSSL target; a Go program takes
 * 3 plus one per return instruction of Write and Read (about 20). */
#define MAX_TLS_LINKS 8192
/* Return instructions accepted per Go function (Go 1.19's Write has 8). */
#define MAX_GO_RETS 64

static struct bpf_link *tls_links[MAX_TLS_LINKS];
static int n_tls_links;

static struct bpf_program *tls_entry_prog(struct headertap_bpf *skel, __u32 bit)
{
	switch (bit) {
	case HT_TLS_FN_SSL_WRITE:
		return skel->progs.ht_ssl_write;
	case HT_TLS_FN_SSL_READ:
		return skel->progs.ht_ssl_read;
	case HT_TLS_FN_SSL_WRITE_EX:
		return skel->progs.ht_ssl_write_ex;
	case HT_TLS_FN_SSL_READ_EX:
		return skel->progs.ht_ssl_read_ex;
	default:
		return skel->progs.ht_ssl_free;
	}
}

static struct bpf_link *attach_uprobe(struct bpf_program *prog, const char *path, const char *fn,
				      bool retprobe)
{
	LIBBPF_OPTS(bpf_uprobe_opts, opts, .func_name = fn, .retprobe = retprobe);

	/* pid -1: every process that maps this file, now and later. */
	return bpf_program__attach_uprobe_opts(prog, -1, path, 0 /* offset from func_name */, &opts);
}

/*
 * Puts the TLS probes on every function of tls_fns that path exports.
 * Returns 0 when plaintext can be captured from it, -ENOENT when it has no
 * TLS functions, another negative errno when attaching failed.
 */
static __s32 attach_tls(struct headertap_bpf *skel, const char *path, __u32 *attached)
{
	int first_err = 0;

	*attached = 0;
	if (env.no_tls)
		return -EPERM;
	probing_tls = true;
	for (size_t i = 0; i < N_TLS_FNS; i++) {
		const struct tls_fn *fn = &tls_fns[i];
		struct bpf_link *entry, *ret = NULL;

		if (n_tls_links + 2 > MAX_TLS_LINKS) {
			first_err = -E2BIG;
			break;
		}
		entry = attach_uprobe(tls_entry_prog(skel, fn->bit), path, fn->name, false);
		if (!entry) {
			if (errno != ENOENT && !first_err)
				first_err = -errno;
			continue;
		}
		if (fn->ret) {
			ret = attach_uprobe(skel->progs.ht_ssl_ret, path, fn->name, true);
			if (!ret) {
				if (!first_err)
					first_err = -errno;
				bpf_link__destroy(entry);
				continue;
			}
		}
		tls_links[n_tls_links++] = entry;
		if (ret)
			tls_links[n_tls_links++] = ret;
		*attached |= fn->bit;
	}
	probing_tls = false;
	if (*attached & HT_TLS_DATA_FNS) {
		skel->bss->tls_enabled = 1;
		return 0;
	}
	return first_err ? first_err : -ENOENT;
}

/* cookie: HT_GO_AT_CHECK when off is a Go prologue's stack-check JBE (gotls.bpf.h). */
static struct bpf_link *attach_uprobe_at(struct bpf_program *prog, const char *path, size_t off,
					 __u64 cookie)
{
	LIBBPF_OPTS(bpf_uprobe_opts, opts, .bpf_cookie = cookie);

	/* pid -1: every process that maps this file, now and later. */
	return bpf_program__attach_uprobe_opts(prog, -1, path, off, &opts);
}

/* Parses "N,N,..." into offs; returns the count, or -EINVAL. */
static int parse_offsets(const char *s, size_t *offs, int max)
{
	int n = 0;

	while (*s) {
		char *end;
		unsigned long long v;

		errno = 0;
		v = strtoull(s, &end, 10);
		if (errno || end == s || !v || n == max)
			return -EINVAL;
		offs[n++] = v;
		if (*end == ',')
			end++;
		else if (*end)
			return -EINVAL;
		s = end;
	}
	return n;
}

/*
 * "WRITE READ CLOSE HANDSHAKE WRITE_RETS READ_RETS HANDSHAKE_RETS PATH": the
 * Go crypto/tls probes. Returns 0 with every probe attached, or a negative
 * errno with none.
 */
static __s32 attach_go(struct headertap_bpf *skel, char *args, __u32 *attached)
{
	size_t entries[4], rets[3][MAX_GO_RETS];
	int n_rets[3];
	char *fields[7], *path, *save = NULL;
	int start = n_tls_links, err = 0;
	bool at_check[4] = {};
	struct {
		struct bpf_program *prog;
		size_t off;
		__u64 cookie;
	} want[4 + 3 * MAX_GO_RETS];
	int n_want = 0;

	*attached = 0;
	if (env.no_tls)
		return -EPERM;
	for (int i = 0; i < 7; i++) {
		fields[i] = strtok_r(i ? NULL : args, " ", &save);
		if (!fields[i])
			return -EINVAL;
	}
	path = save; /* the rest of the line, spaces included */
	if (!path || path[0] != '/')
		return -EINVAL;
	for (int i = 0; i < 4; i++) {
		char *end;

		errno = 0;
		entries[i] = strtoull(fields[i], &end, 10);
		at_check[i] = *end == 'j';
		if (at_check[i])
			end++;
		if (errno || end == fields[i] || *end || (i < 2 && !entries[i]))
			return -EINVAL;
	}
	for (int i = 0; i < 3; i++) {
		n_rets[i] = !strcmp(fields[4 + i], "-") ? 0 : parse_offsets(fields[4 + i], rets[i], MAX_GO_RETS);
		if (n_rets[i] < 0 || (i == 1 && !n_rets[i]))
			return -EINVAL;
	}
	if (!entries[3] != !n_rets[2])
		return -EINVAL; /* a handshake entry without returns (or returns without entry) */

	{
		struct bpf_program *entry_progs[4] = { skel->progs.ht_go_write, skel->progs.ht_go_read,
							skel->progs.ht_go_close, skel->progs.ht_go_handshake };

		for (int i = 0; i < 4; i++) {
			if (!entries[i])
				continue;
			want[n_want].prog = entry_progs[i];
			want[n_want].cookie = at_check[i] ? HT_GO_AT_CHECK : 0;
			want[n_want++].off = entries[i];
		}
	}
	for (int f = 0; f < 3; f++) {
		for (int i = 0; i < n_rets[f]; i++) {
			want[n_want].prog = f < 2 ? skel->progs.ht_go_ret : skel->progs.ht_go_handshake_ret;
			want[n_want].cookie = 0;
			want[n_want++].off = rets[f][i];
		}
	}
	if (n_tls_links + n_want > MAX_TLS_LINKS)
		return -E2BIG;
	for (int i = 0; i < n_want; i++) {
		struct bpf_link *link = attach_uprobe_at(want[i].prog, path, want[i].off, want[i].cookie);

		if (!link) {
			err = errno ? -errno : -EINVAL;
			break;
		}
		tls_links[n_tls_links++] = link;
	}
	if (err) {
		while (n_tls_links > start)
			bpf_link__destroy(tls_links[--n_tls_links]);
		return err;
	}
	*attached = HT_TLS_FN_GO_WRITE | HT_TLS_FN_GO_READ | (entries[2] ? HT_TLS_FN_GO_CLOSE : 0) |
		    (entries[3] ? HT_TLS_FN_GO_HANDSHAKE : 0);
	skel->bss->go_enabled = 1;
	skel->bss->tls_enabled = 1;
	return 0;
}

/* Files probed (or tried), by device and inode as stat() gives them, with
 * their result: each file is probed once, whoever asks (attach-tls, or the
 * kernel's HT_EV_TLS_OPEN). Bounded like the links. */
#define MAX_TLS_FILES 512
static struct tls_file {
	dev_t dev;
	ino_t ino;
	__s32 err;
	__u32 attached;
} tls_files[MAX_TLS_FILES];
static int n_tls_files;

/* Tells the kernel a file needs no stop any more (ht_tls_files). */
static void tls_file_done(struct headertap_bpf *skel, const struct ht_tls_file_key *key, __s32 err,
			  __u32 attached)
{
	struct ht_tls_file val = { .err = err, .attached = attached };

	bpf_map_update_elem(bpf_map__fd(skel->maps.ht_tls_files), key, &val, BPF_ANY);
}

/*
 * Probes `path` once per file (device and inode): later requests for the
 * same file get the first result. The kernel's view of the file (for
 * ht_tls_files) is what stat() says, converted to the kernel's dev_t.
 */
static __s32 attach_tls_once(struct headertap_bpf *skel, const char *path, __u32 *attached,
			     struct stat *st)
{
	struct ht_tls_file_key key = {};
	__s32 err;

	if (stat(path, st))
		return -errno;
	for (int i = 0; i < n_tls_files; i++) {
		if (tls_files[i].dev == st->st_dev && tls_files[i].ino == st->st_ino) {
			*attached = tls_files[i].attached;
			return tls_files[i].err;
		}
	}
	err = attach_tls(skel, path, attached);
	if (n_tls_files < MAX_TLS_FILES)
		tls_files[n_tls_files++] = (struct tls_file){ st->st_dev, st->st_ino, err, *attached };
	key.dev = ((__u64)major(st->st_dev) << 20) | minor(st->st_dev);
	key.ino = st->st_ino;
	tls_file_done(skel, &key, err, *attached);
	return err;
}

/*
 * A process opened a libssl no probe covers (HT_EV_TLS_OPEN), and may be
 * stopped: probe the file through the process's own descriptor (any mount
 * namespace), then resume the process whatever the result, then tell the
 * agent. Done here, in the loader, not by the agent, so the stop lasts one
 * attach and ends even when the agent is slow or gone.
 */
static void tls_open(struct headertap_bpf *skel, const struct ht_tls_open_event *e)
{
	struct ht_tls_learned_event out = { .kind = HT_EV_TLS_LEARNED, .flags = e->flags, .tgid = e->tgid };
	struct ht_tls_file_key key = { .dev = e->dev, .ino = e->ino };
	char fdpath[64];
	struct stat st = {};
	__u64 start = now_ns();
	ssize_t n;

	snprintf(fdpath, sizeof(fdpath), "/proc/%u/fd/%d", e->tgid, e->fd);
	/* While the process is stopped its descriptor is still open (ld.so closes it once all is mapped). */
	n = readlink(fdpath, out.path, sizeof(out.path) - 1);
	out.path[n > 0 ? n : 0] = '\0';
	out.err = attach_tls_once(skel, fdpath, &out.attached, &st);
	/* The kernel's own key too: stat() may show another device (overlayfs, btrfs). */
	tls_file_done(skel, &key, out.err, out.attached);
	if (e->flags & HT_TLS_OPEN_STOPPED)
		kill(e->tgid, SIGCONT);
	out.hold_ns = now_ns() - start;
	out.st_dev = st.st_dev;
	out.st_ino = st.st_ino;
	write_frame(&out, sizeof(out));
}

static void detach_tls(void)
{
	while (n_tls_links > 0)
		bpf_link__destroy(tls_links[--n_tls_links]);
}

/* Decodes %XX escapes in place; false on a malformed escape. */
static bool percent_decode(char *s)
{
	char *out = s;

	for (; *s; s++) {
		if (*s != '%') {
			*out++ = *s;
			continue;
		}
		unsigned int byte;

		if (!s[1] || !s[2] || sscanf(s + 1, "%2x", &byte) != 1 || !byte)
			return false;
		*out++ = (char)byte;
		s += 2;
	}
	*out = '\0';
	return true;
}

/* "set-filters" arguments: kind=value tokens separated by spaces. */
static int set_filters_command(struct headertap_bpf *skel, char *args)
{
	static const struct {
		const char *name;
		int opt;
	} kinds[] = { { "pid=", OPT_PID }, { "comm=", OPT_COMM }, { "port=", OPT_PORT }, { "cgroup=", OPT_CGROUP } };
	struct filter_args f = {};
	char err[PATH_MAX + 128];
	char *tok, *save = NULL;

	for (tok = strtok_r(args, " ", &save); tok; tok = strtok_r(NULL, " ", &save)) {
		int opt = 0, ret;
		size_t k;

		for (k = 0; k < sizeof(kinds) / sizeof(kinds[0]); k++) {
			if (!strncmp(tok, kinds[k].name, strlen(kinds[k].name))) {
				opt = kinds[k].opt;
				tok += strlen(kinds[k].name);
				break;
			}
		}
		if (!opt || !percent_decode(tok)) {
			fprintf(stderr, "headertap-loader: set-filters: malformed value '%.60s'\n", tok);
			filter_args_free(&f);
			return -EINVAL;
		}
		ret = filter_add(&f, opt, tok, err, sizeof(err));
		if (ret) {
			fprintf(stderr, "headertap-loader: set-filters: %s\n", err);
			filter_args_free(&f);
			return ret;
		}
	}
	return set_filters(skel, &f, true);
}

/* One command line from stdin (see the top of this file). */
static void handle_command(struct headertap_bpf *skel, char *line)
{
	static const char attach_cmd[] = "attach-tls ";
	static const char filters_cmd[] = "set-filters ";
	static const char go_cmd[] = "attach-go ";
	static const char copy_cmd[] = "set-copy-bytes ";
	struct ht_attach_event ev = { .kind = HT_EV_ATTACH };
	const char *cmd_name = !strncmp(line, attach_cmd, sizeof(attach_cmd) - 1) ? attach_cmd
			       : !strncmp(line, filters_cmd, sizeof(filters_cmd) - 1) ? filters_cmd
			       : !strncmp(line, go_cmd, sizeof(go_cmd) - 1)	      ? go_cmd
			       : !strncmp(line, copy_cmd, sizeof(copy_cmd) - 1)	      ? copy_cmd
										      : NULL;
	char *arg, *end;

	if (cmd_name) {
		arg = line + strlen(cmd_name);
		errno = 0;
		ev.request_id = strtoul(arg, &end, 10);
		if (!errno && end != arg && (*end == ' ' || *end == '\0')) {
			if (cmd_name == attach_cmd && *end == ' ' && end[1] == '/') {
				struct stat st;

				ev.err = env.no_tls ? -EPERM : attach_tls_once(skel, end + 1, &ev.attached, &st);
				write_frame(&ev, sizeof(ev));
				return;
			}
			if (cmd_name == go_cmd && *end == ' ') {
				ev.err = attach_go(skel, end + 1, &ev.attached);
				write_frame(&ev, sizeof(ev));
				return;
			}
			if (cmd_name == copy_cmd && *end == ' ') {
				unsigned long n;

				if (parse_u32(end + 1, 1, HT_MAX_COPY, &n))
					/* Calls that start from now on copy this much; one under way keeps its own. */
					skel->data->copy_limit = n;
				else
					ev.err = -EINVAL;
				write_frame(&ev, sizeof(ev));
				return;
			}
			if (cmd_name == filters_cmd) {
				ev.err = set_filters_command(skel, *end ? end + 1 : end);
				ev.attached = skel->bss->ht_filter_slot; /* the slot in force */
				write_frame(&ev, sizeof(ev));
				return;
			}
		}
	}
	fprintf(stderr, "headertap-loader: ignoring malformed command '%.60s'\n", line);
}

/* Commands are lines; a line longer than the buffer is dropped whole. The
 * largest, set-filters with 8 long cgroup paths, fits. */
static struct {
	char buf[16 * PATH_MAX];
	size_t len;
	bool overflow;
} cmd;

/* Reads stdin; false once it reached end of file (the agent went away). */
static bool read_commands(struct headertap_bpf *skel)
{
	ssize_t n = read(STDIN_FILENO, cmd.buf + cmd.len, sizeof(cmd.buf) - 1 - cmd.len);
	char *nl;

	if (n < 0)
		return errno == EINTR || errno == EAGAIN;
	if (n == 0)
		return false;
	cmd.len += n;
	while ((nl = memchr(cmd.buf, '\n', cmd.len))) {
		size_t used = nl - cmd.buf + 1;

		*nl = '\0';
		if (!cmd.overflow)
			handle_command(skel, cmd.buf);
		cmd.overflow = false;
		memmove(cmd.buf, nl + 1, cmd.len - used);
		cmd.len -= used;
	}
	if (cmd.len == sizeof(cmd.buf) - 1) {
		cmd.overflow = true;
		cmd.len = 0;
	}
	return true;
}

/* The skeleton, opened and configured (filters, sizes), ready to load. */
static struct headertap_bpf *open_skel(int ncpus)
{
	struct headertap_bpf *skel = headertap_bpf__open();

	if (!skel)
		die(1, "opening the BPF object failed: %s", strerror(errno));
	set_rodata(skel);
	bpf_map__set_max_entries(skel->maps.ht_events, env.ringbuf_kb * 1024);
	bpf_map__set_max_entries(skel->maps.ht_scratch, ncpus);
	return skel;
}

/* The verifier's summary of one program (log level 4): its time and the instructions it processed. */
#define STATS_LOG_SIZE 4096

/*
 * --verifier-stats: loads every program with the verifier's statistics and
 * prints one line per program, "NAME INSNS USEC", to stdout, then exits
 * without attaching. The instruction count does not depend on the machine's
 * speed, only on the object and the kernel: it is what load time is made of.
 */
static int verifier_stats(struct headertap_bpf *skel)
{
	struct bpf_program *prog;
	char *logs;
	int i = 0, err;

	logs = calloc(skel->skeleton->prog_cnt, STATS_LOG_SIZE);
	if (!logs)
		die(1, "out of memory");
	bpf_object__for_each_program(prog, skel->obj) {
		bpf_program__set_log_level(prog, 4);
		bpf_program__set_log_buf(prog, logs + STATS_LOG_SIZE * i++, STATS_LOG_SIZE);
	}
	err = headertap_bpf__load(skel);
	i = 0;
	bpf_object__for_each_program(prog, skel->obj) {
		const char *log = logs + STATS_LOG_SIZE * i++;
		const char *insns = strstr(log, "processed ");
		const char *usec = strstr(log, "verification time ");

		if (!bpf_program__autoload(prog))
			continue;
		printf("%s %ld %ld\n", bpf_program__name(prog), insns ? atol(insns + 10) : -1L,
		       usec ? atol(usec + 18) : -1L);
	}
	free(logs);
	if (err)
		die(EXIT_ENV, "loading the BPF programs failed: %s; run with --verbose for the verifier log",
		    strerror(-err));
	headertap_bpf__destroy(skel);
	return 0;
}

static const char *load_fix(int err)
{
	if (err == -EPERM || err == -EACCES)
		return "run as root, or grant CAP_BPF, CAP_PERFMON and CAP_SYS_RESOURCE";
	if (err == -E2BIG || err == -ENOMEM)
		return "lower --ringbuf-kb or raise the locked-memory limit (ulimit -l)";
	return "run with --verbose for the verifier log and report it";
}

int main(int argc, char **argv)
{
	struct headertap_bpf *skel;
	struct ring_buffer *rb = NULL;
	struct ht_ready_event ready = { .kind = HT_EV_READY, .version = HT_LAYOUT_VERSION };
	struct epoll_event ev = { .events = EPOLLIN }, evs[2];
	int ncpus, epfd, err;
	__u64 next_stats;

	parse_args(argc, argv);
	libbpf_set_print(libbpf_print_fn);
	signal(SIGINT, on_signal);
	signal(SIGTERM, on_signal);
	signal(SIGPIPE, SIG_IGN);

	check_kernel();
	ensure_tracefs();

	ncpus = libbpf_num_possible_cpus();
	if (ncpus <= 0)
		die(1, "cannot count CPUs: %s", strerror(-ncpus));

	env.self[env.n_self++] = getpid();
	skel = open_skel(ncpus);
	if (env.verifier_stats)
		return verifier_stats(skel);
	share_self_endpoints(skel);
	err = headertap_bpf__load(skel);
	self_endpoints_shared();
	if (err && pin_lock_fd >= 0) {
		/* Perhaps the pin could not be made or reused: try once more with a private map. */
		int pin_err = err;

		unshare_self_endpoints();
		headertap_bpf__destroy(skel);
		skel = open_skel(ncpus);
		err = headertap_bpf__load(skel);
		if (!err)
			warn("sharing own-traffic marks through %s failed (%s): other headertap agents on "
			     "this host cannot see this one's sockets in the kernel",
			     HT_PIN_SELF_ENDPOINTS, strerror(-pin_err));
	}
	if (err)
		die(EXIT_ENV, "loading the BPF programs failed: %s; %s", strerror(-err),
		    load_fix(err));
	err = set_filters(skel, &env.filters, false);
	if (err)
		die(EXIT_ENV, "setting the --cgroup filter failed: %s; the kernel needs cgroup v2",
		    strerror(-err));
	err = headertap_bpf__attach(skel);
	if (err)
		die(EXIT_ENV, "attaching to the syscall/sock tracepoints failed: %s; %s",
		    strerror(-err), load_fix(err));

	rb = ring_buffer__new(bpf_map__fd(skel->maps.ht_events), on_event, skel, NULL);
	if (!rb)
		die(1, "creating the ring buffer reader failed: %s", strerror(errno));

	/* Fewer, larger pipe writes; the agent reads in big chunks. */
	fcntl(STDOUT_FILENO, F_SETPIPE_SZ, 1 << 20);
	setvbuf(stdout, NULL, _IOFBF, 1 << 20);

	epfd = epoll_create1(EPOLL_CLOEXEC);
	if (epfd < 0)
		die(1, "epoll_create1: %s", strerror(errno));
	ev.data.fd = ring_buffer__epoll_fd(rb);
	epoll_ctl(epfd, EPOLL_CTL_ADD, ev.data.fd, &ev);
	ev.data.fd = STDIN_FILENO;
	if (epoll_ctl(epfd, EPOLL_CTL_ADD, STDIN_FILENO, &ev))
		ev.data.fd = -1; /* stdin is a regular file or /dev/null: rely on signals */

	ready.loader_pid = getpid();
	ready.realtime_offset_ns = realtime_offset_ns();
	ready.max_data = env.copy_bytes;
	ready.ringbuf_bytes = env.ringbuf_kb * 1024;
	ready.ncpus = ncpus;
	ready.features = kernel_features();
	write_frame(&ready, sizeof(ready));
	fflush(stdout);

	next_stats = now_ns() + STATS_INTERVAL_NS;
	while (!exiting) {
		int n = epoll_wait(epfd, evs, 2, POLL_INTERVAL_MS);

		if (n < 0 && errno != EINTR)
			die(1, "epoll_wait: %s", strerror(errno));
		for (int i = 0; i < n; i++) {
			if (evs[i].data.fd != STDIN_FILENO)
				continue;
			if (!read_commands(skel))
				exiting = 1; /* parent closed our stdin: stop */
		}
		err = ring_buffer__consume(rb);
		if (err < 0 && err != -EINTR && !stdout_broken)
			die(1, "reading the ring buffer failed: %s", strerror(-err));
		if (now_ns() >= next_stats) {
			emit_stats(skel, ncpus);
			next_stats += STATS_INTERVAL_NS;
		}
		if (fflush(stdout)) {
			stdout_broken = true;
			exiting = 1;
		}
	}

	/*
	 * Deliver everything captured up to now and close stdout, so the agent
	 * has it all at once; only then detach. Detaching is slow (each
	 * tracepoint or uprobe waits for an RCU grace period, ~0.1 s each, seconds
	 * in all) and the agent need not wait for it.
	 */
	/* No new stops (detaching waits for running instances), then resume
	 * every process stopped so far: their events are in the ring buffer. */
	bpf_link__destroy(skel->links.ht_enter_mmap);
	skel->links.ht_enter_mmap = NULL;
	ring_buffer__consume(rb);
	if (!stdout_broken) {
		emit_stats(skel, ncpus);
		fflush(stdout);
	}
	fclose(stdout);
	unshare_self_endpoints();
	detach_tls();
	ring_buffer__free(rb);
	headertap_bpf__destroy(skel);
	return 0;
}
