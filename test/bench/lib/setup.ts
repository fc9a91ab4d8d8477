/**
 * The benchmark's targets (nginx, a Node http server) and observers (no
 * probe, headertap, its kernel side alone, the reference probe, bpftrace,
 * in-process OpenTelemetry), each started pinned and stopped cleanly.
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, openSync, closeSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import * as path from 'node:path';
import { LOADER_PATH, PACKAGE_ROOT } from '../../../src/common/paths';
import { nginxConf } from '../../helpers/nginx-conf';
import { childrenOf } from './proc';
import { sleep, start, stop, waitFor, waitForPort, type Proc } from './procs';

export const HEADERTAP = path.join(PACKAGE_ROOT, 'bin', 'headertap');
export const BENCH_DIST = path.join(PACKAGE_ROOT, 'dist', 'test', 'bench');
export const REFPROBE = path.join(PACKAGE_ROOT, 'test', 'bench', 'refprobe', '.output', 'refprobe');
export const SYSCOST = path.join(PACKAGE_ROOT, 'test', 'bench', 'refprobe', '.output', 'syscost');
/** Scratch files (recordings, loader output, h2load logs) live in memory. */
export const SCRATCH = existsSync('/dev/shm') ? '/dev/shm' : '/tmp';

export type TargetName = 'nginx' | 'node';

/** A loader binary to compare with this build's in one run (the *-ref configs). */
export const REF_LOADER_ENV = 'HT_BENCH_REF_LOADER';
export type ConfigName =
  | 'baseline'
  | 'headertap'
  | 'headertap-kernel'
  | 'headertap-kernel-filtered'
  | 'headertap-kernel-pid-filtered'
  | 'headertap-kernel-ref'
  | 'headertap-kernel-filtered-ref'
  | 'headertap-kernel-pid-filtered-ref'
  | 'headertap-filtered'
  | 'headertap-no-tls' | 'refprobe' | 'bpftrace' | 'otel-http';

export const CONFIG_HELP: Record<ConfigName, string> = {
  baseline: 'no probe',
  headertap: 'headertap run, full pipeline, OTLP/gRPC to a receiver process (--port of the target)',
  'headertap-kernel': "headertap's loader alone (TLS probes attached as the agent would), events to a tmpfs file",
  'headertap-filtered': 'headertap run with --port 1: all benchmark traffic excluded in the kernel',
  'headertap-kernel-filtered': "headertap's loader alone with --port 1: all benchmark traffic excluded in the kernel",
  'headertap-kernel-pid-filtered': "headertap's loader alone with --pid 1: all benchmark traffic excluded by the process filter, before the socket lookup",
  'headertap-kernel-ref': `headertap-kernel with the loader at ${REF_LOADER_ENV} (another build, e.g. main's: two kernel sides in one run)`,
  'headertap-kernel-filtered-ref': `headertap-kernel-filtered with the loader at ${REF_LOADER_ENV}`,
  'headertap-kernel-pid-filtered-ref': `headertap-kernel-pid-filtered with the loader at ${REF_LOADER_ENV}`,
  'headertap-no-tls': 'headertap run --no-tls (no OpenSSL uprobes, no TLS bookkeeping per syscall)',
  refprobe: 'reference probe: the same syscall tracepoints, 256 bytes per call to a ring buffer, drained',
  bpftrace: 'bpftrace one-liner printing 200 bytes per call (bpftrace 0.17 string limit) to a tmpfs file',
  'otel-http': '@opentelemetry/instrumentation-http with headersToSpanAttributes in the Node server, spans over OTLP/gRPC',
};

/** Where the kernel's BPF run-time statistics are switched on (0/1); they cost each program run two clock reads. */
export const BPF_STATS_SYSCTL = '/proc/sys/kernel/bpf_stats_enabled';
const BPFTOOL = ['/usr/sbin/bpftool', '/usr/bin/bpftool', '/sbin/bpftool'].find((f) => existsSync(f)) ?? 'bpftool';

