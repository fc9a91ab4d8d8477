/**
 * What the Go crypto/tls probes cost: a Go HTTPS client loop (HTTP/1.1,
 * keep-alive, one connection) against a Go HTTPS server on loopback, both
 * built here from the standard library, run in rounds that alternate
 * between no probes (no loader) and the loader with the Go probes on the
 * program file (capturing the server's port, events into a tmpfs file
 * nobody reads: the kernel side only, not the agent's parsing). Reports,
 * in one run:
 *   - mean ns per request without and with probes, and their ratio;
 *   - BPF ns per Go TLS call from the kernel's own accounting
 *     (kernel.bpf_stats_enabled: run_time_ns of every ht_go_* program over
 *     the Write and Read calls probed), so scheduler noise stays out;
 *   - what one uprobe hit costs on this machine, without BPF: a tracefs
 *     uprobe on an instruction the kernel emulates (nop) and on one it
 *     single-steps (lea), in a C loop (most of the probes' cost is this trap).
 *
 *   flock /tmp/headertap-ebpf.lock node dist/test/bench/go-tls.js [--rounds N] [--requests N]
 *
 * Needs root and Go (Debian golang-go). bpf_stats_enabled is put back as it was.
 */
import { spawnSync } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, release } from 'node:os';
import * as path from 'node:path';
import { LOADER_PATH } from '../../src/common/paths';
import { inspectGoFile } from '../../src/source/go-binary';
import { GO_HTTPS, buildGo, goUnavailable } from '../helpers/go';
import { makeCertificate } from '../helpers/integration';
import { killAll, sleep, start, stop, waitFor } from './lib/procs';
import { BPF_STATS_SYSCTL, SCRATCH, bpfProgStats, framesOfKind, freePort } from './lib/setup';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

const ROUNDS = arg('--rounds', 5);
const REQUESTS = arg('--requests', 2000);

type Config = 'no loader' | 'loader, no Go probes' | 'loader + Go probes';

const TRACEFS = '/sys/kernel/tracing';
const LOOP_C = `#include <stdio.h>
#include <time.h>
__attribute__((noinline)) int f(int x) { __asm__ volatile("nop"); return x + 1; }
int main(void) {
	struct timespec a, b; int s = 0;
	clock_gettime(CLOCK_MONOTONIC, &a);
	for (int i = 0; i < 100000; i++) s = f(s);
	clock_gettime(CLOCK_MONOTONIC, &b);
	printf("%.0f %d\\n", ((b.tv_sec - a.tv_sec) * 1e9 + (b.tv_nsec - a.tv_nsec)) / 100000.0, s);
	return 0;
}
`;

/** ns per call of f() with a tracefs uprobe at f+off (none: no probe). */
function uprobeHit(dir: string): Record<string, number> {
  const src = path.join(dir, 'loop.c');
  const bin = path.join(dir, 'loop');
  writeFileSync(src, LOOP_C);
  if (spawnSync('cc', ['-O2', '-o', bin, src]).status !== 0) return {};
  const nm = spawnSync('nm', [bin], { encoding: 'utf8' }).stdout;
  const f = parseInt(/^([0-9a-f]+) T f$/m.exec(nm)?.[1] ?? '0', 16);
  const loop = () => Number(spawnSync(bin, [], { encoding: 'utf8' }).stdout.split(' ')[0]);
  const out: Record<string, number> = { 'no probe': loop() };
  // f starts with nop (emulated), then lea (single-stepped).
  for (const [name, off] of [['emulated (nop)', 0], ['single-stepped (lea)', 1]] as const) {
    const ev = `ht_bench_${off}`;
    writeFileSync(`${TRACEFS}/uprobe_events`, `p:${ev} ${bin}:0x${(f + off).toString(16)}\n`, { flag: 'a' });
    writeFileSync(`${TRACEFS}/events/uprobes/${ev}/enable`, '1');
    out[name] = loop();
    writeFileSync(`${TRACEFS}/events/uprobes/${ev}/enable`, '0');
    writeFileSync(`${TRACEFS}/uprobe_events`, `-:${ev}\n`, { flag: 'a' });
  }
  return out;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)];
}

/** One client run: mean ns per request, as the Go client measured it. */
function clientRun(bin: string, port: number): number {
  const r = spawnSync(bin, ['client', `https://127.0.0.1:${port}/bench`, String(REQUESTS), 'h1'], { encoding: 'utf8', timeout: 120000 });
  const m = /ns_per_request (\d+)/.exec(r.stdout);
  if (r.status !== 0 || !m) throw new Error(`go client failed: ${r.stderr}`);
  return Number(m[1]);
}

