/**
 * Load with h2load --h1 (nghttp2-client): a fixed number of requests, flat
 * out or at a fixed rate, with every request's latency in a log file for p99.
 */
import { readFileSync, rmSync } from 'node:fs';
import { start, type Proc } from './procs';

export interface LoadSpec {
  port: number;
  requests: number;
  connections: number;
  /** Requests per second in all; undefined = as fast as the target answers. */
  rate?: number;
  cpus?: string;
  /** Where h2load writes per-request timings (a tmpfs path). */
  logFile: string;
}

export interface LoadResult {
  requests: number;
  succeeded: number;
  failed: number;
  seconds: number;
  reqPerSec: number;
  p50Us: number;
  p99Us: number;
}

export function h2loadArgs(s: LoadSpec): string[] {
  const args = ['--h1', '-t', '1', '-c', String(s.connections), '-n', String(s.requests), '--log-file', s.logFile];
  if (s.rate !== undefined) args.push('--rps', String(Math.max(1, Math.round(s.rate / s.connections))));
  args.push(`http://127.0.0.1:${s.port}/`);
  return args;
}

function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
}

/** Per-request durations (µs) from h2load's log: start time, status, duration, tab-separated. */
function latencies(file: string): Float64Array {
  const lines = readFileSync(file, 'latin1').split('\n');
  const out = new Float64Array(lines.length);
  let n = 0;
  for (const l of lines) {
    const tab = l.lastIndexOf('\t');
    if (tab > 0) out[n++] = Number(l.slice(tab + 1));
  }
  return out.subarray(0, n).sort();
}

export function parseH2load(output: string, logFile?: string): LoadResult {
  const req = /requests: (\d+) total, \d+ started, \d+ done, (\d+) succeeded, (\d+) failed/.exec(output);
  const fin = /finished in ([\d.]+)(m?s), ([\d.]+) req\/s/.exec(output);
  if (!req || !fin) throw new Error(`cannot read h2load's output:\n${output.slice(-1500)}`);
  const lat = logFile ? latencies(logFile) : new Float64Array(0);
  return {
    requests: Number(req[1]),
    succeeded: Number(req[2]),
    failed: Number(req[3]),
    seconds: Number(fin[1]) / (fin[2] === 'ms' ? 1000 : 1),
    reqPerSec: Number(fin[3]),
    p50Us: percentile(lat, 0.5),
    p99Us: percentile(lat, 0.99),
  };
}

export async function runLoad(s: LoadSpec): Promise<LoadResult> {
  const p: Proc = start('h2load', h2loadArgs(s), s.cpus !== undefined ? { cpus: s.cpus } : {});
  const { code } = await p.exited;
  if (code !== 0) throw new Error(`h2load exited with ${code}:\n${p.output().slice(-1500)}`);
  try {
    return parseH2load(p.output(), s.logFile);
  } finally {
    rmSync(s.logFile, { force: true });
  }
}
