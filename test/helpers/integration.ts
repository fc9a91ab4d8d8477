/**
 * Real processes for integration tests: the headertap agent (real eBPF),
 * nginx, curl, node and python on loopback, each registered for cleanup as
 * soon as it starts.
 */
import { execFileSync, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmdirSync, writeFileSync } from 'node:fs';
import { createServer, connect } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { TestContext } from 'node:test';
import { LOADER_PATH, PACKAGE_ROOT } from '../../src/common/paths';
import type { FlatRecord } from '../../src/common/flat-record';
import { cgroup2Mount } from '../../src/workload';
import { nginxConf } from './nginx-conf';

export const HEADERTAP = path.join(PACKAGE_ROOT, 'bin', 'headertap');
export const PYTHON = existsSync('/usr/bin/python3') ? '/usr/bin/python3' : 'python3';

/**
 * Why real-eBPF tests cannot run here, or undefined when they can. CI sets
 * HEADERTAP_REQUIRE_EBPF=1, which turns a skip into a failure.
 */
export function ebpfUnavailable(): string | undefined {
  if (process.getuid?.() !== 0) return 'needs root to load eBPF programs';
  if (!existsSync('/sys/kernel/btf/vmlinux')) return 'kernel has no BTF (/sys/kernel/btf/vmlinux)';
  if (!existsSync(LOADER_PATH)) return `loader not built (${LOADER_PATH}): run npm run build`;
  return undefined;
}

/** Skips (with the reason printed) or fails when real eBPF cannot be used. */
export function requireEbpf(t: TestContext): boolean {
  const reason = ebpfUnavailable();
  if (!reason) return true;
  if (process.env.HEADERTAP_REQUIRE_EBPF === '1') throw new Error(`real-eBPF test cannot run: ${reason}`);
  process.stderr.write(`# SKIP ${t.name}: ${reason}\n`);
  t.skip(reason);
  return false;
}

export function requireCommand(t: TestContext, file: string): boolean {
  if (existsSync(file)) return true;
  const reason = `${file} is not installed`;
  if (process.env.HEADERTAP_REQUIRE_EBPF === '1') throw new Error(reason);
  process.stderr.write(`# SKIP ${t.name}: ${reason}\n`);
  t.skip(reason);
  return false;
}

/** Skips (with the reason printed) or fails when python3 cannot import `module` (Debian `pkg`). */
export function requirePythonModule(t: TestContext, module: string, pkg: string): boolean {
  if (spawnSync(PYTHON, ['-c', `import ${module}`], { stdio: 'ignore' }).status === 0) return true;
  const reason = `python3 module ${module} is not installed (Debian ${pkg})`;
  if (process.env.HEADERTAP_REQUIRE_EBPF === '1') throw new Error(reason);
  process.stderr.write(`# SKIP ${t.name}: ${reason}\n`);
  t.skip(reason);
  return false;
}

export function freePort(host = '127.0.0.1'): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer();
    srv.once('error', reject);
    srv.listen(0, host, () => {
      const { port } = srv.address() as { port: number };
      srv.close(() => resolve(port));
    });
  });
}

