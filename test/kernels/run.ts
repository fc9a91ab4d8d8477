/**
 * The kernel matrix: boots each of Debian's stock kernels under qemu
 * (software emulation, no network), with the host's `/` as its root (see
 * initramfs.ts), and runs test/kernels/guest.ts there: headertap loads its
 * eBPF programs into that kernel and captures plain HTTP, TLS through libssl,
 * node's own TLS, HTTP/2 and Go's crypto/tls (a Go program built here, on the
 * host, with Debian's Go), checked on the OTLP a real receiver decodes.
 *
 *   npm run test:kernels                       Debian's newest 6.1 and 6.12
 *   HEADERTAP_KERNELS="6.1 linux-image-6.12.118+deb12-amd64-unsigned" npm run test:kernels
 *   npm run test:kernels -- --bench            test/bench/startup.ts in each kernel instead
 *
 * Needs root (apt-get download into the cache), qemu-system-x86, busybox-static,
 * cpio and xz-utils (scripts/ensure-deps.sh installs them). Each guest's console
 * goes to a log file; a guest that hangs is killed after
 * HEADERTAP_KERNEL_TIMEOUT_S (default 600) seconds. Exit status 1 when a
 * kernel failed, 2 when the matrix could not run.
 */
import { execFileSync, spawn } from 'node:child_process';
import { createWriteStream, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { createInterface } from 'node:readline';
import { PACKAGE_ROOT } from '../../src/common/paths';
import { buildGo, goUnavailable, GO_HTTPS } from '../helpers/go';
import { buildInitramfs, MOUNT_TAG } from './initramfs';
import { DEFAULT_SERIES, fetchKernel, newestPackage, pruneSeries, type Kernel } from './kernels';

const TIMEOUT_S = Number(process.env.HEADERTAP_KERNEL_TIMEOUT_S ?? 600);
const LOG_DIR = process.env.HEADERTAP_KERNEL_LOGS ?? path.join(tmpdir(), 'headertap-kernels');
const MEMORY = process.env.HEADERTAP_KERNEL_MEMORY ?? '3G';
/** --bench: run the start-up benchmark (test/bench/startup.ts) in each kernel instead of the test. */
const BENCH = process.argv.includes('--bench');

interface Outcome {
  kernel: Kernel;
  pass: boolean;
  /** Seconds from qemu's start to the guest's root being up. */
  bootS?: number;
  /** Agent start to its ready line, measured in the guest. */
  readyMs?: number;
  /** What the verifier processed (loader --verifier-stats), as the guest said it. */
  verified?: string;
  /** What the ready line said about the kernel's features. */
  features?: string;
  /** How many programs loaded and their size after the kernel's rewrite and JIT. */
  programs?: string;
  totalS: number;
  why?: string;
  log: string;
  /** The guest's own output (the test's report), for a failure. */
  output: string[];
}

/**
 * What the ready line must say about kernel k, from the package's own
 * config: the kprobe PMU comes with CONFIG_KPROBE_EVENTS, bpf_loop with 5.17.
 */
function expectedFeatures(k: Kernel): string[] {
  const config = readFileSync(path.join(k.root, 'boot', `config-${k.release}`), 'utf8');
  const [major, minor] = k.release.split(/[.-]/).map(Number);
  return [
    `kprobes: ${/^CONFIG_KPROBE_EVENTS=y$/m.test(config) ? 'yes' : 'no'}`,
    `bpf_loop: ${major > 5 || (major === 5 && minor >= 17) ? 'yes' : 'no'}`,
  ];
}

/**
 * The Go HTTPS program the guests run (built once, here: compiling under
 * emulation would take minutes), or why there is none. Without Go the Go
 * case is skipped with that reason, unless HEADERTAP_REQUIRE_EBPF=1 (CI).
 */
function goProgram(): { bin?: string; why?: string } {
  const why = goUnavailable();
  if (why) return { why };
  const dir = mkdtempSync(path.join(tmpdir(), 'ht-kernels-go-'));
  process.on('exit', () => rmSync(dir, { recursive: true, force: true }));
  return { bin: buildGo(dir, 'gohttps', GO_HTTPS) };
}

function bootGuest(k: Kernel, goBin: string | undefined): Promise<Outcome> {
  mkdirSync(LOG_DIR, { recursive: true });
  const log = path.join(LOG_DIR, `${k.release}.console.log`);
  const work = mkdtempSync(path.join(tmpdir(), 'ht-kernel-'));
  const initrd = path.join(work, 'initrd.cpio');
  buildInitramfs(k, initrd, {
    command: BENCH ? [process.execPath, path.join('dist', 'test', 'bench', 'startup.js'), '--reps', '3'] : [process.execPath, path.join('dist', 'test', 'kernels', 'guest.js')],
    cwd: PACKAGE_ROOT,
    env: {
      PATH: '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin',
      HOME: '/root',
      NO_COLOR: '1',
      HEADERTAP_REQUIRE_EBPF: '1',
      HT_TEST_READY_TIMEOUT_MS: '240000',
      // An export answered after the default 10 s is retried and its records arrive twice; emulation is ~20x slower.
      OTEL_EXPORTER_OTLP_TIMEOUT: '60000',
      HT_GUEST_KERNEL: `${k.pkg} ${k.version}`,
      HT_GUEST_EXPECT_FEATURES: expectedFeatures(k).join(','),
      ...(goBin ? { HT_GUEST_GO_BIN: goBin } : {}),
      ...(BENCH && process.env.HT_BENCH_BASE ? { HT_BENCH_BASE: process.env.HT_BENCH_BASE } : {}),
    },
    timeoutS: Math.max(10, TIMEOUT_S - 30), // the guest gives up first, so its report still reaches the console
  });
  const args = [
    '-accel', 'tcg,thread=multi', '-cpu', 'max', '-smp', '2', '-m', MEMORY,
    '-nic', 'none', '-display', 'none', '-monitor', 'none', '-serial', 'stdio', '-no-reboot',
    '-kernel', k.vmlinuz, '-initrd', initrd,
    '-append', 'console=ttyS0 panic=-1 quiet loglevel=4 rdinit=/init',
    '-virtfs', `local,path=/,mount_tag=${MOUNT_TAG},security_model=none,readonly=on,multidevs=remap`,
  ];
  const started = Date.now();
  const out = createWriteStream(log);
  const qemu = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const result: Outcome = { kernel: k, pass: false, totalS: 0, log, output: [] };
  let exit: number | undefined;
  let inGuest = false;
  const onLine = (raw: string) => {
    const line = raw.replace(/\r$/, '');
    out.write(`${line}\n`);
    let m: RegExpExecArray | null;
    if (/^HT-GUEST root /.test(line)) {
      result.bootS = (Date.now() - started) / 1000;
      inGuest = true;
    } else if ((m = /^HT-GUEST exit (\d+)/.exec(line))) {
      exit = Number(m[1]);
      inGuest = false;
    } else if ((m = /^HT-GUEST error (.*)/.exec(line))) {
      result.why = `guest set-up failed: ${m[1]}`;
    } else if (inGuest) {
      result.output.push(line);
      if ((m = /^# ht-kernel ready_ms (\d+)/.exec(line))) result.readyMs = Number(m[1]);
      if ((m = /^# ht-kernel features (.*)/.exec(line))) result.features = m[1];
      if ((m = /^# ht-kernel programs (.*)/.exec(line))) result.programs = m[1];
      if ((m = /^# ht-kernel verified (.*)/.exec(line))) result.verified = m[1];
    }
  };
  createInterface({ input: qemu.stdout }).on('line', onLine);
  createInterface({ input: qemu.stderr }).on('line', (l) => out.write(`[qemu] ${l}\n`));
  const timer = setTimeout(() => {
    result.why = `guest still running after ${TIMEOUT_S} s: killed`;
    qemu.kill('SIGKILL');
  }, TIMEOUT_S * 1000);
  return new Promise((resolve) => {
    qemu.once('error', (err) => {
      result.why = `cannot start qemu-system-x86_64: ${err.message}`;
    });
    qemu.once('close', (code) => {
      clearTimeout(timer);
      out.end();
      rmSync(work, { recursive: true, force: true });
      result.totalS = (Date.now() - started) / 1000;
      if (exit === 0) result.pass = true;
      else if (!result.why) result.why = exit === undefined ? `qemu exited (status ${code}) before the test finished` : `the guest test failed (exit ${exit})`;
      resolve(result);
    });
  });
}

function report(r: Outcome): void {
  const fmt = (n: number | undefined, unit: string, digits = 1) => (n === undefined ? '-' : `${n.toFixed(digits)} ${unit}`);
  process.stdout.write(
    `${r.pass ? 'PASS' : 'FAIL'} ${r.kernel.pkg} ${r.kernel.version} (${r.kernel.release}): ` +
      `boot ${fmt(r.bootS, 's')}, ready ${fmt(r.readyMs === undefined ? undefined : r.readyMs / 1000, 's')}, total ${fmt(r.totalS, 's')}` +
      `${r.features ? `; ${r.features}` : ''}${r.programs ? `; programs ${r.programs}` : ''}${r.verified ? `; verified ${r.verified}` : ''}\n`,
  );
  if (BENCH) for (const l of r.output) process.stdout.write(`  | ${l}\n`);
  if (r.pass) return;
  process.stdout.write(`  ${r.why}\n  console log: ${r.log}\n`);
  const shown = r.output.slice(-200);
  if (shown.length) process.stdout.write(`  guest output${r.output.length > shown.length ? ' (the last 200 lines)' : ''}:\n`);
  for (const l of shown) process.stdout.write(`  | ${l}\n`);
}

async function main(): Promise<number> {
  if (process.getuid?.() !== 0) {
    process.stderr.write('test:kernels: needs root (apt-get download into the kernel cache); run it with sudo\n');
    return 2;
  }
  if (!existsSync(path.join(PACKAGE_ROOT, 'dist', 'test', 'kernels', 'guest.js'))) {
    process.stderr.write('test:kernels: the checkout is not built; run npm run build\n');
    return 2;
  }
  const wanted = (process.env.HEADERTAP_KERNELS ?? DEFAULT_SERIES.join(' ')).split(/[\s,]+/).filter(Boolean);
  const kernels: Kernel[] = [];
  for (const w of wanted) {
    const t0 = Date.now();
    let k: Kernel;
    try {
      k = fetchKernel(newestPackage(w));
    } catch (first) {
      // Stale package lists name packages the mirror no longer has (or none): refresh once.
      process.stdout.write(`kernel ${w}: ${(first as Error).message.split('\n')[0]}; apt-get update and again\n`);
      try {
        execFileSync('apt-get', ['update', '-qq'], { stdio: ['ignore', 'ignore', 'inherit'] });
        k = fetchKernel(newestPackage(w));
      } catch (err) {
        process.stderr.write(`test:kernels: ${(err as Error).message.split('\n')[0]}\n`);
        return 2;
      }
    }
    pruneSeries(w, k);
    process.stdout.write(`kernel ${k.pkg} ${k.version} ready in ${((Date.now() - t0) / 1000).toFixed(1)} s (cache ${k.root})\n`);
    kernels.push(k);
  }
  const go = BENCH ? {} : goProgram();
  if (go.why) {
    if (process.env.HEADERTAP_REQUIRE_EBPF === '1') {
      process.stderr.write(`test:kernels: ${go.why}; the Go TLS case cannot run\n`);
      return 2;
    }
    process.stdout.write(`# SKIP the Go TLS case in every kernel: ${go.why}\n`);
  }
  const results: Outcome[] = [];
  for (const k of kernels) {
    const r = await bootGuest(k, go.bin);
    report(r);
    results.push(r);
  }
  const failed = results.filter((r) => !r.pass).length;
  process.stdout.write(`kernel matrix: ${results.length - failed} passed, ${failed} failed; consoles in ${LOG_DIR}\n`);
  return failed ? 1 : 0;
}

void main().then((code) => (process.exitCode = code));
