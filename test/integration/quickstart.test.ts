/**
 * The README's quick start as a new user types it, from a fresh clone of
 * this repository: `scripts/start.sh` installs what is missing (here: `npm
 * ci` and the build, the Debian packages being present), then runs the agent
 * with the embedded receiver. Its stdout must carry records only, so that
 * `scripts/start.sh --format jsonl | jq .` works on the very first run; and
 * it must work from a root shell without sudo, from a user shell through
 * sudo, and say so in one line when neither is possible.
 *
 * The user shell is real: the script runs as `nobody` (setpriv), and for the
 * sudo case a private mount namespace puts a sudoers file letting `nobody`
 * become root over /etc/sudoers, so the real setuid sudo is used without
 * touching the host's configuration.
 *
 * The clone is of the committed HEAD (what CI runs): uncommitted changes to
 * the scripts are not what this test sees.
 *
 * Not covered: installing the Debian packages on a truly fresh machine (this
 * one has them; CI runs the same script before the suite), Ubuntu.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import type { FlatRecord } from '../../src/common/flat-record';
import { PACKAGE_ROOT } from '../../src/common/paths';
import { attr, byPid, requireCommand, requireEbpf, run, startNginx } from '../helpers/integration';

const NOBODY = '65534';
/** What the scripts need when sudo is absent: a PATH of exactly these. */
const BASIC_TOOLS = ['bash', 'env', 'id', 'basename', 'dirname', 'grep'];

interface Started {
  /** Resolves with the script's whole stdout and stderr once it exited. */
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: Buffer; stderr: string }>;
  stdout(): Buffer;
  stderr(): string;
  /** Resolves once `pattern` appears in stdout (text) or stderr. */
  waitFor(where: 'stdout' | 'stderr', pattern: RegExp, timeoutMs: number, what: string): Promise<void>;
  interrupt(): void;
}

/** Runs a command in its own process group, killed with all it started when the test ends. */
function start(t: TestContext, cmd: string, args: string[], env: NodeJS.ProcessEnv): Started {
  const child = spawn(cmd, args, { env, stdio: ['ignore', 'pipe', 'pipe'], detached: true });
  const out: Buffer[] = [];
  let err = '';
  const waiters: (() => void)[] = [];
  const wake = (): void => waiters.splice(0).forEach((w) => w());
  child.stdout.on('data', (c: Buffer) => (out.push(c), wake()));
  child.stderr.on('data', (c: Buffer) => ((err += c.toString()), wake()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: Buffer; stderr: string }>((resolve) =>
    child.once('close', (code, signal) => (resolve({ code, signal, stdout: Buffer.concat(out), stderr: err }), wake())),
  );
  t.after(() => {
    try {
      process.kill(-child.pid!, 'SIGKILL');
    } catch {
      // gone already
    }
  });
  const s: Started = {
    exited,
    stdout: () => Buffer.concat(out),
    stderr: () => err,
    waitFor: (where, pattern, timeoutMs, what) =>
      new Promise((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`no ${what} after ${timeoutMs} ms; stderr:\n${err}`)), timeoutMs);
        const check = (): void => {
          if (pattern.test(where === 'stdout' ? s.stdout().toString() : err)) {
            clearTimeout(timer);
            resolve();
          } else if (child.exitCode !== null || child.signalCode !== null) {
            clearTimeout(timer);
            reject(new Error(`exited (${child.exitCode ?? child.signalCode}) before ${what}; stderr:\n${err}`));
          } else waiters.push(check);
        };
        check();
      }),
    interrupt: () => process.kill(child.pid!, 'SIGINT'),
  };
  return s;
}

/** Every stdout line parsed as JSON: the test fails on the first that is not. */
function jsonLines(stdout: Buffer): FlatRecord[] {
  const text = stdout.toString();
  assert.ok(text.endsWith('\n'), 'stdout ends with a complete line');
  return text
    .slice(0, -1)
    .split('\n')
    .map((line, i) => {
      try {
        return JSON.parse(line) as FlatRecord;
      } catch {
        assert.fail(`stdout line ${i + 1} is not JSON: ${JSON.stringify(line.slice(0, 200))} (stdout starts: ${JSON.stringify(text.slice(0, 300))})`);
      }
    });
}

/** Makes every directory from `dir` up to / searchable by others (mkdtemp makes 0700). */
function openPath(dir: string): void {
  for (let d = dir; d !== path.dirname(d); d = path.dirname(d)) {
    if (d === tmpdir()) break;
    chmodSync(d, 0o755);
  }
}

