/**
 * headertap's benchmark suite: the cost of headertap on nginx and on a Node
 * http server, side by side with no probe, a minimal reference probe,
 * bpftrace and in-process OpenTelemetry, in one run; plus the user-space
 * capacity on a recording. Prints a table and writes JSON.
 *
 *   npm run bench -- [--quick] [--soak] [--reps N] [--only SCENARIO,...]
 *                    [--configs NAME,...] [--bpf-stats] [--out FILE] [--dry-run]
 *
 * HT_BENCH_BASE_LOADER=PATH adds headertap-kernel-base to the syscall
 * scenarios: another loader build (e.g. main's), interleaved with this one.
 *
 * Needs root (eBPF), nginx, h2load (nghttp2-client), bpftrace, and the
 * reference probe (built by `npm run bench`). See docs/performance.md.
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { cpus as osCpus, release, totalmem } from 'node:os';
import * as path from 'node:path';
import { PACKAGE_ROOT } from '../../src/common/paths';
import { runLoad, h2loadArgs, type LoadResult } from './lib/load';
import { cpuDelta, loadAverage, peakRss, treeCpu } from './lib/proc';
import { killAll, sleep, start, stop, waitFor } from './lib/procs';
import {
  BENCH_DIST,
  BPF_STATS_SYSCTL,
  bpfProgStats,
  CONFIG_HELP,
  HEADERTAP,
  REFPROBE,
  REF_LOADER_ENV,
  SCRATCH,
  bpftraceUnavailable,
  noObserver,
  startBpftrace,
  startHeadertap,
  startLoaderOnly,
  startNginx,
  startNodeServer,
  startRefprobe,
  startSink,
  startSyscost,
  type ConfigName,
  type Observer,
  type ObserverEnd,
  type Target,
  type TargetName,
} from './lib/setup';

/** Placement: the application on APP_CPU; load generator and observers' user space on the other. */
const APP_CPU = '0';
const TOOL_CPU = '1';
const WARMUP_REQUESTS = 2000;

interface Scenario {
  id: string;
  target: TargetName | 'syscost';
  mode: 'saturation' | 'rate' | 'syscall';
  rate?: number;
  /** syscall mode: each write is a writev() of this many parts. */
  iovecs?: number;
  /** syscall mode: also the observer's BPF run time per call (--bpf-stats). */
  bpfStats?: boolean;
  requests: number;
  connections: number;
  configs: ConfigName[];
  reps: number;
}

interface Args {
  quick: boolean;
  soak: boolean;
  dryRun: boolean;
  reps?: number;
  only?: string[];
  configs?: string[];
  out: string;
  capacity: boolean;
  /** Keep the capacity recording here; replay it instead of recording when it exists. */
  recording?: string;
  /** Only the capacity benchmark. */
  capacityOnly: boolean;
  /** syscall scenarios: the kernel's BPF run-time statistics on, BPF ns per call reported. */
  bpfStats: boolean;
  /** A built checkout of another revision: the capacity replay runs its agent too, interleaved (before/after in one run). */
  compareWith?: string;
}

function parseArgs(argv: string[]): Args {
  const a: Args = {
    quick: false,
    soak: false,
    dryRun: false,
    capacity: true,
    capacityOnly: false,
    bpfStats: false,
    out: path.join(PACKAGE_ROOT, 'bench-results', `bench-${new Date().toISOString().replace(/[:.]/g, '-')}.json`),
  };
  for (let i = 0; i < argv.length; i++) {
    const v = argv[i];
    const next = () => {
      const n = argv[++i];
      if (n === undefined) usage(`${v} needs a value`);
      return n;
    };
    if (v === '--quick') a.quick = true;
    else if (v === '--soak') a.soak = true;
    else if (v === '--dry-run') a.dryRun = true;
    else if (v === '--no-capacity') a.capacity = false;
    else if (v === '--capacity-only') a.capacityOnly = true;
    else if (v === '--bpf-stats') a.bpfStats = true;
    else if (v === '--recording') a.recording = path.resolve(next());
    else if (v === '--compare-with') a.compareWith = path.resolve(next());
    else if (v === '--reps') a.reps = Number(next());
    else if (v === '--only') a.only = next().split(',');
    else if (v === '--configs') a.configs = next().split(',');
    else if (v === '--out') a.out = path.resolve(next());
    else if (v === '--help' || v === '-h') usage();
    else usage(`unknown option ${v}`);
  }
  if (a.reps !== undefined && !(Number.isInteger(a.reps) && a.reps >= 1)) usage('--reps needs an integer >= 1');
  if (a.compareWith && !existsSync(path.join(a.compareWith, 'dist', 'test', 'bench', 'replay-worker.js'))) {
    usage(`--compare-with ${a.compareWith}: no dist/test/bench/replay-worker.js there; build that checkout first (npm ci && npm run build)`);
  }
  return a;
}

