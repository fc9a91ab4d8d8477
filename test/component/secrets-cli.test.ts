/**
 * The new options from the command line and the config file, and their bad
 * input: one line, exit 2, and never the key itself in the message.
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { resolveRunOptions } from '../../src/cli/options';
import { loadHashKey } from '../../src/cli/secrets';
import { UsageError } from '../../src/common/errors';
import { LOADER_PATH, PACKAGE_ROOT } from '../../src/common/paths';
import { cgroup2Mount } from '../../src/workload/cgroup';

const HEADERTAP = path.join(PACKAGE_ROOT, 'bin', 'headertap');
const KEY_TEXT = 'K3Y-MATERIAL-never-shown';

function tmpFile(name: string, text: string): string {
  const file = path.join(mkdtempSync(path.join(tmpdir(), 'ht-secrets-')), name);
  writeFileSync(file, text);
  return file;
}

function headertap(args: string[], env: NodeJS.ProcessEnv = {}) {
  const r = spawnSync(process.execPath, [HEADERTAP, ...args], { encoding: 'utf8', timeout: 30000, env: { ...process.env, ...env } });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

function assertOneLineError(r: { code: number | null; stdout: string; stderr: string }, re: RegExp) {
  assert.equal(r.code, 2, `exit status; stderr: ${r.stderr}`);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line, got:\n${r.stderr}`);
  assert.match(lines[0], re);
  assert.doesNotMatch(r.stderr + r.stdout, /K3Y|SHORT-K/, 'the key never appears');
}

describe('options: header rules, hashing, workloads, cgroups', () => {
  it('reads every new key from the YAML config, flags winning', () => {
    const file = tmpFile(
      'c.yaml',
      [
        'exclude-headers: [x-debug-*, x-trace-internal]',
        'capture-request-headers: "x-*,authorization"',
        'capture-response-headers: [server]',
        'exclude-request-headers: x-b',
        'exclude-response-headers: x-c',
        'hash-headers: [authorization, x-session]',
        'hash-key-file: /etc/headertap/hash.key',
        'process-command-line: true',
        'cgroup: ["/system.slice/a,b.service", /kubepods]',
        '',
      ].join('\n'),
    );
    const o = resolveRunOptions({ excludeResponseHeaders: 'x-d' }, file);
    assert.deepEqual(o.excludeHeaders, ['x-debug-*', 'x-trace-internal']);
    assert.deepEqual(o.captureRequestHeaders, ['x-*', 'authorization']);
    assert.deepEqual(o.captureResponseHeaders, ['server']);
    assert.deepEqual(o.excludeRequestHeaders, ['x-b']);
    assert.deepEqual(o.excludeResponseHeaders, ['x-d']);
    assert.deepEqual(o.hashHeaders, ['authorization', 'x-session']);
    assert.equal(o.hashKeyFile, '/etc/headertap/hash.key');
    assert.equal(o.processCommandLine, true);
    assert.deepEqual(o.cgroup, ['/system.slice/a,b.service', '/kubepods'], 'paths are not split at commas');
  });

  it('defaults: nothing excluded, nothing hashed, no command line, no cgroup filter', () => {
    const o = resolveRunOptions({});
    assert.deepEqual([o.excludeHeaders, o.hashHeaders, o.cgroup], [[], [], []]);
    assert.equal(o.captureRequestHeaders, undefined);
    assert.equal(o.processCommandLine, false);
  });

  it('rejects bad globs and too many cgroups', () => {
    assert.throws(() => resolveRunOptions({ hashHeaders: 'x session' }), /--hash-headers 'x session' is not a header-name glob/);
    assert.throws(() => resolveRunOptions({ cgroup: Array.from({ length: 9 }, (_, i) => `/c${i}`) }), /too many --cgroup filters \(9\); at most 8/);
  });
});

describe('the --hash-headers key', () => {
  it('comes from --hash-key-file (trailing newline dropped), else HEADERTAP_HASH_KEY', () => {
    const file = tmpFile('k', `${KEY_TEXT}\n`);
    assert.equal(loadHashKey({ hashHeaders: ['x'], hashKeyFile: file }, {})?.toString(), KEY_TEXT);
    assert.equal(loadHashKey({ hashHeaders: ['x'] }, { HEADERTAP_HASH_KEY: KEY_TEXT })?.toString(), KEY_TEXT);
    assert.equal(loadHashKey({ hashHeaders: [] }, {}), undefined, 'no hashing, no key needed');
    assert.throws(() => loadHashKey({ hashHeaders: ['x'] }, {}), (e: unknown) => e instanceof UsageError);
  });

  it('hashing without a key: one line naming both ways to give one, exit 2', () => {
    assertOneLineError(
      headertap(['run', '--hash-headers', 'authorization'], { HEADERTAP_HASH_KEY: '' }),
      /^headertap: --hash-headers needs a key: pass --hash-key-file FILE or set HEADERTAP_HASH_KEY/,
    );
  });

  it('a missing, unreadable or short key file is named, its content never shown', (t) => {
    assertOneLineError(headertap(['run', '--hash-headers', 'x', '--hash-key-file', '/nonexistent/k']), /cannot read --hash-key-file \/nonexistent\/k: no such file/);
    assertOneLineError(
      headertap(['run', '--hash-headers', 'x', '--hash-key-file', tmpFile('short', 'SHORT-K\n')]),
      /the key in --hash-key-file .*short is 7 bytes; --hash-headers needs at least 16/,
    );
    assertOneLineError(headertap(['run', '--hash-headers', 'x'], { HEADERTAP_HASH_KEY: 'SHORT-K' }), /the key in HEADERTAP_HASH_KEY is 7 bytes/);
    if (process.getuid?.() === 0) {
      t.diagnostic('as root every file is readable: the permission case is not checked');
      return;
    }
    const locked = tmpFile('locked', KEY_TEXT);
    chmodSync(locked, 0);
    assertOneLineError(headertap(['run', '--hash-headers', 'x', '--hash-key-file', locked]), /permission denied/);
  });
});

describe('--cgroup values', () => {
  it('a path that is not a cgroup v2 directory: one line, exit 2, naming the cgroup2 mount', () => {
    const mount = cgroup2Mount();
    const r = headertap(['run', '--cgroup', '/nonexistent/cg']);
    assertOneLineError(r, /--cgroup '\/nonexistent\/cg' is not a cgroup v2 directory; use /);
    if (mount) assert.ok(r.stderr.includes(mount), `names ${mount}`);
    assertOneLineError(headertap(['run', '--cgroup', tmpdir()]), /is not a cgroup v2 directory/);
  });

  it('the loader checks it too, before loading anything', () => {
    const r = spawnSync(LOADER_PATH, ['--cgroup', tmpdir()], { encoding: 'utf8' });
    assert.equal(r.status, 2);
    assert.match(r.stderr, /^headertap-loader: invalid --cgroup '[^']+': not in a cgroup v2 file system/);
  });

  it('finds the cgroup2 mount in mountinfo (pure v2 and hybrid layouts)', () => {
    const v2 = '35 24 0:30 / /sys/fs/cgroup rw,nosuid shared:9 - cgroup2 cgroup2 rw,nsdelegate\n';
    const hybrid =
      '30 24 0:26 / /sys/fs/cgroup ro shared:9 - tmpfs tmpfs ro,mode=755\n' +
      '31 30 0:27 / /sys/fs/cgroup/unified rw shared:10 - cgroup2 cgroup2 rw\n' +
      '32 30 0:28 / /sys/fs/cgroup/memory rw shared:11 - cgroup cgroup rw,memory\n';
    assert.equal(cgroup2Mount(v2), '/sys/fs/cgroup');
    assert.equal(cgroup2Mount(hybrid), '/sys/fs/cgroup/unified');
    assert.equal(cgroup2Mount('31 30 0:27 / /sys/fs/cgroup/memory rw - cgroup cgroup rw,memory\n'), undefined);
  });
});
