/**
 * What the benchmark reads from /proc: CPU time (utime + stime, in clock
 * ticks) and peak RSS of processes and their descendants.
 */
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';

let ticksPerSecond: number | undefined;

/** Clock ticks per second (USER_HZ), usually 100. */
export function clockTicks(): number {
  if (ticksPerSecond === undefined) {
    try {
      ticksPerSecond = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;
    } catch {
      ticksPerSecond = 100;
    }
  }
  return ticksPerSecond;
}

/** The fields of /proc/PID/stat after the command name (field 3 is index 0). */
function statFields(pid: number): string[] | undefined {
  try {
    const s = readFileSync(`/proc/${pid}/stat`, 'latin1');
    return s.slice(s.lastIndexOf(')') + 2).split(' ');
  } catch {
    return undefined;
  }
}

/** utime + stime of one process (all its threads), in seconds; 0 once it is gone. */
export function cpuSeconds(pid: number): number {
  const f = statFields(pid);
  if (!f) return 0;
  return (Number(f[11]) + Number(f[12])) / clockTicks();
}

/** Direct children of a process (every thread's children). */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  let tasks: string[];
  try {
    tasks = readdirSync(`/proc/${pid}/task`);
  } catch {
    return out;
  }
  for (const tid of tasks) {
    try {
      for (const c of readFileSync(`/proc/${pid}/task/${tid}/children`, 'latin1').split(' ')) {
        if (c.trim()) out.push(Number(c));
      }
    } catch {
      // thread ended
    }
  }
  return out;
}

/** A process and all its descendants. */
export function processTree(pid: number): number[] {
  const out = [pid];
  for (let i = 0; i < out.length; i++) out.push(...childrenOf(out[i]));
  return out;
}

/** CPU seconds of a process tree, by pid (so a process that exits keeps its last reading). */
export function treeCpu(pid: number): Map<number, number> {
  const m = new Map<number, number>();
  for (const p of processTree(pid)) m.set(p, cpuSeconds(p));
  return m;
}

/** CPU used between two readings of treeCpu, summed over every process seen. */
export function cpuDelta(before: Map<number, number>, after: Map<number, number>): number {
  let sum = 0;
  for (const [p, t] of after) sum += t - (before.get(p) ?? 0);
  return sum;
}

/** Peak resident set (VmHWM) of one process, in bytes; 0 once it is gone. */
export function peakRss(pid: number): number {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'latin1'));
    return m ? Number(m[1]) * 1024 : 0;
  } catch {
    return 0;
  }
}

/** The 1-minute load average and the whole line of /proc/loadavg. */
export function loadAverage(): { one: number; line: string } {
  const line = readFileSync('/proc/loadavg', 'latin1').trim();
  return { one: Number(line.split(' ')[0]), line };
}
