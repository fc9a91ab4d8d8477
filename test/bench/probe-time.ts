/**
 * What headertap's syscall probes cost per socket call, from the kernel's
 * own accounting rather than the wall clock (kernel.bpf_stats_enabled: each
 * program's run_time_ns and run_cnt), so the scheduler's noise on a shared
 * machine stays out. syscost (test/bench/refprobe/syscost.c) writes and
 * reads 256 bytes over loopback; the loader runs capturing its port, with
 * --port 1 (everything excluded after the socket lookup) and with --pid 1
 * (everything excluded by the process filter, first). With
 * HT_BENCH_REF_LOADER set, that loader build runs too, interleaved, and the
 * ratios compare the two in one run.
 *
 *   HT_BENCH_REF_LOADER=/tmp/old-loader node dist/test/bench/probe-time.js [--reps N] [--calls N] [--only captured|port|pid]
 *
 * Needs root; run under the eBPF lock (flock /tmp/headertap-ebpf.lock).
 * bpf_stats_enabled is set for the run and put back as it was.
 */
import { execFileSync } from 'node:child_process';
import { readFileSync, writeFileSync } from 'node:fs';
import { LOADER_PATH } from '../../src/common/paths';
import { killAll } from './lib/procs';
import { REF_LOADER_ENV, startLoaderOnly, startSyscost } from './lib/setup';

const APP_CPU = '0';
const TOOL_CPU = '1';
const STATS = '/proc/sys/kernel/bpf_stats_enabled';
/** The programs on the syscost path: enter and exit of write and read. */
const PATH_PROGS = ['ht_enter_write', 'ht_exit_write', 'ht_enter_read', 'ht_exit_read'];

interface Prog {
  id: number;
  name: string;
  run_time_ns?: number;
  run_cnt?: number;
}

function progs(): Prog[] {
  return JSON.parse(execFileSync('bpftool', ['prog', 'show', '-j'], { encoding: 'utf8' })) as Prog[];
}

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

const ALL_FILTERS: Record<string, (port: number) => string[]> = {
  captured: (port) => ['--port', String(port)],
  'excluded by --port': () => ['--port', '1'],
  'excluded by --pid': () => ['--pid', '1'],
};
/** --only captured|port|pid: one configuration (more repetitions in the same time). */
const only = process.argv.includes('--only') ? process.argv[process.argv.indexOf('--only') + 1] : undefined;
const FILTERS = Object.fromEntries(Object.entries(ALL_FILTERS).filter(([k]) => !only || k.includes(only)));

/** BPF ns per socket call of one loader and filter, over `calls` writes and as many reads. */
async function measure(loader: string, filter: string, calls: number): Promise<{ perCall: number; perProg: Record<string, number> }> {
  const before = new Set(progs().map((p) => p.id));
  const target = await startSyscost(APP_CPU, calls);
  const observer = await startLoaderOnly(TOOL_CPU, target, FILTERS[filter](target.port), loader);
  const mine = () => progs().filter((p) => !before.has(p.id) && PATH_PROGS.includes(p.name));
  const start = new Map(mine().map((p) => [p.id, p]));
  await target.go();
  const end = mine();
  await observer.stop();
  await target.stop();
  const perProg: Record<string, number> = {};
  let ns = 0;
  for (const p of end) {
    const s = start.get(p.id);
    const dt = (p.run_time_ns ?? 0) - (s?.run_time_ns ?? 0);
    const dn = (p.run_cnt ?? 0) - (s?.run_cnt ?? 0);
    ns += dt;
    perProg[p.name] = dn ? dt / dn : 0;
  }
  return { perCall: ns / (2 * calls), perProg };
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

async function main(): Promise<void> {
  const reps = arg('--reps', 5);
  const calls = arg('--calls', 200000);
  const ref = process.env[REF_LOADER_ENV];
  const loaders: [string, string][] = [['this build', LOADER_PATH], ...(ref ? [['ref', ref] as [string, string]] : [])];
  const was = readFileSync(STATS, 'utf8').trim();
  writeFileSync(STATS, '1');
  const results = new Map<string, number[]>();
  try {
    for (let rep = 0; rep < reps; rep++) {
      // Rotated each repetition, so no configuration always runs first.
      const order = loaders.flatMap(([name, path]) => Object.keys(FILTERS).map((f) => [name, path, f] as const));
      for (let k = 0; k < order.length; k++) {
        const [name, path, filter] = order[(k + rep) % order.length];
        const r = await measure(path, filter, calls);
        const key = `${filter}\u0000${name}`;
        results.set(key, [...(results.get(key) ?? []), r.perCall]);
        process.stderr.write(`  ${name}, ${filter}: ${r.perCall.toFixed(1)} ns per call (${Object.entries(r.perProg).map(([p, v]) => `${p} ${v.toFixed(0)}`).join(', ')})\n`);
      }
    }
  } finally {
    writeFileSync(STATS, was);
    killAll();
  }
  const lines = [`probe time per socket call (BPF run time of enter+exit, write and read; median of ${reps}, ${calls} calls each):`];
  for (const filter of Object.keys(FILTERS)) {
    const mine = median(results.get(`${filter}\u0000this build`)!);
    const other = ref ? median(results.get(`${filter}\u0000ref`)!) : undefined;
    lines.push(`  ${filter.padEnd(20)} this build ${mine.toFixed(1)} ns${other !== undefined ? `, ref ${other.toFixed(1)} ns, ratio ${(mine / other).toFixed(3)}` : ''}`);
  }
  process.stdout.write(lines.join('\n') + '\n');
}

main().catch((err) => {
  process.stderr.write(`probe-time: ${(err as Error).stack ?? String(err)}\n`);
  killAll();
  process.exitCode = 1;
});

