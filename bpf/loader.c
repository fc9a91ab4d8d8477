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
 * Commands arrive on stdin, one a line:
 *   attach-tls ID PATH   put the TLS uprobes on PATH (a library or program
 *                        exporting SSL_write/SSL_read); answered by an
 *                        HT_EV_ATTACH frame carrying ID.
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
#include <sys/epoll.h>
#include <sys/mount.h>
#include <sys/random.h>
#include <sys/stat.h>
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
#define STATS_INTERVAL_NS 1000000000ULL
/* The BPF side wakes us only when wakeup_bytes wait (maps.bpf.h); below that,
 * events wait at most this long. */
#define POLL_INTERVAL_MS 20
#define WAKEUP_BYTES (64 * 1024)

static struct env {
	__u32 pids[HT_MAX_FILTER_PIDS];
	int n_pids;
	char comms[HT_MAX_FILTER_COMMS][HT_COMM_LEN];
	int n_comms;
	__u16 ports[HT_MAX_FILTER_PORTS];
	int n_ports;
	__u32 self[HT_MAX_SELF_PIDS];
	int n_self;
	int cgroup_fds[HT_MAX_FILTER_CGROUPS]; /* open cgroup v2 directories, for ht_cgroup_filter */
	int n_cgroups;
	unsigned long ringbuf_kb;
	unsigned long copy_bytes;
	bool no_tls;
	bool verbose;
} env = {
	.ringbuf_kb = HT_RINGBUF_KB_DEFAULT,
	.copy_bytes = HT_MAX_DATA,
};

static volatile sig_atomic_t exiting;
static bool stdout_broken;

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
	"  --no-tls         no TLS capture: no exec events, attach-tls is refused\n"
	"  --verbose        print libbpf's messages\n"
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
};