describe('quick start from a fresh clone, as the README writes it', () => {
  let work = '';
  let clone = '';
  let cloneError: string | undefined;

  before(async () => {
    work = mkdtempSync(path.join(tmpdir(), 'ht-quickstart-'));
    clone = path.join(work, 'headertap');
    const r = await run('git', ['clone', '--quiet', '--no-hardlinks', PACKAGE_ROOT, clone], { timeoutMs: 120_000 });
    if (r.code !== 0) cloneError = `git clone of ${PACKAGE_ROOT} failed: ${r.stderr.trim()}`;
    else openPath(work);
  });
  after(() => rmSync(work, { recursive: true, force: true }));

  /** The clone made in before(), or a skip (a failure in CI) when this is no git checkout. */
  function requireClone(t: TestContext): boolean {
    if (!requireEbpf(t)) return false;
    if (!existsSync(path.join(PACKAGE_ROOT, '.git'))) {
      const reason = `${PACKAGE_ROOT} is not a git checkout, nothing to clone`;
      if (process.env.HEADERTAP_REQUIRE_EBPF === '1') throw new Error(reason);
      process.stderr.write(`# SKIP ${t.name}: ${reason}\n`);
      t.skip(reason);
      return false;
    }
    assert.equal(cloneError, undefined, cloneError);
    return true;
  }

  it('root shell, no sudo needed: scripts/start.sh --format jsonl installs, builds, captures, and prints only JSON records on stdout', async (t) => {
    if (!requireClone(t)) return;
    assert.ok(!existsSync(path.join(clone, 'node_modules')) && !existsSync(path.join(clone, 'dist')), 'the clone starts unbuilt');
    const nginx = await startNginx(t);
    const began = process.hrtime.bigint();
    const script = start(t, path.join(clone, 'scripts', 'start.sh'), ['--format', 'jsonl', '--port', String(nginx.port)], process.env);
    await script.waitFor('stderr', /^headertap ready/m, 600_000, 'ready line (npm ci and the build come first)');
    const ready = Number(process.hrtime.bigint() - began) / 1e9;
    assert.match(script.stderr(), /^==> npm ci$/m, 'the fresh clone was installed by the script');
    assert.doesNotMatch(script.stderr(), /sudo/, 'a root shell needs no sudo');
    const curl = await run('curl', ['-sS', '-H', 'X-Quickstart: first-contact', `http://127.0.0.1:${nginx.port}/quickstart`]);
    assert.equal(curl.code, 0, curl.stderr);
    await script.waitFor('stdout', /"url\.path":"\/quickstart"[^\n]*\n[^\n]*"url\.path":"\/quickstart"/, 20_000, 'both records of the curl exchange');
    const firstRecord = Number(process.hrtime.bigint() - began) / 1e9;
    process.stderr.write(`# quick start from a fresh clone: ready after ${ready.toFixed(1)} s, first record after ${firstRecord.toFixed(1)} s\n`);
    script.interrupt();
    const end = await script.exited;
    assert.equal(end.code, 0, `exit status after Ctrl-C; stderr:\n${end.stderr}`);
    assert.match(end.stderr, /^headertap stopped: /m);

    const records = jsonLines(end.stdout);
    const client = byPid(records, curl.pid);
    assert.equal(client.length, 1, "curl's record");
    assert.deepEqual(attr(client[0], 'http.request.header.x-quickstart'), ['first-contact']);
    assert.ok(
      records.some((r) => attr(r, 'headertap.role') === 'server' && attr(r, 'url.path') === '/quickstart'),
      "nginx's record",
    );
    // The install and build messages went to stderr, not into the records.
    assert.doesNotMatch(end.stdout.toString(), /added \d+ packages|==> |tsc|make/);
  });

  it('user shell with sudo: scripts/start.sh says so and re-runs itself as root through sudo', async (t) => {
    if (!requireClone(t)) return;
    if (!requireCommand(t, '/usr/bin/sudo')) return;
    const sudoers = path.join(work, 'sudoers');
    writeFileSync(sudoers, 'Defaults !lecture\nnobody ALL=(root) NOPASSWD: ALL\n');
    chmodSync(sudoers, 0o440);
    const nginx = await startNginx(t);
    // In a private mount namespace, this sudoers file is /etc/sudoers; then the script runs as nobody.
    const inner = `mount --bind '${sudoers}' /etc/sudoers && exec setpriv --reuid=${NOBODY} --regid=${NOBODY} --clear-groups -- "$@"`;
    const script = start(
      t,
      'unshare',
      ['--mount', '--propagation', 'private', 'sh', '-c', inner, 'sh', path.join(clone, 'scripts', 'start.sh'), '--format', 'jsonl', '--port', String(nginx.port)],
      process.env,
    );
    await script.waitFor('stderr', /^headertap ready/m, 600_000, 'ready line');
    // Only root gets this far: the agent refuses to start without privileges.
    assert.match(script.stderr(), /^==> not root: re-running as root through sudo$/m);
    const curl = await run('curl', ['-sS', `http://127.0.0.1:${nginx.port}/through-sudo`]);
    assert.equal(curl.code, 0, curl.stderr);
    await script.waitFor('stdout', /"url\.path":"\/through-sudo"/, 20_000, "curl's record");
    script.interrupt();
    const end = await script.exited;
    assert.equal(end.code, 0, `exit status after Ctrl-C through sudo; stderr:\n${end.stderr}`);
    assert.ok(jsonLines(end.stdout).some((r) => attr(r, 'url.path') === '/through-sudo'));
  });

  it('user shell without sudo: one line naming the problem and the fix, exit 2', async (t) => {
    if (!requireClone(t)) return;
    const tools = path.join(work, 'tools');
    mkdirSync(tools, { recursive: true });
    for (const tool of BASIC_TOOLS) {
      const real = spawnSync('bash', ['-c', `command -v ${tool}`]).stdout.toString().trim();
      assert.ok(real, `${tool} is installed`);
      if (!existsSync(path.join(tools, tool))) symlinkSync(real, path.join(tools, tool));
    }
    for (const script of ['start.sh', 'test.sh']) {
      const r = await run('/usr/bin/setpriv', [`--reuid=${NOBODY}`, `--regid=${NOBODY}`, '--clear-groups', '--', path.join(clone, 'scripts', script)], {
        env: { PATH: tools, HOME: '/nonexistent' },
      });
      assert.equal(r.code, 2, `${script} exit status; stderr:\n${r.stderr}`);
      assert.equal(r.stdout, '');
      assert.match(r.stderr, new RegExp(`^headertap: ${script.replace('.', '\\.')} needs root .* sudo is not installed: run it from a root shell \\(su -\\), or install sudo\\n$`));
    }
  });
});