function usage(problem?: string): never {
  const text =
    'usage: npm run bench -- [--quick] [--soak] [--reps N] [--only SCENARIO,...] [--configs NAME,...]\n' +
    '                        [--no-capacity | --capacity-only] [--recording FILE] [--compare-with DIR] [--bpf-stats] [--out FILE] [--dry-run]\n';
  if (problem) {
    process.stderr.write(`bench: ${problem}\n${text}`);
    process.exit(2);
  }
  process.stdout.write(text);
  process.exit(0);
}

/** A fixed-rate scenario: `perSecond` requests a second for `seconds`, over `connections`. */
function rate(id: string, target: TargetName, perSecond: number, seconds: number, connections: number, configs: ConfigName[], quick: boolean): Scenario {
  return { id, target, mode: 'rate', rate: perSecond, requests: perSecond * seconds, connections, configs, reps: quick ? 1 : 2 };
}

function scenarios(a: Args): Scenario[] {
  const q = a.quick;
  const sat = q ? 20000 : 100000;
  const rateSeconds = q ? 3 : 10;
  const list: Scenario[] = [
    {
      // One traced socket syscall's cost, without HTTP: syscost writes and reads 256 bytes over loopback.
      id: 'syscall-cost',
      target: 'syscost',
      mode: 'syscall',
      requests: q ? 50000 : 200000,
      connections: 1,
      configs: [
        'baseline',
        'headertap-kernel',
        'headertap-kernel-filtered',
        'headertap-kernel-pid-filtered',
        'refprobe',
        ...(process.env[REF_LOADER_ENV] ? (['headertap-kernel-ref', 'headertap-kernel-filtered-ref', 'headertap-kernel-pid-filtered-ref'] as const) : []),
      ],
      reps: q ? 1 : 3,
    },
    {
      // The same with each write a writev() of 27 parts, as gRPC's C core sends: the vector walk's cost.
      id: 'syscall-cost-writev27',
      target: 'syscost',
      mode: 'syscall',
      iovecs: 27,
      requests: q ? 50000 : 200000,
      connections: 1,
      configs: ['baseline', 'headertap-kernel', ...(process.env[REF_LOADER_ENV] ? (['headertap-kernel-ref'] as const) : [])],
      reps: q ? 1 : 3,
    },
    {
      id: 'nginx-saturation',
      target: 'nginx',
      mode: 'saturation',
      requests: sat,
      connections: 32,
      configs: ['baseline', 'headertap', 'headertap-kernel', 'headertap-filtered', 'refprobe', 'bpftrace'],
      reps: q ? 1 : 3,
    },
    {
      id: 'node-saturation',
      target: 'node',
      mode: 'saturation',
      requests: q ? 10000 : 50000,
      connections: 32,
      configs: ['baseline', 'headertap', 'refprobe', 'bpftrace', 'otel-http'],
      reps: q ? 1 : 2,
    },
    rate('nginx-5k', 'nginx', 5000, rateSeconds, 20, ['baseline', 'headertap', 'headertap-kernel'], q),
    rate('nginx-20k', 'nginx', 20000, rateSeconds, 40, ['baseline', 'headertap', 'headertap-kernel', 'refprobe'], q),
    rate('node-5k', 'node', 5000, rateSeconds, 20, ['baseline', 'headertap', 'otel-http'], q),
  ];
  if (a.soak) list.push({ ...rate('nginx-20k-60s', 'nginx', 20000, 60, 40, ['headertap'], q), reps: 1 });
  return list
    .filter((s) => !a.only || a.only.includes(s.id))
    .map((s) => ({
      ...s,
      ...(s.mode === 'syscall' && a.bpfStats ? { bpfStats: true } : {}),
      reps: a.reps ?? s.reps,
      configs: a.configs ? s.configs.filter((c) => a.configs!.includes(c)) : s.configs,
    }))
    .filter((s) => s.configs.length > 0);
}

interface RunResult {
  scenario: string;
  config: ConfigName;
  rep: number;
  loadAvgBefore: number;
  load?: LoadResult;
  /** CPU seconds of the application while the load ran. */
  appCpuS?: number;
  /** CPU seconds of the observer (agent + loader, probe tool) from load start until it went idle. */
  observerCpuS?: number;
  /** CPU seconds of the receiver process. */
  sinkCpuS?: number;
  /** Records received during the measured load, and all through the run. */
  records?: number;
  recordsTotal?: number;
  /** Records expected all through the run (warm-up included). */
  expectedTotal?: number;
  peakRssBytes?: number;
  /** syscall-cost: ns per write or read. */
  nsPerCall?: number;
  /** syscall-cost with --bpf-stats: ns spent in the observer's BPF programs per write or read. */
  bpfNsPerCall?: number;
  end?: ObserverEnd;
  skipped?: string;
  error?: string;
}

async function startTarget(s: Scenario, config: ConfigName): Promise<{ target: Target; sink?: Awaited<ReturnType<typeof startSink>> }> {
  if (s.target !== 'node') return { target: await startNginx(APP_CPU) };
  if (config === 'otel-http') {
    const sink = await startSink(TOOL_CPU);
    return { target: await startNodeServer(APP_CPU, sink.endpoint), sink };
  }
  return { target: await startNodeServer(APP_CPU) };
}