/** Resolves once something accepts TCP connections on host:port. */
export async function waitForPort(port: number, host = '127.0.0.1', timeoutMs = 10000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = connect(port, host);
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    if (Date.now() > deadline) throw new Error(`nothing listens on ${host}:${port} after ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface Finished {
  code: number | null;
  signal: NodeJS.Signals | null;
  stdout: string;
  stderr: string;
}

/** Runs a command to completion. */
export function run(
  cmd: string,
  args: string[],
  opts: { env?: NodeJS.ProcessEnv; input?: string; timeoutMs?: number; cwd?: string } = {},
): Promise<Finished & { pid: number }> {
  return new Promise((resolve, reject) => {
    const stdin = opts.input === undefined ? 'ignore' : 'pipe';
    const child = spawn(cmd, args, { env: opts.env ?? process.env, stdio: [stdin, 'pipe', 'pipe'], ...(opts.cwd ? { cwd: opts.cwd } : {}) });
    let stdout = '';
    let stderr = '';
    child.stdout!.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr!.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), opts.timeoutMs ?? 30000);
    child.once('error', reject);
    child.once('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr, pid: child.pid! });
    });
    if (child.stdin) {
      // A program may exit without reading its input (curl does); the
      // resulting EPIPE is not the test's failure, its exit status is.
      child.stdin.on('error', () => {});
      child.stdin.end(opts.input);
    }
  });
}

/**
 * A long-running child in its own process group, killed with everything it
 * started when the test ends. Killing only the child would orphan nginx's
 * workers, which hold the output pipes open and keep the test file running.
 */
export function background(t: TestContext, cmd: string, args: string[], env?: NodeJS.ProcessEnv): ChildProcess & { output(): string } {
  const child = spawn(cmd, args, { env: env ?? process.env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  let out = '';
  child.stdout!.on('data', (c: Buffer) => (out += c.toString()));
  child.stderr!.on('data', (c: Buffer) => (out += c.toString()));
  t.after(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // the group is gone already
    }
    child.stdout!.destroy();
    child.stderr!.destroy();
  });
  return Object.assign(child, { output: () => out });
}

/** How long startAgent waits for the ready line (longer in an emulated guest: test/kernels). */
const READY_TIMEOUT_MS = Number(process.env.HT_TEST_READY_TIMEOUT_MS ?? 30000);

/** A program started now that waits for a line on stdin; go() sends it and waits for the exit. */
export function gated(t: TestContext, cmd: string, args: string[], env: NodeJS.ProcessEnv = {}): { pid: number; go(): Promise<Finished> } {
  const child = spawn(cmd, args, { env: { ...process.env, ...env }, stdio: ['pipe', 'pipe', 'pipe'] });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
  child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
  const exited = new Promise<Finished>((resolve) => child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr })));
  t.after(() => {
    if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
  });
  return {
    pid: child.pid!,
    go: () => {
      child.stdin.end('go\n');
      return exited;
    },
  };
}

/** Polls `done` every 50 ms; throws naming `what` after `timeoutMs`. */
export async function waitUntil(done: () => boolean, what: string, timeoutMs = 15000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!done()) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

export interface Agent {
  pid: number;
  stderr(): string;
  stdout(): string;
  /** stdout exactly as written, for tests that assert on bytes. */
  stdoutBytes(): Buffer;
  /** SIGINT, then the exit status and output. */
  stop(signal?: NodeJS.Signals): Promise<Finished>;
}

/**
 * Starts `headertap run` and resolves once it printed its ready line.
 * `command` replaces `node bin/headertap` (e.g. an installed copy).
 */
export function startAgent(t: TestContext, args: string[], env: NodeJS.ProcessEnv = {}, command: string[] = [process.execPath, HEADERTAP]): Promise<Agent> {
  const child = spawn(command[0], [...command.slice(1), 'run', ...args], {
    env: { ...process.env, ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let stdout = '';
  let stderr = '';
  const stdoutChunks: Buffer[] = [];
  child.stdout.on('data', (c: Buffer) => {
    stdout += c.toString();
    stdoutChunks.push(c);
  });
  const exited = new Promise<Finished>((resolve) =>
    child.once('close', (code, signal) => resolve({ code, signal, stdout, stderr })),
  );
  t.after(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`agent not ready after ${READY_TIMEOUT_MS / 1000} s; stderr:\n${stderr}`)), READY_TIMEOUT_MS);
    child.stderr.on('data', (c: Buffer) => {
      stderr += c.toString();
      if (/^headertap ready/m.test(stderr)) {
        clearTimeout(timer);
        resolve({
          pid: child.pid!,
          stderr: () => stderr,
          stdout: () => stdout,
          stdoutBytes: () => Buffer.concat(stdoutChunks),
          stop: (signal = 'SIGINT') => {
            child.kill(signal);
            return exited;
          },
        });
      }
    });
    void exited.then((f) => {
      clearTimeout(timer);
      reject(new Error(`agent exited before ready (code ${f.code}); stderr:\n${f.stderr}`));
    });
  });
}

/** Resolves once `re` matches the agent's stderr. */
export async function waitForStderr(agent: { stderr(): string }, re: RegExp, timeoutMs = 20000): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = re.exec(agent.stderr());
    if (m) return m;
    if (Date.now() > deadline) throw new Error(`stderr never matched ${re}:\n${agent.stderr()}`);
    await new Promise((r) => setTimeout(r, 50));
  }
}

/**
 * Directories under a fresh cgroup v2 directory of this test (`leaves`,
 * relative, nested as given), removed after their processes when the test
 * ends. Undefined (the test skipped) when no cgroup2 file system is mounted.
 */
export function cgroupTree(t: TestContext, leaves: string[]): { parent: string; leaves: string[] } | undefined {
  const mount = cgroup2Mount();
  if (!mount) {
    const reason = 'no cgroup2 file system is mounted';
    if (process.env.HEADERTAP_REQUIRE_EBPF === '1') throw new Error(reason);
    t.skip(reason);
    return undefined;
  }
  const parent = path.join(mount, `headertap-test-${process.pid}-${randomBytes(4).toString('hex')}`);
  const dirs = leaves.map((l) => path.join(parent, l));
  for (const d of dirs) mkdirSync(d, { recursive: true });
  const removeBelow = (dir: string): void => {
    for (const d of readdirSync(dir, { withFileTypes: true })) if (d.isDirectory()) removeBelow(path.join(dir, d.name));
    rmdirSync(dir);
  };
  t.after(async () => {
    // Only this test put processes here: end them first (a cgroup with members cannot be removed).
    for (const dir of dirs) {
      for (const pid of readFileSync(path.join(dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean)) {
        try {
          process.kill(Number(pid), 'SIGKILL');
        } catch {
          // exited already
        }
      }
    }
    for (let i = 0; ; i++) {
      try {
        removeBelow(parent);
        return;
      } catch (err) {
        if (i === 50) throw new Error(`cannot remove the test cgroup ${parent}: ${(err as Error).message}`);
        await new Promise((r) => setTimeout(r, 100)); // processes still exiting
      }
    }
  });
  return { parent, leaves: dirs };
}

/** A server that is in `cgroup` from its first instruction: the shell moves itself, then becomes the server. */
export function serverIn(t: TestContext, cgroup: string, port: number): ReturnType<typeof background> {
  return background(t, '/bin/sh', ['-c', `echo $$ > ${cgroup}/cgroup.procs && exec ${PYTHON} -m http.server ${port} --bind 127.0.0.1`]);
}

export interface Nginx {
  port: number;
  dir: string;
  /** With tls: the self-signed certificate (PEM) clients may trust. */
  cert?: string;
  stop(): Promise<void>;
}

/** A self-signed certificate for localhost/127.0.0.1/::1, made now with the openssl CLI. */
export function makeCertificate(dir: string): { cert: string; key: string } {
  const cert = path.join(dir, 'cert.pem');
  const key = path.join(dir, 'key.pem');
  execFileSync('openssl', [
    'req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '1',
    '-keyout', key, '-out', cert,
    '-subj', '/CN=localhost',
    '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1,IP:::1',
  ], { stdio: 'ignore' });
  return { cert, key };
}

/**
 * nginx on 127.0.0.1 and [::1], a fixed response with custom headers, a
 * static file for sendfile; with tls, HTTPS with a certificate made for the
 * test; with http2 (and tls), h2 negotiated by ALPN.
 */
export async function startNginx(t: TestContext, opts: { tls?: boolean; http2?: boolean } = {}): Promise<Nginx> {
  const dir = mkdtempSync(path.join(tmpdir(), 'ht-nginx-'));
  const port = await freePort();
  const tls = opts.tls ? makeCertificate(dir) : undefined;
  const listenSuffix = (tls ? ' ssl' : '') + (opts.http2 ? ' http2' : '');
  const tlsConfig = tls ? `ssl_certificate ${tls.cert};\n    ssl_certificate_key ${tls.key};` : '';
  mkdirSync(path.join(dir, 'www'));
  writeFileSync(path.join(dir, 'www', 'big.bin'), Buffer.alloc(200_000, 0x61));
  const http = `  sendfile on;
  keepalive_requests 1000;
  server {
    listen 127.0.0.1:${port}${listenSuffix};
    listen [::1]:${port}${listenSuffix};
    ${tlsConfig}
    location /big.bin { root ${dir}/www; }
    location / {
      add_header X-Served-By nginx-test always;
      add_header Cache-Control no-store always;
      return 200 "hello from nginx\\n";
    }
  }`;
  writeFileSync(path.join(dir, 'nginx.conf'), nginxConf(dir, { workerConnections: 128, http }));
  const child = background(t, '/usr/sbin/nginx', ['-c', path.join(dir, 'nginx.conf'), '-p', dir, '-e', path.join(dir, 'error.log')]);
  await waitForPort(port);
  return {
    port,
    dir,
    ...(tls ? { cert: tls.cert } : {}),
    stop: async () => {
      if (child.exitCode !== null) return;
      child.kill('SIGQUIT');
      await new Promise((r) => child.once('close', r));
    },
  };
}

/** Records from one process (the record's resource). */
export function byPid(records: FlatRecord[], pid: number): FlatRecord[] {
  return records.filter((r) => r.resource['process.pid'] === pid);
}

export function attr(r: FlatRecord, key: string): unknown {
  return r.attributes[key];
}

/** One program's line of the loader's --verifier-stats. */
export interface VerifiedProgram {
  name: string;
  /** Instructions the verifier processed. */
  insns: number;
  /** Its verification time, µs. */
  usec: number;
}

/**
 * Loads the BPF programs with the verifier's statistics (the loader's
 * --verifier-stats, nothing attached): per program, costliest first, their
 * total, and a line naming the `top` costliest. Throws with the loader's
 * stderr when it cannot load them.
 */
export async function verifierStats(timeoutMs: number, top: number): Promise<{ programs: VerifiedProgram[]; total: number; most: string; stdout: string }> {
  const r = await run(LOADER_PATH, ['--verifier-stats'], { timeoutMs });
  if (r.code !== 0) throw new Error(`headertap-loader --verifier-stats exited ${r.code}: ${r.stderr}`);
  const programs = r.stdout
    .trim()
    .split('\n')
    .map((line) => {
      const [name, insns, usec] = line.split(' ');
      return { name, insns: Number(insns), usec: Number(usec) };
    })
    .sort((a, b) => b.insns - a.insns);
  const total = programs.reduce((n, p) => n + p.insns, 0);
  const most = programs
    .slice(0, top)
    .map((p) => `${p.name} ${p.insns}`)
    .join(', ');
  return { programs, total, most, stdout: r.stdout };
}

/** Saves like an editor does: a temporary file renamed over `file` (what a config watcher must follow). */
export function saveLikeAnEditor(file: string, text: string): void {
  writeFileSync(`${file}.swp`, text);
  renameSync(`${file}.swp`, file);
}