async function main(): Promise<void> {
  const noGo = goUnavailable();
  if (noGo) {
    process.stderr.write(`go-tls bench skipped: ${noGo}\n`);
    process.exit(2);
  }
  const dir = mkdtempSync(path.join(SCRATCH, 'ht-bench-go-'));
  const bin = buildGo(dir, 'gohttps', GO_HTTPS, { stripped: true });
  const found = inspectGoFile(bin);
  if (found.kind !== 'probes') throw new Error(`no Go TLS probes in ${bin}: ${found.kind}`);
  const p = found.probes;
  const hs = p.handshake!;
  const attach = `attach-go 1 ${p.write.entry} ${p.read.entry} ${p.close ?? 0} ${hs.entry} ${p.write.rets.join(',')} ${p.read.rets.join(',')} ${hs.rets.join(',')} ${bin}\n`;
  const { cert, key } = makeCertificate(dir);
  const port = await freePort();
  const server = start(bin, ['server', `127.0.0.1:${port}`, cert, key, 'h1']);
  await waitFor(server, /listening/);
  const statsBefore = readFileSync(BPF_STATS_SYSCTL, 'utf8').trim();
  writeFileSync(BPF_STATS_SYSCTL, '1');
  /** ns per request per configuration, one entry per round. */
  const runs: Record<Config, number[]> = { 'no loader': [], 'loader, no Go probes': [], 'loader + Go probes': [] };
  let bpfNs = 0;
  let tlsCalls = 0;
  let events = 0;
  try {
    clientRun(bin, port); // warm-up: page cache, server goroutines
    for (let round = 0; round < ROUNDS; round++) {
      runs['no loader'].push(clientRun(bin, port));
      for (const goProbes of [false, true]) {
        const out = path.join(dir, `loader-${round}.bin`);
        const fd = openSync(out, 'w');
        const loader = start(LOADER_PATH, ['--port', String(port)], { stdio: ['pipe', fd, 'pipe'] });
        closeSync(fd);
        const deadline = Date.now() + 30000;
        while (framesOfKind(out, 64 /* HT_EV_READY */) === 0) {
          if (Date.now() > deadline) throw new Error(`loader not ready: ${loader.output()}`);
          await sleep(50);
        }
        if (goProbes) {
          loader.child.stdin!.write(attach);
          while (framesOfKind(out, 66 /* HT_EV_ATTACH */) === 0) {
            if (Date.now() > deadline) throw new Error(`loader did not answer attach-go: ${loader.output()}`);
            await sleep(50);
          }
        }
        const before = bpfProgStats();
        runs[goProbes ? 'loader + Go probes' : 'loader, no Go probes'].push(clientRun(bin, port));
        const after = bpfProgStats();
        if (goProbes) {
          for (const [id, st] of after) {
            if (!st.name.startsWith('ht_go_')) continue;
            const b = before.get(id) ?? { ns: 0, runs: 0 };
            bpfNs += st.ns - b.ns;
            if (st.name === 'ht_go_write' || st.name === 'ht_go_read') tlsCalls += st.runs - b.runs;
          }
        }
        loader.child.stdin!.end();
        await stop(loader, 'SIGTERM', 30000);
        if (goProbes) events += framesOfKind(out, 1 /* HT_EV_DATA */);
        rmSync(out, { force: true });
      }
    }
  } finally {
    writeFileSync(BPF_STATS_SYSCTL, statsBefore);
    await stop(server);
    rmSync(dir, { recursive: true, force: true });
  }
  let hit: Record<string, number> = {};
  try {
    const cdir = mkdtempSync(path.join(SCRATCH, 'ht-bench-uprobe-'));
    hit = uprobeHit(cdir);
    rmSync(cdir, { recursive: true, force: true });
  } catch (err) {
    process.stderr.write(`uprobe hit cost not measured: ${(err as Error).message}\n`);
  }
  const base = median(runs['no loader']);
  const perCall = tlsCalls ? bpfNs / tlsCalls : 0;
  const calls = tlsCalls / (ROUNDS * REQUESTS);
  const probed = median(runs['loader + Go probes']);
  const loaderOnly = median(runs['loader, no Go probes']);
  const out = [
    `go-tls bench: ${cpus().length} x ${cpus()[0]?.model ?? '?'}, Linux ${release()}, ${ROUNDS} rounds x ${REQUESTS} HTTPS requests (HTTP/1.1 keep-alive, Go client and server on one binary)`,
    ...Object.entries(runs).map(([k, v]) => `  ${k.padEnd(22)} ns per request (median of rounds) ${median(v)}; ratio to no loader ${(median(v) / base).toFixed(3)}`),
    `  Go TLS calls probed ${tlsCalls} (${calls.toFixed(1)} per request, client and server), data events ${events}`,
    `  added by the Go probes: ${((probed - loaderOnly) / calls).toFixed(0)} ns per TLS call (wall clock, over the loader alone); BPF time ${perCall.toFixed(0)} ns per TLS call (entry + returns; copy and ring buffer included)`,
    `  one uprobe hit, no BPF (tracefs, C loop): ${Object.entries(hit).map(([k, v]) => `${k} ${v} ns`).join(', ') || 'not measured'}`,
  ];
  process.stdout.write(`${out.join('\n')}\n`);
}

main().catch((err: Error) => {
  killAll();
  process.stderr.write(`go-tls bench failed: ${err.message}\n`);
  process.exit(1);
});