async function startObserver(config: ConfigName, target: Target, sink?: Awaited<ReturnType<typeof startSink>>): Promise<Observer> {
  switch (config) {
    case 'baseline':
      return noObserver();
    case 'otel-http':
      return noObserver(sink);
    case 'headertap':
      return startHeadertap(TOOL_CPU, target);
    case 'headertap-no-tls':
      return startHeadertap(TOOL_CPU, target, { extra: ['--no-tls'] });
    case 'headertap-filtered':
      return startHeadertap(TOOL_CPU, target, { port: 1 });
    case 'headertap-kernel':
    case 'headertap-kernel-filtered':
    case 'headertap-kernel-pid-filtered':
    case 'headertap-kernel-ref':
    case 'headertap-kernel-filtered-ref':
    case 'headertap-kernel-pid-filtered-ref':
      return startKernelOnly(config, target);
    case 'refprobe':
      return startRefprobe(TOOL_CPU);
    case 'bpftrace':
      return startBpftrace(TOOL_CPU);
  }
}

/** The loader alone: this build or the one at $HT_BENCH_REF_LOADER (-ref), filtering nothing out, everything by port, or everything by pid. */
function startKernelOnly(config: ConfigName, target: Target): Promise<Observer> {
  const base = config.replace(/-ref$/, '');
  const filter = base === 'headertap-kernel-filtered' ? ['--port', '1'] : base === 'headertap-kernel-pid-filtered' ? ['--pid', '1'] : ['--port', String(target.port)];
  return startLoaderOnly(TOOL_CPU, target, filter, config.endsWith('-ref') ? process.env[REF_LOADER_ENV] : undefined);
}

function observerCpu(o: Observer): Map<number, number> {
  const m = new Map<number, number>();
  for (const root of o.cpuPids()) for (const [p, t] of treeCpu(root)) m.set(p, t);
  return m;
}

/** Waits until the observer and its receiver stop using CPU (a backlog drained), at most maxMs. */
async function waitIdle(o: Observer, maxMs: number): Promise<void> {
  if (o.cpuPids().length === 0 && o.sinkPid === undefined) return;
  const read = () => cpuDelta(new Map(), observerCpu(o)) + (o.sinkPid ? cpuDelta(new Map(), treeCpu(o.sinkPid)) : 0);
  const deadline = Date.now() + maxMs;
  let last = read();
  let quiet = 0;
  while (Date.now() < deadline) {
    await sleep(250);
    const now = read();
    quiet = now - last < 0.015 ? quiet + 1 : 0;
    last = now;
    if (quiet >= 3) return; // idle for 750 ms (the exporter flushes every 200 ms)
  }
}

function expectedRecords(config: ConfigName, requests: number): number | undefined {
  if (config === 'headertap' || config === 'headertap-no-tls') return 2 * requests; // client (h2load) and server
  if (config === 'headertap-filtered') return 0;
  if (config === 'otel-http') return requests; // one server span each
  return undefined;
}

/** What a measurement started, so it is stopped whatever happens. */
interface Started {
  target?: { stop(): Promise<void> };
  observer?: Observer;
}

/** Runs one measurement: an error is recorded in r, not thrown; whatever was started is stopped. */
async function measure(r: RunResult, body: (started: Started) => Promise<void>): Promise<RunResult> {
  const started: Started = {};
  try {
    await body(started);
  } catch (err) {
    r.error = (err as Error).message.split('\n').slice(0, 4).join(' | ');
  } finally {
    if (started.observer) await started.observer.stop().catch(() => ({}));
    if (started.target) await started.target.stop().catch(() => {});
  }
  return r;
}

/** Stops the observer and returns what it reports. */
async function stopObserver(started: Started, observer: Observer): Promise<ObserverEnd> {
  const end = await observer.stop();
  started.observer = undefined;
  return end;
}

/** syscall-cost: ns per traced syscall under each observer (the kernel side alone). */
async function runSyscallCost(s: Scenario, config: ConfigName, rep: number): Promise<RunResult> {
  const r: RunResult = { scenario: s.id, config, rep, loadAvgBefore: loadAverage().one };
  return measure(r, async (started) => {
    const target = await startSyscost(APP_CPU, s.requests, s.iovecs);
    started.target = target;
    const others = s.bpfStats && config !== 'baseline' ? bpfProgStats() : undefined; // programs loaded before the observer's
    let observer: Observer;
    if (config.startsWith('headertap-kernel')) observer = await startKernelOnly(config, target);
    else if (config === 'refprobe') observer = await startRefprobe(TOOL_CPU);
    else observer = noObserver();
    started.observer = observer;
    const before = observerCpu(observer);
    const progs = others && bpfProgStats();
    r.nsPerCall = await target.go();
    if (others && progs) {
      let ns = 0;
      for (const [id, p] of bpfProgStats()) if (!others.has(id) && progs.has(id)) ns += p.ns - progs.get(id)!.ns;
      r.bpfNsPerCall = ns / (2 * s.requests);
    }
    await waitIdle(observer, 10000);
    r.observerCpuS = cpuDelta(before, observerCpu(observer));
    r.end = await stopObserver(started, observer);
  });
}

