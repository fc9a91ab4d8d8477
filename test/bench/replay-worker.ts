/**
 * The user-space capacity benchmark's worker: runs `headertap run --replay
 * FILE` in this process and measures its CPU and wall time from the moment
 * the modules are loaded to the last export, so node's own start-up is not
 * counted. Prints one JSON line: {records, failed, dropped, cpuSeconds, wallSeconds, maxRssMB}.
 *
 *   node [--cpu-prof] dist/test/bench/replay-worker.js FILE ENDPOINT
 */
import { PassThrough } from 'node:stream';
import { resolveRunOptions } from '../../src/cli/options';
import { runAgent } from '../../src/cli/run';

async function main(): Promise<void> {
  const [file, endpoint] = process.argv.slice(2);
  const stderr = new PassThrough();
  let err = '';
  stderr.on('data', (c: Buffer) => (err += c.toString()));
  const opts = resolveRunOptions({ replay: file, endpoint });
  const cpu0 = process.cpuUsage();
  const t0 = process.hrtime.bigint();
  const code = await runAgent(opts, { stdout: new PassThrough(), stderr, env: {} });
  const wall = Number(process.hrtime.bigint() - t0) / 1e9;
  const cpu = process.cpuUsage(cpu0);
  const summary = /records exported (\d+), failed (\d+), dropped (\d+)/.exec(err);
  const out = {
    code,
    records: summary ? Number(summary[1]) : 0,
    failed: summary ? Number(summary[2]) : 0,
    dropped: summary ? Number(summary[3]) : 0,
    cpuSeconds: (cpu.user + cpu.system) / 1e6,
    wallSeconds: wall,
    maxRssMB: Math.round(process.resourceUsage().maxRSS / 1024),
    summary: err.split('\n').find((l) => l.startsWith('headertap stopped')) ?? err.trim().split('\n').pop(),
  };
  process.stdout.write(JSON.stringify(out) + '\n');
  process.exit(0);
}

void main();