/** Every loaded BPF program by id: CPU time spent in it (with BPF_STATS_SYSCTL on) and runs. */
export function bpfProgStats(): Map<number, { name: string; ns: number; runs: number }> {
  const progs = JSON.parse(execFileSync(BPFTOOL, ['prog', 'show', '-j'], { encoding: 'utf8', maxBuffer: 64 << 20 })) as {
    id: number;
    name?: string;
    run_time_ns?: number;
    run_cnt?: number;
  }[];
  return new Map(progs.map((p) => [p.id, { name: p.name ?? '', ns: p.run_time_ns ?? 0, runs: p.run_cnt ?? 0 }]));
}

export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

export interface Target {
  name: TargetName;
  port: number;
  /** The process whose tree is the application (nginx master + worker, node). */
  pid: number;
  /** OpenSSL files the agent would probe for this target (for the kernel-only config). */
  tlsFiles: string[];
  stop(): Promise<void>;
}

const LIBSSL = ['/usr/lib/x86_64-linux-gnu/libssl.so.3', '/usr/lib/aarch64-linux-gnu/libssl.so.3', '/usr/lib64/libssl.so.3'];

/** nginx, one worker, serving a 612-byte index.html (its default page's size) with sendfile. */
export async function startNginx(cpus: string): Promise<Target> {
  const dir = mkdtempSync(path.join(SCRATCH, 'ht-bench-nginx-'));
  const port = await freePort();
  mkdirSync(path.join(dir, 'www'));
  writeFileSync(path.join(dir, 'www', 'index.html'), 'x'.repeat(612));
  const http = `  sendfile on;
  tcp_nopush on;
  keepalive_requests 10000000;
  keepalive_timeout 120s;
  server {
    listen 127.0.0.1:${port};
    root ${dir}/www;
  }`;
  writeFileSync(path.join(dir, 'nginx.conf'), nginxConf(dir, { workerConnections: 1024, http }));
  const p = start('/usr/sbin/nginx', ['-c', path.join(dir, 'nginx.conf'), '-p', dir, '-e', path.join(dir, 'error.log')], { cpus });
  await waitForPort(port);
  return {
    name: 'nginx',
    port,
    pid: p.pid,
    tlsFiles: LIBSSL.filter((f) => existsSync(f)).slice(0, 1),
    stop: async () => {
      await stop(p, 'SIGQUIT');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The Node http server (test/bench/node-server.ts); with otelEndpoint, instrumented in-process. */
export async function startNodeServer(cpus: string, otelEndpoint?: string): Promise<Target> {
  const port = await freePort();
  const p = start(process.execPath, [path.join(BENCH_DIST, 'node-server.js'), String(port)], {
    cpus,
    ...(otelEndpoint ? { env: { BENCH_OTEL_ENDPOINT: otelEndpoint } } : {}),
  });
  await waitFor(p, /listening \d+/);
  return { name: 'node', port, pid: p.pid, tlsFiles: [process.execPath], stop: () => stop(p, 'SIGTERM') };
}

/**
 * test/bench/refprobe/syscost.c: one thread writing and reading 256 bytes
 * over loopback TCP; it listens, says its port, and waits for go().
 */
/** syscost on `cpus`: `calls` writes of 256 bytes (writev of `iovecs` parts when > 1) and reads. */
export async function startSyscost(cpus: string, calls: number, iovecs = 1): Promise<Target & { go(): Promise<number> }> {
  const portFile = path.join(SCRATCH, `ht-bench-syscost-${process.pid}.port`);
  rmSync(portFile, { force: true });
  const p = start(SYSCOST, [String(calls), '256', String(iovecs)], { cpus, env: { PORT_FILE: portFile }, stdio: ['pipe', 'pipe', 'pipe'] });
  const deadline = Date.now() + 10000;
  while (!existsSync(portFile) || !readFileSync(portFile, 'latin1').endsWith('\n')) {
    if (Date.now() > deadline || p.child.exitCode !== null) throw new Error(`syscost did not start: ${p.output()}`);
    await sleep(20);
  }
  const port = Number(readFileSync(portFile, 'latin1'));
  rmSync(portFile, { force: true });
  return {
    name: 'nginx',
    port,
    pid: p.pid,
    // As on any host with an OpenSSL user: TLS probes on, TLS bookkeeping on every call.
    tlsFiles: LIBSSL.filter((f) => existsSync(f)).slice(0, 1),
    stop: () => stop(p, 'SIGKILL'),
    go: async () => {
      p.child.stdin!.end('g');
      await p.exited;
      const m = /ns_per_call ([\d.]+)/.exec(p.output());
      if (!m) throw new Error(`syscost failed: ${p.output()}`);
      return Number(m[1]);
    },
  };
}

/** What an observer reports once stopped. */
export interface ObserverEnd {
  /** Records (or spans) the receiver got. */
  records?: number;
  /** Kernel events written to the ring buffer / printed. */
  events?: number;
  /** Events lost in the kernel (ring buffer or perf buffer full). */
  lost?: number;
  /** Records the agent accepted but never exported (queue full, failed exports). */
  dropped?: number;
  summary?: string;
}

export interface Observer {
  /** Roots of the process trees whose CPU is the observer's (agent + loader; probe tool). */
  cpuPids(): number[];
  /** Processes whose peak RSS is reported (summed). */
  rssPids(): number[];
  /** The receiver process (its CPU is reported apart), if any. */
  sinkPid?: number;
  /** Records (or spans) the receiver got so far, when there is one. */
  liveRecords?(): number;
  stop(): Promise<ObserverEnd>;
}

/** The OTLP/gRPC receiver process (test/bench/sink.ts). */
export interface Sink {
  proc: Proc;
  endpoint: string;
  latest(): { logs: number; spans: number };
  stop(): Promise<{ logs: number; spans: number }>;
}

export async function startSink(cpus: string | undefined): Promise<Sink> {
  const proc = start(process.execPath, [path.join(BENCH_DIST, 'sink.js'), '127.0.0.1:0'], cpus !== undefined ? { cpus } : {});
  const m = await waitFor(proc, /sink listening (\d+)/);
  const latest = () => {
    const lines = proc.output().trim().split('\n').filter((l) => l.startsWith('{'));
    return lines.length ? (JSON.parse(lines[lines.length - 1]) as { logs: number; spans: number }) : { logs: 0, spans: 0 };
  };
  return {
    proc,
    endpoint: `http://127.0.0.1:${m[1]}`,
    latest,
    stop: async () => {
      await stop(proc, 'SIGTERM');
      return latest();
    },
  };
}

/** The figures of the agent's exit summary line (src/cli/stats.ts summaryLine). */
export function summaryFigures(stderr: string): ObserverEnd {
  const line = stderr.split('\n').find((l) => l.startsWith('headertap stopped')) ?? '';
  const rec = /records exported (\d+), failed (\d+), dropped (\d+)/.exec(line);
  const ker = /kernel events (\d+), lost (\d+)/.exec(line);
  if (!rec || !ker) return { summary: line || stderr.trim().split('\n').slice(-3).join(' | ') };
  return { dropped: Number(rec[2]) + Number(rec[3]), events: Number(ker[1]), lost: Number(ker[2]), summary: line };
}

/** `headertap run` to a receiver process, agent and receiver pinned to `cpus`. */
export async function startHeadertap(cpus: string, target: Target, opts: { extra?: string[]; port?: number } = {}): Promise<Observer> {
  const sink = await startSink(cpus);
  const args = [HEADERTAP, 'run', '--endpoint', sink.endpoint, '--port', String(opts.port ?? target.port), ...(opts.extra ?? [])];
  const agent = start(process.execPath, args, { cpus });
  await waitFor(agent, /^headertap ready/m, 60000);
  return {
    cpuPids: () => [agent.pid],
    rssPids: () => [agent.pid, ...childrenOf(agent.pid)],
    sinkPid: sink.proc.pid,
    liveRecords: () => sink.latest().logs,
    stop: async () => {
      await stop(agent, 'SIGINT', 60000);
      const counts = await sink.stop();
      return { ...summaryFigures(agent.output()), records: counts.logs };
    },
  };
}

/** The last stats frame in a loader output file: [events written, events lost]. */
export function loaderTotals(file: string): { events: number; lost: number } | undefined {
  const buf = readFileSync(file);
  let off = 0;
  let last: { events: number; lost: number } | undefined;
  const u64 = (o: number) => buf.readUInt32LE(o) + buf.readUInt32LE(o + 4) * 2 ** 32;
  while (off + 4 <= buf.length) {
    const len = buf.readUInt32LE(off);
    if (off + 4 + len > buf.length) break;
    if (buf[off + 4] === 65 /* HT_EV_STATS */) {
      const counters = off + 4 + 16;
      last = { events: u64(counters) + u64(counters + 8), lost: u64(counters + 16) };
    }
    off += 4 + len;
  }
  return last;
}

/** Frames of one kind in a loader output file so far. */
export function framesOfKind(file: string, kind: number): number {
  const buf = readFileSync(file);
  let off = 0;
  let n = 0;
  while (off + 4 <= buf.length) {
    const len = buf.readUInt32LE(off);
    if (off + 4 + len > buf.length) break;
    if (buf[off + 4] === kind) n++;
    off += 4 + len;
  }
  return n;
}

/**
 * headertap's loader alone, TLS probes on the target's OpenSSL, events into a
 * tmpfs file nobody reads until the end. `filter`: its filter flags (default:
 * the target's port); `loaderPath`: another build of the loader.
 */
export async function startLoaderOnly(cpus: string, target: Target, filter = ['--port', String(target.port)], loaderPath = LOADER_PATH): Promise<Observer> {
  const file = path.join(SCRATCH, `ht-bench-loader-${process.pid}.bin`);
  const fd = openSync(file, 'w');
  const loader = start(loaderPath, filter, { cpus, stdio: ['pipe', fd, 'pipe'] });
  closeSync(fd);
  const deadline = Date.now() + 30000;
  while (framesOfKind(file, 64 /* HT_EV_READY */) === 0) {
    if (Date.now() > deadline || loader.child.exitCode !== null) throw new Error(`loader not ready: ${loader.output()}`);
    await sleep(50);
  }
  target.tlsFiles.forEach((f, i) => loader.child.stdin!.write(`attach-tls ${i + 1} ${f}\n`));
  while (framesOfKind(file, 66 /* HT_EV_ATTACH */) < target.tlsFiles.length) {
    if (Date.now() > deadline) throw new Error(`loader did not answer attach-tls: ${loader.output()}`);
    await sleep(50);
  }
  return {
    cpuPids: () => [loader.pid],
    rssPids: () => [loader.pid],
    stop: async () => {
      loader.child.stdin!.end();
      await stop(loader, 'SIGTERM', 30000);
      const totals = loaderTotals(file);
      rmSync(file, { force: true });
      return totals ?? {};
    },
  };
}

export async function startRefprobe(cpus: string): Promise<Observer> {
  const p = start(REFPROBE, [], { cpus });
  await waitFor(p, /refprobe ready/);
  return {
    cpuPids: () => [p.pid],
    rssPids: () => [p.pid],
    stop: async () => {
      await stop(p, 'SIGINT');
      const m = /events (\d+) bytes \d+ lost (\d+)/.exec(p.output());
      return m ? { events: Number(m[1]), lost: Number(m[2]) } : { summary: p.output().trim() };
    },
  };
}

/**
 * The bpftrace one-liner: the same syscalls, the buffer printed with %r.
 * bpftrace 0.17 keeps strings on the 512-byte BPF stack, so 200 bytes is its
 * most (BPFTRACE_STRLEN); vectors print their first buffer.
 */
export const BPFTRACE_PROGRAM = [
  'tracepoint:syscalls:sys_enter_read,tracepoint:syscalls:sys_enter_write /comm != "bpftrace"/ { @b[tid] = (uint64)args->buf; }',
  'tracepoint:syscalls:sys_enter_recvfrom /comm != "bpftrace"/ { @b[tid] = (uint64)args->ubuf; }',
  'tracepoint:syscalls:sys_enter_sendto /comm != "bpftrace"/ { @b[tid] = (uint64)args->buff; }',
  'tracepoint:syscalls:sys_enter_writev,tracepoint:syscalls:sys_enter_readv /comm != "bpftrace"/ { @b[tid] = (uint64)args->vec->iov_base; }',
  'tracepoint:syscalls:sys_exit_read,tracepoint:syscalls:sys_exit_write,tracepoint:syscalls:sys_exit_recvfrom,' +
    'tracepoint:syscalls:sys_exit_sendto,tracepoint:syscalls:sys_exit_writev,tracepoint:syscalls:sys_exit_readv ' +
    '/@b[tid]/ { if (args->ret > 0) { printf("%d %r\\n", pid, buf(@b[tid], 200)); } delete(@b[tid]); }',
].join('\n');

/** Why bpftrace cannot run here, or undefined. */
export function bpftraceUnavailable(): string | undefined {
  const bin = ['/usr/bin/bpftrace', '/usr/sbin/bpftrace', '/usr/local/bin/bpftrace'].find((f) => existsSync(f));
  return bin ? undefined : 'bpftrace is not installed (apt-get install bpftrace)';
}

export async function startBpftrace(cpus: string): Promise<Observer> {
  const out = path.join(SCRATCH, `ht-bench-bpftrace-${process.pid}.txt`);
  const script = path.join(SCRATCH, `ht-bench-bpftrace-${process.pid}.bt`);
  writeFileSync(script, BPFTRACE_PROGRAM + '\n');
  const fd = openSync(out, 'w');
  const p = start('bpftrace', [script], { cpus, env: { BPFTRACE_STRLEN: '200' }, stdio: ['ignore', fd, 'pipe'] });
  closeSync(fd);
  const deadline = Date.now() + 60000;
  while (!readFileSync(out, 'latin1').startsWith('Attaching')) {
    if (p.child.exitCode !== null || Date.now() > deadline) {
      throw new Error(`bpftrace could not attach: ${p.output().trim().split('\n').slice(0, 3).join(' | ')}`);
    }
    await sleep(50);
  }
  await sleep(300); // "Attaching" is printed before the last probe is in
  return {
    cpuPids: () => [p.pid],
    rssPids: () => [p.pid],
    stop: async () => {
      await stop(p, 'SIGINT', 30000);
      const text = readFileSync(out, 'latin1');
      let lines = 0;
      for (let i = text.indexOf('\n'); i >= 0; i = text.indexOf('\n', i + 1)) lines++;
      let lost = 0;
      for (const m of (text + p.output()).matchAll(/Lost (\d+) events/g)) lost += Number(m[1]);
      rmSync(out, { force: true });
      rmSync(script, { force: true });
      return { events: Math.max(0, lines - 1), lost };
    },
  };
}

/** No observer (baseline), or the one in the target itself (otel-http: its receiver only). */
export function noObserver(sink?: Sink): Observer {
  return {
    cpuPids: () => [],
    rssPids: () => [],
    ...(sink ? { sinkPid: sink.proc.pid, liveRecords: () => sink.latest().spans } : {}),
    stop: async () => (sink ? { records: (await sink.stop()).spans } : {}),
  };
}