async function runOne(s: Scenario, config: ConfigName, rep: number): Promise<RunResult> {
  if (s.mode === 'syscall') return runSyscallCost(s, config, rep);
  const r: RunResult = { scenario: s.id, config, rep, loadAvgBefore: loadAverage().one };
  if (config === 'bpftrace') {
    const why = bpftraceUnavailable();
    if (why) return { ...r, skipped: why };
  }
  return measure(r, async (started) => {
    const t = await startTarget(s, config);
    const target = t.target;
    started.target = target;
    const observer = await startObserver(config, target, t.sink);
    started.observer = observer;
    const log = path.join(SCRATCH, `ht-bench-h2load-${process.pid}.log`);
    const warm = await runLoad({ port: target.port, requests: WARMUP_REQUESTS, connections: Math.min(s.connections, 16), cpus: TOOL_CPU, logFile: log });
    await waitIdle(observer, 10000);
    const before = { app: treeCpu(target.pid), obs: observerCpu(observer), sink: observer.sinkPid ? treeCpu(observer.sinkPid) : new Map<number, number>() };
    const recordsBefore = observer.liveRecords?.();
    r.load = await runLoad({
      port: target.port,
      requests: s.requests,
      connections: s.connections,
      ...(s.rate !== undefined ? { rate: s.rate } : {}),
      cpus: TOOL_CPU,
      logFile: log,
    });
    r.appCpuS = cpuDelta(before.app, treeCpu(target.pid));
    await waitIdle(observer, 30000);
    await sleep(300); // the sink prints its count every 250 ms
    r.observerCpuS = cpuDelta(before.obs, observerCpu(observer));
    if (observer.sinkPid) r.sinkCpuS = cpuDelta(before.sink, treeCpu(observer.sinkPid));
    const rss = observer.rssPids().map(peakRss);
    if (rss.length) r.peakRssBytes = rss.reduce((x, y) => x + y, 0);
    const recordsAfter = observer.liveRecords?.();
    if (recordsBefore !== undefined && recordsAfter !== undefined) r.records = recordsAfter - recordsBefore;
    r.end = await stopObserver(started, observer);
    if (r.end.records !== undefined) r.recordsTotal = r.end.records;
    const expected = expectedRecords(config, warm.succeeded + r.load.succeeded);
    if (expected !== undefined) r.expectedTotal = expected;
  });
}

// ---------------------------------------------------------------- capacity

/** One replay of the recording by replay-worker.js (see there). */
interface ReplayRun {
  records: number;
  failed: number;
  dropped: number;
  cpuSeconds: number;
  wallSeconds: number;
  maxRssMB?: number;
  summary?: string;
}

/** One run of anchor.js (see there). */
interface AnchorRun {
  mode: AnchorMode;
  records: number;
  attributes: number;
  cpuSeconds: number;
  wallSeconds: number;
  exported: number;
}

type AnchorMode = 'sdk' | 'headertap' | 'headertap-no-export';
const ANCHOR_MODES: AnchorMode[] = ['sdk', 'headertap', 'headertap-no-export'];

interface CapacityResult {
  recordingBytes: number;
  recordedRequests: number;
  runs: ReplayRun[];
  /** --compare-with: the other checkout's replays of the same recording, interleaved with these. */
  compare?: { dir: string; runs: ReplayRun[] };
  /** The same records ready-made, emitted and exported by the OpenTelemetry SDK alone and by headertap's pipeline. */
  anchor: AnchorRun[];
  /** test/bench/stages.ts on the same recording: CPU per record, stage by stage. */
  stages?: string;
  error?: string;
}

/** Runs one capacity worker (replay or anchor) on TOOL_CPU against a fresh receiver on APP_CPU; its JSON line. */
async function worker<T>(script: string, args: string[]): Promise<T> {
  const sink = await startSink(APP_CPU);
  try {
    const w = start(process.execPath, [script, ...args.map((x) => (x === 'ENDPOINT' ? sink.endpoint : x))], { cpus: TOOL_CPU });
    await w.exited;
    const line = w.output().split('\n').find((l) => l.startsWith('{'));
    if (!line) throw new Error(`${path.basename(script)}: ${w.output().slice(-500)}`);
    return JSON.parse(line) as T;
  } finally {
    await sink.stop();
  }
}

/**
 * Records headertap's event stream for nginx at a fixed rate, then, on one
 * core with a receiver on the other, replays it (and with --compare-with,
 * another checkout replays it too) and runs the anchor: the same records
 * ready-made through the OpenTelemetry SDK alone and through headertap's
 * pipeline. All interleaved, the order rotated each round.
 */