/* --cgroup: keep the directory open; its fd goes into ht_cgroup_filter after load. */
static int open_cgroup(const char *path)
{
	struct statfs sfs;
	int fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);

	if (fd < 0)
		die(EXIT_ENV, "invalid --cgroup '%s': %s; expected a cgroup v2 directory", path,
		    strerror(errno));
	if (fstatfs(fd, &sfs) || sfs.f_type != CGROUP2_SUPER_MAGIC)
		die(EXIT_ENV,
		    "invalid --cgroup '%s': not in a cgroup v2 file system; use a directory "
		    "under the cgroup2 mount (see `grep cgroup2 /proc/mounts`)",
		    path);
	return fd;
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
		{ "verbose", no_argument, NULL, OPT_VERBOSE },
		{ "help", no_argument, NULL, OPT_HELP },
		{},
	};
	int opt;

	opterr = 0;
	while ((opt = getopt_long(argc, argv, "", opts, NULL)) != -1) {
		switch (opt) {
		case OPT_PID:
			if (env.n_pids == HT_MAX_FILTER_PIDS)
				die(EXIT_ENV, "too many --pid filters (at most %d)", HT_MAX_FILTER_PIDS);
			env.pids[env.n_pids++] = parse_num("--pid", optarg, 1, INT_MAX);
			break;
		case OPT_COMM:
			if (env.n_comms == HT_MAX_FILTER_COMMS)
				die(EXIT_ENV, "too many --comm filters (at most %d)", HT_MAX_FILTER_COMMS);
			if (!optarg[0] || strlen(optarg) >= HT_COMM_LEN)
				die(EXIT_ENV, "invalid --comm '%s': expected 1 to %d characters", optarg,
				    HT_COMM_LEN - 1);
			strncpy(env.comms[env.n_comms++], optarg, HT_COMM_LEN - 1);
			break;
		case OPT_PORT:
			if (env.n_ports == HT_MAX_FILTER_PORTS)
				die(EXIT_ENV, "too many --port filters (at most %d)", HT_MAX_FILTER_PORTS);
			env.ports[env.n_ports++] = parse_num("--port", optarg, 1, 65535);
			break;
		case OPT_SELF:
			if (env.n_self == HT_MAX_SELF_PIDS - 1) /* one slot kept for the loader */
				die(EXIT_ENV, "too many --self-pid values (at most %d)",
				    HT_MAX_SELF_PIDS - 1);
			env.self[env.n_self++] = parse_num("--self-pid", optarg, 1, INT_MAX);
			break;
		case OPT_CGROUP:
			if (env.n_cgroups == HT_MAX_FILTER_CGROUPS)
				die(EXIT_ENV, "too many --cgroup filters (at most %d)", HT_MAX_FILTER_CGROUPS);
			env.cgroup_fds[env.n_cgroups++] = open_cgroup(optarg);
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
		case OPT_VERBOSE:
			env.verbose = true;
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

static int on_event(void *ctx, void *data, size_t len)
{
	(void)ctx;
	write_frame(data, len);
	return stdout_broken ? -EPIPE : 0;
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

static void set_filters(struct headertap_bpf *skel)
{
	struct headertap_bpf__rodata *ro = skel->rodata;
	__u64 key = 0;

	for (int i = 0; i < env.n_pids; i++)
		ro->targ_tgids[i] = env.pids[i];
	ro->n_targ_tgids = env.n_pids;
	for (int i = 0; i < env.n_comms; i++)
		memcpy((char *)ro->targ_comms[i], env.comms[i], HT_COMM_LEN);
	ro->n_targ_comms = env.n_comms;
	for (int i = 0; i < env.n_ports; i++)
		ro->targ_ports[i] = env.ports[i];
	ro->n_targ_ports = env.n_ports;
	ro->n_targ_cgroups = env.n_cgroups;
	env.self[env.n_self++] = getpid();
	for (int i = 0; i < env.n_self; i++)
		ro->self_tgids[i] = env.self[i];
	ro->n_self_tgids = env.n_self;
	ro->copy_limit = env.copy_bytes;
	ro->tls_capture = !env.no_tls;
	/* A small ring must not fill before anyone is woken. */
	ro->wakeup_bytes = env.ringbuf_kb * 1024 / 8 < WAKEUP_BYTES ? env.ringbuf_kb * 1024 / 8 : WAKEUP_BYTES;
	if (getrandom(&key, sizeof(key), 0) != sizeof(key))
		key = now_ns() * 0x9E3779B97F4A7C15ULL;
	ro->sock_id_key = key;
}

/* After load, before attach: the cgroups --cgroup named, by index. */
static void set_cgroup_filter(struct headertap_bpf *skel)
{
	int map_fd = bpf_map__fd(skel->maps.ht_cgroup_filter);

	for (__u32 i = 0; i < (__u32)env.n_cgroups; i++) {
		if (bpf_map_update_elem(map_fd, &i, &env.cgroup_fds[i], BPF_ANY))
			die(EXIT_ENV, "setting the --cgroup filter failed: %s; the kernel needs cgroup v2",
			    strerror(errno));
		close(env.cgroup_fds[i]);
	}
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
/* Links of every attached target; 9 per target, 128 targets. */
#define MAX_TLS_LINKS (9 * 128)

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

static void detach_tls(void)
{
	while (n_tls_links > 0)
		bpf_link__destroy(tls_links[--n_tls_links]);
}

/* One command line from stdin (see the top of this file). */
static void handle_command(struct headertap_bpf *skel, char *line)
{
	static const char attach_cmd[] = "attach-tls ";
	struct ht_attach_event ev = { .kind = HT_EV_ATTACH };
	char *arg = line + sizeof(attach_cmd) - 1, *end;

	if (!strncmp(line, attach_cmd, sizeof(attach_cmd) - 1)) {
		errno = 0;
		ev.request_id = strtoul(arg, &end, 10);
		if (!errno && end != arg && *end == ' ' && end[1] == '/') {
			ev.err = attach_tls(skel, end + 1, &ev.attached);
			write_frame(&ev, sizeof(ev));
			return;
		}
	}
	fprintf(stderr, "headertap-loader: ignoring malformed command '%.60s'\n", line);
}

/* Commands are lines; a line longer than the buffer is dropped whole. */
static struct {
	char buf[PATH_MAX + 64];
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

	skel = headertap_bpf__open();
	if (!skel)
		die(1, "opening the BPF object failed: %s", strerror(errno));
	set_filters(skel);
	bpf_map__set_max_entries(skel->maps.ht_events, env.ringbuf_kb * 1024);
	bpf_map__set_max_entries(skel->maps.ht_scratch, ncpus);

	err = headertap_bpf__load(skel);
	if (err)
		die(EXIT_ENV, "loading the BPF programs failed: %s; %s", strerror(-err),
		    load_fix(err));
	set_cgroup_filter(skel);
	err = headertap_bpf__attach(skel);
	if (err)
		die(EXIT_ENV, "attaching to the syscall/sock tracepoints failed: %s; %s",
		    strerror(-err), load_fix(err));

	rb = ring_buffer__new(bpf_map__fd(skel->maps.ht_events), on_event, NULL, NULL);
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
	if (!stdout_broken) {
		ring_buffer__consume(rb);
		emit_stats(skel, ncpus);
		fflush(stdout);
	}
	fclose(stdout);
	detach_tls();
	ring_buffer__free(rb);
	headertap_bpf__destroy(skel);
	return 0;
}
