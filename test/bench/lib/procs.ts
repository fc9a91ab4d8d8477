/**
 * Child processes of the benchmark: each in its own process group, pinned to
 * a CPU with taskset, killed (group and all) only by the pid we started.
 */
import { spawn, type ChildProcess, type StdioOptions } from 'node:child_process';
import { connect } from 'node:net';

export interface Proc {
  child: ChildProcess;
  pid: number;
  /** stdout + stderr so far (when piped). */
  output(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

const live = new Set<Proc>();

/** Starts cmd pinned to `cpus` (a taskset list such as "1"), or unpinned when undefined. */
export function start(
  cmd: string,
  args: string[],
  opts: { cpus?: string; env?: NodeJS.ProcessEnv; stdio?: StdioOptions } = {},
): Proc {
  const [file, argv] = opts.cpus !== undefined ? ['taskset', ['-c', opts.cpus, cmd, ...args]] : [cmd, args];
  const child = spawn(file, argv, {
    env: { ...process.env, ...opts.env },
    stdio: opts.stdio ?? ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let out = '';
  child.stdout?.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr?.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => {
    child.once('error', () => resolve({ code: -1, signal: null }));
    child.once('close', (code, signal) => resolve({ code, signal }));
  });
  // taskset execs the command: the pid is the command's own.
  const p: Proc = { child, pid: child.pid ?? -1, output: () => out, exited };
  live.add(p);
  void exited.then(() => live.delete(p));
  return p;
}

/** Resolves once `re` matches the process's output; rejects when it exits first or after timeoutMs. */
export function waitFor(p: Proc, re: RegExp, timeoutMs = 30000): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    const timer = setInterval(check, 50);
    const deadline = Date.now() + timeoutMs;
    let done = false;
    function check(): void {
      if (done) return;
      const m = re.exec(p.output());
      if (m) {
        done = true;
        clearInterval(timer);
        resolve(m);
      } else if (Date.now() > deadline) {
        done = true;
        clearInterval(timer);
        reject(new Error(`no ${re} from pid ${p.pid} after ${timeoutMs} ms; output:\n${p.output().slice(-2000)}`));
      }
    }
    void p.exited.then(() => {
      setTimeout(() => {
        check();
        if (!done) {
          done = true;
          clearInterval(timer);
          reject(new Error(`pid ${p.pid} exited before ${re}; output:\n${p.output().slice(-2000)}`));
        }
      }, 100);
    });
  });
}

/** Sends sig to the process and waits up to timeoutMs for it to exit, then kills its group. */
export async function stop(p: Proc, sig: NodeJS.Signals = 'SIGTERM', timeoutMs = 20000): Promise<void> {
  if (p.child.exitCode !== null || p.child.signalCode !== null) return;
  try {
    p.child.kill(sig);
  } catch {
    // already gone
  }
  const timer = setTimeout(() => killGroup(p), timeoutMs);
  await p.exited;
  clearTimeout(timer);
  killGroup(p); // whatever it started (nginx workers)
}

function killGroup(p: Proc): void {
  try {
    process.kill(-p.pid, 'SIGKILL');
  } catch {
    // the group is gone
  }
}

/** Kills every process group still running (on error or interrupt). */
export function killAll(): void {
  for (const p of live) killGroup(p);
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Resolves once something accepts TCP connections on 127.0.0.1:port. */
export async function waitForPort(port: number, timeoutMs = 15000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, '127.0.0.1');
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on 127.0.0.1:${port} after ${timeoutMs} ms`);
    await sleep(50);
  }
}