async function capacity(a: Args): Promise<CapacityResult> {
  const file = a.recording ?? path.join(SCRATCH, `ht-bench-${process.pid}.htrec`);
  const result: CapacityResult = { recordingBytes: 0, recordedRequests: 0, runs: [], anchor: [] };
  if (!a.recording || !existsSync(file)) await record(a, file, result);
  result.recordingBytes = existsSync(file) ? statSync(file).size : 0;
  if (a.compareWith) result.compare = { dir: a.compareWith, runs: [] };
  const jobs: (() => Promise<void>)[] = [
    async () => void result.runs.push(await worker<ReplayRun>(path.join(BENCH_DIST, 'replay-worker.js'), [file, 'ENDPOINT'])),
    ...(result.compare
      ? [async () => void result.compare!.runs.push(await worker<ReplayRun>(path.join(a.compareWith!, 'dist', 'test', 'bench', 'replay-worker.js'), [file, 'ENDPOINT']))]
      : []),
    ...ANCHOR_MODES.map((mode) => async () => void result.anchor.push(await worker<AnchorRun>(path.join(BENCH_DIST, 'anchor.js'), [file, 'ENDPOINT', mode]))),
  ];
  try {
    for (let round = 0; round < (a.quick ? 1 : 3); round++) {
      for (let j = 0; j < jobs.length; j++) await jobs[(j + round) % jobs.length]();
    }
  } catch (err) {
    result.error = (err as Error).message;
  }
  const stages = start(process.execPath, [path.join(BENCH_DIST, 'stages.js'), file], { cpus: TOOL_CPU });
  await stages.exited;
  result.stages = stages.output().trim();
  if (!a.recording) rmSync(file, { force: true });
  return result;
}

async function record(a: Args, file: string, result: CapacityResult): Promise<void> {
  const nginx = await startNginx(APP_CPU);
  try {
    const sink = await startSink(TOOL_CPU);
    const agent = start(process.execPath, [HEADERTAP, 'run', '--endpoint', sink.endpoint, '--port', String(nginx.port), '--record', file], { cpus: TOOL_CPU });
    try {
      await waitFor(agent, /^headertap ready/m, 60000);
      const seconds = a.quick ? 2 : 5;
      const load = await runLoad({ port: nginx.port, requests: 10000 * seconds, connections: 20, rate: 10000, cpus: TOOL_CPU, logFile: path.join(SCRATCH, `ht-bench-h2load-${process.pid}.log`) });
      result.recordedRequests = load.succeeded;
    } finally {
      await stop(agent, 'SIGINT', 60000);
      await sink.stop();
    }
  } finally {
    await nginx.stop();
  }
}

// ---------------------------------------------------------------- report

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  if (s.length === 0) return NaN;
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function fmt(n: number | undefined, digits = 0): string {
  if (n === undefined || !Number.isFinite(n)) return '-';
  return n.toLocaleString('en-US', { minimumFractionDigits: digits, maximumFractionDigits: digits });
}

export interface Summary {
  scenario: string;
  config: ConfigName;
  runs: number;
  reqPerSec: number;
  reqPerSecMin: number;
  reqPerSecMax: number;
  throughputRatio?: number;
  p99Us: number;
  p99Ratio?: number;
  appUsPerRequest: number;
  appCpuIncrease?: number;
  observerUsPerRequest?: number;
  observerUsPerRecord?: number;
  sinkUsPerRecord?: number;
  recordsPerSec?: number;
  recordsRatio?: number;
  lost?: number;
  dropped?: number;
  peakRssMB?: number;
  /** syscall-cost: ns per traced write or read, and what the observer adds to baseline. */
  nsPerCall?: number;
  nsAdded?: number;
  /** ns in the observer's BPF programs per call (--bpf-stats), and its ratio to headertap-kernel-base's. */
  bpfNsPerCall?: number;
  bpfVsBase?: number;
  errors: string[];
}

