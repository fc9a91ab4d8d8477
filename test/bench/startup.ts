/**
 * How long `headertap run` takes to print its ready line, and how much of
 * that is the agent's own work rather than the kernel's: in one run,
 * interleaved, the median of each of
 *   node      `node -e 0`: the runtime alone
 *   require   `node -e require(<cli/main.js>)`: loading the agent's code
 *   loader    headertap-loader alone, start to its ready frame (BPF load,
 *             verifier, attach)
 *   agent     `headertap run` start to the ready line (loader, TLS probes
 *             and the agent's code)
 * With HT_BENCH_BASE=<other checkout> its `bin/headertap` runs too
 * (base-agent, base-require), for before/after ratios in one run.
 *
 *   node dist/test/bench/startup.js [--reps N]
 *   npm run test:kernels -- --bench      the same inside each kernel of the matrix
 *
 * Needs root; on the host, under the eBPF lock (flock /tmp/headertap-ebpf.lock).
 */
import { spawn } from 'node:child_process';
import { cpus, release } from 'node:os';
import * as path from 'node:path';
import { LOADER_PATH, PACKAGE_ROOT } from '../../src/common/paths';

const BASE = process.env.HT_BENCH_BASE;
const reps = Number(process.argv[process.argv.indexOf('--reps') + 1]) || 5;

/** ms from spawn until `done(output so far)` holds (stdout and stderr), then the child is stopped. */
function timeUntil(cmd: string, args: string[], done: ((out: string) => boolean) | 'exit', stdin: 'pipe' | 'ignore' = 'ignore', stdoutOnly = false): Promise<number> {
  return new Promise((resolve, reject) => {
    const t0 = performance.now();
    const child = spawn(cmd, args, { stdio: [stdin, 'pipe', 'pipe'] });
    let out = '';
    let at: number | undefined;
    const timer = setTimeout(() => child.kill('SIGKILL'), 600_000);
    const check = (c: Buffer, fromStdout = true) => {
      out += c.toString('latin1');
      if (at === undefined && done !== 'exit' && (fromStdout || !stdoutOnly) && done(out)) {
        at = performance.now() - t0;
        child.kill('SIGINT');
        child.stdin?.end(); // the loader stops when its stdin closes
      }
    };
    child.stdout!.on('data', check);
    child.stderr!.on('data', (c: Buffer) => check(c, false));
    child.once('error', reject);
    child.once('close', (code) => {
      clearTimeout(timer);
      if (done === 'exit' && code === 0) resolve(performance.now() - t0);
      else if (at !== undefined) resolve(at);
      else reject(new Error(`${cmd} ${args.join(' ')} exited (${code}) before it was ready:\n${out.slice(-2000)}`));
    });
  });
}

const ready = (out: string) => /^headertap ready/m.test(out);
const agentArgs = (root: string) => [path.join(root, 'bin', 'headertap'), 'run', '--endpoint', 'http://127.0.0.1:9', '--port', '9'];
const requireArgs = (root: string) => ['-e', `require(${JSON.stringify(path.join(root, 'dist', 'src', 'cli', 'main.js'))})`];

const cases: Record<string, () => Promise<number>> = {
  node: () => timeUntil(process.execPath, ['-e', '0'], 'exit'),
  require: () => timeUntil(process.execPath, requireArgs(PACKAGE_ROOT), 'exit'),
  // Its first frame on stdout is the ready frame.
  loader: () => timeUntil(LOADER_PATH, ['--port', '9'], () => true, 'pipe', true),
  agent: () => timeUntil(process.execPath, agentArgs(PACKAGE_ROOT), ready),
  ...(BASE
    ? {
        'base-require': () => timeUntil(process.execPath, requireArgs(BASE), 'exit'),
        'base-agent': () => timeUntil(process.execPath, agentArgs(BASE), ready),
      }
    : {}),
};

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

async function main(): Promise<void> {
  process.stdout.write(`# startup: ${release()}, ${cpus().length} CPUs (${cpus()[0]?.model ?? '?'}), node ${process.version}, ${reps} reps\n`);
  const times: Record<string, number[]> = Object.fromEntries(Object.keys(cases).map((k) => [k, []]));
  await cases.agent(); // warm the page cache: the first start reads every file
  for (let i = 0; i < reps; i++) for (const [name, run] of Object.entries(cases)) times[name].push(await run());
  const m = Object.fromEntries(Object.entries(times).map(([k, v]) => [k, median(v)]));
  for (const [k, v] of Object.entries(m)) process.stdout.write(`${k.padEnd(14)} ${v.toFixed(0).padStart(7)} ms  (${times[k].map((x) => x.toFixed(0)).join(' ')})\n`);
  const own = m.agent - m.loader;
  process.stdout.write(`agent's own work (agent - loader) ${own.toFixed(0)} ms: ${((100 * own) / m.agent).toFixed(0)}% of agent\n`);
  process.stdout.write(`code loading (require - node) ${(m.require - m.node).toFixed(0)} ms: ${((100 * (m.require - m.node)) / m.agent).toFixed(0)}% of agent\n`);
  if (BASE) {
    process.stdout.write(`ratio agent / base-agent ${(m.agent / m['base-agent']).toFixed(2)}\n`);
    process.stdout.write(`ratio require / base-require ${((m.require - m.node) / (m['base-require'] - m.node)).toFixed(2)} (node's own start left out)\n`);
  }
}

main().catch((err: Error) => {
  process.stderr.write(`startup bench: ${err.message}\n`);
  process.exitCode = 1;
});
