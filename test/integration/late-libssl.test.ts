/**
 * Real eBPF, real programs, loopback only: a program started after the agent
 * with a libssl the agent has never seen (a fresh copy under
 * LD_LIBRARY_PATH, new inode every run) that makes one HTTPS request and
 * exits. The kernel sees the file opened, stops the process until the
 * loader has probed it, and the first exchange is captured.
 *
 * Not covered here: programs that link OpenSSL statically (their executable
 * is probed at exec, tls.test.ts), libraries other than OpenSSL.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { capture } from '../helpers/capture';
import { attr, byPid, requireEbpf, run, startNginx } from '../helpers/integration';

const RUNS = 20;
const SYSTEM_LIBSSL = '/usr/lib/x86_64-linux-gnu/libssl.so.3';

describe('a libssl loaded after the agent started (real eBPF)', () => {
  it(`one-shot curl with a fresh libssl copy, ${RUNS} runs: the first exchange of at least ${RUNS - 1} is captured`, async (t) => {
    if (!requireEbpf(t)) return;
    const nginx = await startNginx(t, { tls: true });
    const dir = mkdtempSync(path.join(tmpdir(), 'ht-late-libssl-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const cap = await capture(t, [nginx.port]);
    const runs: { pid: number; libDir: string; ms: number }[] = [];
    for (let i = 0; i < RUNS; i++) {
      const libDir = path.join(dir, `lib${i}`);
      mkdirSync(libDir);
      copyFileSync(SYSTEM_LIBSSL, path.join(libDir, 'libssl.so.3')); // a new inode: never probed
      const started = process.hrtime.bigint();
      const c = await run('curl', ['-sSk', '-o', '/dev/null', '-H', `X-Run: ${i}`, `https://127.0.0.1:${nginx.port}/late/${i}`], {
        env: { ...process.env, LD_LIBRARY_PATH: libDir },
      });
      assert.equal(c.code, 0, c.stderr);
      runs.push({ pid: c.pid, libDir, ms: Number(process.hrtime.bigint() - started) / 1e6 });
    }
    // Every run's record, or give up after a while: the count is the result.
    await cap.sink.waitFor((rs) => runs.every((r) => byPid(rs, r.pid).length > 0), 15000, 'a record per curl').catch(() => {});
    const records = await cap.finish();
    const captured = runs.filter((r) => byPid(records, r.pid).some((rec) => attr(rec, 'url.scheme') === 'https' && rec.body === `GET /late/${runs.indexOf(r)} -> 200`));
    const held = [...cap.stderr().matchAll(/was held ([\d.]+) ms/g)].map((m) => Number(m[1])).sort((a, b) => a - b);
    const ms = runs.map((r) => r.ms).sort((a, b) => a - b);
    process.stderr.write(
      `# late libssl: ${captured.length}/${RUNS} first exchanges captured; curl lifetimes ${ms[0].toFixed(0)}-${ms[RUNS - 1].toFixed(0)} ms; ` +
        `held ${held.length} times, ${held[0] ?? '-'}-${held[held.length - 1] ?? '-'} ms\n`,
    );
    for (const r of runs) assert.match(cap.stderr(), new RegExp(`TLS: probes on ${r.libDir}/libssl\\.so\\.3 `), 'each copy probed when opened');
    assert.ok(captured.length >= RUNS - 1, `${captured.length}/${RUNS} captured`);
  });
});