function summarize(results: RunResult[]): Summary[] {
  const out: Summary[] = [];
  const keys = [...new Set(results.map((r) => `${r.scenario}\u0000${r.config}`))];
  const base = new Map<string, Summary>();
  for (const key of keys) {
    const [scenario, config] = key.split('\u0000') as [string, ConfigName];
    const all = results.filter((r) => r.scenario === scenario && r.config === config);
    const ok = all.filter((r) => (r.load || r.nsPerCall !== undefined) && !r.error);
    const errors = all.filter((r) => r.error || r.skipped).map((r) => r.error ?? `skipped: ${r.skipped}`);
    const med = (f: (r: RunResult) => number | undefined) => {
      const xs = ok.map(f).filter((x): x is number => x !== undefined && Number.isFinite(x));
      return xs.length ? median(xs) : undefined;
    };
    if (ok.length && ok[0].nsPerCall !== undefined) {
      const s: Summary = { scenario, config, runs: ok.length, reqPerSec: NaN, reqPerSecMin: NaN, reqPerSecMax: NaN, p99Us: NaN, appUsPerRequest: NaN, errors };
      s.nsPerCall = median(ok.map((r) => r.nsPerCall!));
      const bpfNs = med((r) => r.bpfNsPerCall);
      if (bpfNs !== undefined) s.bpfNsPerCall = bpfNs;
      const lost = ok.map((r) => r.end?.lost).filter((x): x is number => x !== undefined);
      if (lost.length) s.lost = Math.max(...lost);
      if (config === 'baseline') base.set(scenario, s);
      out.push(s);
      continue;
    }
    const rps = ok.map((r) => r.load!.reqPerSec);
    const s: Summary = {
      scenario,
      config,
      runs: ok.length,
      reqPerSec: median(rps),
      reqPerSecMin: Math.min(...rps),
      reqPerSecMax: Math.max(...rps),
      p99Us: med((r) => r.load!.p99Us) ?? NaN,
      appUsPerRequest: med((r) => (r.appCpuS! * 1e6) / r.load!.succeeded) ?? NaN,
      errors,
    };
    const obs = med((r) => (r.observerCpuS !== undefined && r.config !== 'baseline' && r.config !== 'otel-http' ? (r.observerCpuS * 1e6) / r.load!.succeeded : undefined));
    if (obs !== undefined) s.observerUsPerRequest = obs;
    const perRecord = med((r) => (r.observerCpuS !== undefined && r.records ? (r.observerCpuS * 1e6) / r.records : undefined));
    if (perRecord !== undefined && config !== 'otel-http') s.observerUsPerRecord = perRecord;
    const sinkPer = med((r) => (r.sinkCpuS !== undefined && r.records ? (r.sinkCpuS * 1e6) / r.records : undefined));
    if (sinkPer !== undefined) s.sinkUsPerRecord = sinkPer;
    const recRate = med((r) => (r.records !== undefined ? r.records / r.load!.seconds : undefined));
    if (recRate !== undefined) s.recordsPerSec = recRate;
    const ratio = med((r) => (r.expectedTotal ? (r.recordsTotal ?? 0) / r.expectedTotal : undefined));
    if (ratio !== undefined) s.recordsRatio = ratio;
    const lost = ok.map((r) => r.end?.lost).filter((x): x is number => x !== undefined);
    if (lost.length) s.lost = Math.max(...lost);
    const dropped = ok.map((r) => r.end?.dropped).filter((x): x is number => x !== undefined);
    if (dropped.length) s.dropped = Math.max(...dropped);
    const rss = ok.map((r) => r.peakRssBytes).filter((x): x is number => x !== undefined);
    if (rss.length) s.peakRssMB = Math.max(...rss) / 2 ** 20;
    if (config === 'baseline') base.set(scenario, s);
    out.push(s);
  }
  for (const s of out) {
    const b = base.get(s.scenario);
    if (!b || s.runs === 0) continue;
    if (s.nsPerCall !== undefined) {
      s.nsAdded = s.nsPerCall - b.nsPerCall!;
      const base = out.find((o) => o.scenario === s.scenario && o.config === 'headertap-kernel-ref');
      if (s.bpfNsPerCall !== undefined && base?.bpfNsPerCall) s.bpfVsBase = s.bpfNsPerCall / base.bpfNsPerCall;
      continue;
    }
    s.throughputRatio = s.reqPerSec / b.reqPerSec;
    s.p99Ratio = s.p99Us / b.p99Us;
    s.appCpuIncrease = s.appUsPerRequest / b.appUsPerRequest - 1;
  }
  return out;
}

function table(rows: string[][]): string {
  const widths = rows[0].map((_, i) => Math.max(...rows.map((r) => r[i].length)));
  return rows.map((r) => r.map((c, i) => (i < 2 ? c.padEnd(widths[i]) : c.padStart(widths[i]))).join('  ')).join('\n');
}

function syscallReport(summaries: Summary[]): string {
  const rows = [['scenario', 'config', 'ns/call', 'ns added', 'BPF ns/call', 'x base loader', 'lost']];
  for (const s of summaries) rows.push([s.scenario, s.config, fmt(s.nsPerCall), fmt(s.nsAdded), fmt(s.bpfNsPerCall), fmt(s.bpfVsBase, 2), fmt(s.lost)]);
  return table(rows);
}

function report(all: Summary[]): string {
  const sys = all.filter((s) => s.nsPerCall !== undefined);
  const summaries = all.filter((s) => s.nsPerCall === undefined);
  if (summaries.length === 0) return syscallReport(sys);
  const rows = [
    ['scenario', 'config', 'req/s', 'min-max', 'x base', 'p99 ms', 'x base', 'app us/req', 'app +%', 'obs us/req', 'obs us/rec', 'rec/s', 'rec/exp', 'lost', 'dropped', 'RSS MB'],
  ];
  for (const s of summaries) {
    rows.push([
      s.scenario,
      s.config,
      fmt(s.reqPerSec),
      s.runs > 1 ? `${fmt(s.reqPerSecMin)}-${fmt(s.reqPerSecMax)}` : '',
      fmt(s.throughputRatio, 3),
      fmt(s.p99Us / 1000, 2),
      fmt(s.p99Ratio, 2),
      fmt(s.appUsPerRequest, 1),
      s.appCpuIncrease !== undefined ? fmt(s.appCpuIncrease * 100, 1) : '-',
      fmt(s.observerUsPerRequest, 1),
      fmt(s.observerUsPerRecord, 1),
      fmt(s.recordsPerSec),
      fmt(s.recordsRatio, 4),
      fmt(s.lost),
      fmt(s.dropped),
      fmt(s.peakRssMB, 0),
    ]);
  }
  let text = (sys.length ? syscallReport(sys) + '\n\n' : '') + table(rows);
  const errs = all.flatMap((s) => s.errors.map((e) => `  ${s.scenario}/${s.config}: ${e}`));
  if (errs.length) text += `\nnot measured:\n${[...new Set(errs)].join('\n')}`;
  return text;
}

/** Median records/s and CPU us per record of replays. */
function replayFigures(runs: ReplayRun[]): { rate: number; cpuUs: number; rates: number[] } {
  const rates = runs.map((r) => r.records / r.wallSeconds);
  return { rate: median(rates), cpuUs: median(runs.map((r) => (r.cpuSeconds * 1e6) / r.records)), rates };
}

function capacityReport(c: CapacityResult): string {
  if (c.runs.length === 0) return `user-space capacity: failed: ${c.error ?? 'no run'}`;
  const me = replayFigures(c.runs);
  const lines = [
    `user-space capacity (replay of ${c.recordedRequests ? `${c.recordedRequests} nginx requests` : 'a kept recording'}, ${fmt(c.recordingBytes / 2 ** 20, 1)} MiB, one core, OTLP/gRPC to a receiver on the other core):`,
    `  records/s ${fmt(me.rate)} (runs ${me.rates.map((x) => fmt(x)).join(', ')}); CPU us/record ${fmt(me.cpuUs, 1)}; ` +
      `records ${c.runs[0].records}, failed ${c.runs[0].failed}, dropped ${c.runs[0].dropped}; peak RSS ${fmt(Math.max(...c.runs.map((r) => r.maxRssMB ?? 0)))} MB (the whole recording is in memory)`,
  ];
  if (c.compare?.runs.length) {
    const other = replayFigures(c.compare.runs);
    lines.push(
      `  ${c.compare.dir}: records/s ${fmt(other.rate)} (runs ${other.rates.map((x) => fmt(x)).join(', ')}); CPU us/record ${fmt(other.cpuUs, 1)}`,
      `  this checkout against it: ${fmt(me.rate / other.rate, 2)}x the records/s, ${fmt(me.cpuUs / other.cpuUs, 2)}x the CPU per record`,
    );
  }
  const anchor = (mode: AnchorMode) => {
    const runs = c.anchor.filter((r) => r.mode === mode);
    return runs.length ? median(runs.map((r) => (r.cpuSeconds * 1e6) / r.records)) : NaN;
  };
  const sdk = anchor('sdk');
  if (Number.isFinite(sdk)) {
    const attrs = c.anchor[0].attributes;
    lines.push(
      `  anchor: the recording's records ready-made (${fmt(attrs, 1)} attributes on average), emitted and exported on the same core (median CPU us/record):`,
      `    OpenTelemetry JS SDK alone (LoggerProvider, BatchLogRecordProcessor, OTLP/gRPC exporter, gzip): ${fmt(sdk, 1)}`,
      `    headertap's pipeline from its record on (encoding, delivery buffer, OTLP/gRPC, gzip): ${fmt(anchor('headertap'), 1)} (${fmt(anchor('headertap') / sdk, 2)}x the SDK); without the export: ${fmt(anchor('headertap-no-export'), 1)}`,
      `    headertap's whole user space (the replay above) against the SDK alone: ${fmt(me.cpuUs / sdk, 2)}x`,
    );
  }
  if (c.error) lines.push(`  not measured: ${c.error}`);
  if (c.stages) lines.push(`  by stage (test/bench/stages.ts, same recording, no export):\n${c.stages.replace(/^/gm, '    ')}`);
  return lines.join('\n');
}

function machine(): Record<string, unknown> {
  const cpu = osCpus();
  const version = (cmd: string, args: string[]) => {
    try {
      return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] }).split('\n')[0].trim();
    } catch {
      return 'not installed';
    }
  };
  return {
    cpus: cpu.length,
    cpuModel: cpu[0]?.model,
    memoryGiB: Math.round(totalmem() / 2 ** 30),
    kernel: release(),
    node: process.version,
    nginx: execNginxVersion(),
    h2load: version('h2load', ['--version']),
    bpftrace: version('bpftrace', ['--version']),
  };
}

/** nginx -v prints on stderr. */
function execNginxVersion(): string {
  const r = spawnSync('/usr/sbin/nginx', ['-v'], { encoding: 'utf8' });
  return `${r.stdout ?? ''}${r.stderr ?? ''}`.trim() || 'not installed';
}

/** Why the suite cannot run here, or undefined. */
function prerequisites(): string[] {
  const missing: string[] = [];
  if (process.getuid?.() !== 0) missing.push('needs root (loads eBPF programs)');
  if (!existsSync('/usr/sbin/nginx')) missing.push('nginx is not installed (apt-get install nginx-light)');
  try {
    execFileSync('h2load', ['--version'], { stdio: 'ignore' });
  } catch {
    missing.push('h2load is not installed (apt-get install nghttp2-client)');
  }
  try {
    execFileSync('taskset', ['-V'], { stdio: 'ignore' });
  } catch {
    missing.push('taskset is not installed (util-linux)');
  }
  if (!existsSync(REFPROBE)) missing.push(`reference probe not built (${REFPROBE}): make -C test/bench/refprobe`);
  return missing;
}

/** Puts kernel.bpf_stats_enabled back (--bpf-stats), also when the run is interrupted. */
let restoreBpfStats: (() => void) | undefined;

async function main(): Promise<void> {
  const a = parseArgs(process.argv.slice(2));
  const plan = a.capacityOnly ? [] : scenarios(a);
  const runs = plan.reduce((n, s) => n + s.configs.length * s.reps, 0);
  process.stdout.write(`headertap benchmark: ${runs} runs in ${plan.length} scenarios${a.capacity ? ' + user-space capacity' : ''}\n`);
  for (const s of plan) {
    const load = h2loadArgs({ port: 0, requests: s.requests, connections: s.connections, ...(s.rate ? { rate: s.rate } : {}), logFile: 'LOG' });
    const how = s.mode === 'syscall' ? `taskset -c ${APP_CPU} syscost ${s.requests} 256${s.iovecs ? ` ${s.iovecs}` : ''}` : `taskset -c ${TOOL_CPU} h2load ${load.join(' ')}`;
    process.stdout.write(`  ${s.id}: ${s.configs.join(', ')} x${s.reps}; ${how}\n`);
  }
  for (const [c, help] of Object.entries(CONFIG_HELP)) process.stdout.write(`    ${c}: ${help}\n`);
  const missing = prerequisites();
  if (a.dryRun) {
    process.stdout.write(missing.length ? `would not run here: ${missing.join('; ')}\n` : 'prerequisites present\n');
    return;
  }
  if (missing.length) {
    process.stderr.write(`bench: cannot run: ${missing.join('; ')}\n`);
    process.exit(2);
  }
  const load0 = loadAverage();
  process.stdout.write(`load average before: ${load0.line}${load0.one > 0.5 ? '  (machine busy: figures are noisy)' : ''}\n`);

  if (a.bpfStats && plan.some((s) => s.bpfStats)) {
    // Switched on only for this run, and back to what it was however the run ends.
    const was = readFileSync(BPF_STATS_SYSCTL, 'latin1').trim();
    writeFileSync(BPF_STATS_SYSCTL, '1');
    restoreBpfStats = () => writeFileSync(BPF_STATS_SYSCTL, was);
  }
  const results: RunResult[] = [];
  const t0 = Date.now();
  for (const s of plan) {
    for (let rep = 0; rep < s.reps; rep++) {
      // Interleaved, and rotated each repetition so no configuration always runs first.
      const order = s.configs.map((_, i) => s.configs[(i + rep) % s.configs.length]);
      for (const config of order) {
        const r = await runOne(s, config, rep);
        results.push(r);
        const l = r.load;
        process.stdout.write(
          `  [${Math.round((Date.now() - t0) / 1000)}s] ${s.id} ${config} #${rep + 1}: ` +
            (r.nsPerCall !== undefined ? `${fmt(r.nsPerCall)} ns per call${r.bpfNsPerCall !== undefined ? ` (${fmt(r.bpfNsPerCall)} in BPF)` : ''}, load ${r.loadAvgBefore}` : l ? `${fmt(l.reqPerSec)} req/s, p99 ${fmt(l.p99Us / 1000, 2)} ms, records ${r.recordsTotal ?? '-'}/${r.expectedTotal ?? '-'}, load ${r.loadAvgBefore}` : (r.error ?? `skipped: ${r.skipped}`)) +
            '\n',
        );
      }
    }
  }
  restoreBpfStats?.();
  restoreBpfStats = undefined;
  const cap = a.capacity ? await capacity(a).catch((err: Error): CapacityResult => ({ recordingBytes: 0, recordedRequests: 0, runs: [], anchor: [], error: err.message })) : undefined;
  const summaries = summarize(results);
  const load1 = loadAverage();
  process.stdout.write(`\n${report(summaries)}\n`);
  if (cap) process.stdout.write(`${capacityReport(cap)}\n`);
  process.stdout.write(`load average before ${load0.line}; after ${load1.line}; ${Math.round((Date.now() - t0) / 1000)} s\n`);
  mkdirSync(path.dirname(a.out), { recursive: true });
  writeFileSync(
    a.out,
    JSON.stringify({ date: new Date().toISOString(), args: a, machine: machine(), loadAverage: { before: load0.line, after: load1.line }, summaries, capacity: cap, runs: results }, null, 2) + '\n',
  );
  process.stdout.write(`results: ${a.out}\n`);
}

// `npm run bench -- --dry-run | head` closes stdout early: that is not an error.
process.stdout.on('error', (err: NodeJS.ErrnoException) => {
  if (err.code !== 'EPIPE') throw err;
  killAll();
  process.exit(0);
});
process.on('SIGINT', () => {
  restoreBpfStats?.();
  killAll();
  process.exit(130);
});
main().catch((err: Error) => {
  restoreBpfStats?.();
  killAll();
  process.stderr.write(`bench: ${err.stack ?? err.message}\n`);
  process.exit(1);
});
