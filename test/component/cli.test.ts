/**
 * The command as users meet it: bad input of every kind is one line on
 * stderr naming the problem and the fix, exit status 2, no stack trace.
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, truncateSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { PACKAGE_ROOT } from '../../src/common/paths';
import { checkKernel, checkPrivileges } from '../../src/cli/privileges';
import { EnvironmentError } from '../../src/common/errors';

const HEADERTAP = path.join(PACKAGE_ROOT, 'bin', 'headertap');

function headertap(args: string[], opts: { uid?: number; gid?: number } = {}) {
  const r = spawnSync(process.execPath, [HEADERTAP, ...args], { encoding: 'utf8', timeout: 30000, ...opts });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr };
}

/** As headertap(), without blocking this process's event loop (a server of the test must keep answering). */
function headertapAsync(args: string[]): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const child = spawn(process.execPath, [HEADERTAP, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    child.stdout.on('data', (c: Buffer) => (stdout += c.toString()));
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const timer = setTimeout(() => child.kill('SIGKILL'), 30000);
    child.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, stdout, stderr });
    });
  });
}

function assertOneLineError(r: { code: number | null; stderr: string }, re: RegExp) {
  assert.equal(r.code, 2, `exit status; stderr: ${r.stderr}`);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line, got:\n${r.stderr}`);
  assert.match(lines[0], /^headertap: /);
  assert.match(lines[0], re);
  assert.doesNotMatch(r.stderr, /\bat .*\.js:\d+/, 'no stack trace');
}

describe('headertap CLI: bad input', () => {
  const cases: [string, string[], RegExp][] = [
    ['unknown flag', ['run', '--bogus'], /unknown option '--bogus'; see `headertap run --help`/],
    ['mistyped flag', ['run', '--endpont', 'x'], /unknown option '--endpont' \(did you mean --endpoint\?\)/],
    ['endpoint without scheme', ['run', '--endpoint', 'collector:4317'], /--endpoint 'collector:4317' has scheme 'collector'; use http:\/\//],
    ['endpoint not a URL', ['run', '--endpoint', 'not a url'], /--endpoint 'not a url' is not a URL/],
    ['bad protocol', ['run', '--protocol', 'udp'], /--protocol 'udp' is not a supported protocol; use grpc or http\/protobuf/],
    ['bad port', ['run', '--port', '70000'], /--port '70000' is not a valid port; expected an integer from 1 to 65535/],
    ['missing value', ['run', '--pid'], /option '--pid <N>' argument missing/],
    ['unreadable config', ['run', '--config', '/nonexistent.yaml'], /cannot read --config \/nonexistent.yaml: no such file/],
    ['unknown command', ['runn'], /unknown command 'runn' \(did you mean run\?\)/],
    ['no command', [], /missing command: use `headertap run` or `headertap receive`/],
    ['replay of a non-recording', ['run', '--replay', '/etc/hostname'], /--replay file \/etc\/hostname is not a headertap recording/],
    ['bad receiver address', ['receive', '--listen', 'localhost'], /--listen 'localhost' is not HOST:PORT/],
    ['bad receiver format', ['receive', '--format', 'xml'], /--format 'xml' is not one of: pretty, jsonl/],
    ['bad buffer size', ['run', '--buffer-bytes', '12 parsecs'], /--buffer-bytes '12 parsecs' is not a valid size; expected bytes from 65536 to \d+, optionally with a unit \(KiB, MiB, GiB\), e.g. 64MiB/],
    ['zero buffer records', ['run', '--buffer-records', '0'], /--buffer-records '0' is not a valid record count; expected an integer from 1 to 10000000/],
    ['ring buffer not a power of two', ['run', '--ringbuf-kb', '100'], /--ringbuf-kb '100' is not a power of two; e.g. 64, 128, 256/],
    ['bad shutdown timeout', ['run', '--shutdown-timeout', '-1'], /--shutdown-timeout '-1' is not a valid number of seconds; expected an integer from 1 to 3600/],
    ['endpoint with another scheme', ['run', '--endpoint', 'grpc://collector:4317'], /--endpoint 'grpc:\/\/collector:4317' has scheme 'grpc'; use http:\/\/ \(plaintext\) or https:\/\/ \(TLS\)/],
    ['empty --comm', ['run', '--comm', ''], /^headertap: --comm '' has an empty process name; give one, e\.g\. --comm nginx, or leave --comm out to capture all traffic$/],
    ['empty --port', ['run', '--port', ''], /^headertap: --port '' has an empty port; give one, e\.g\. --port 8080, or leave --port out/],
    ['empty item in --port', ['run', '--port', '80,,81'], /^headertap: --port '80,,81' has an empty port/],
    ['empty --pid', ['run', '--pid', ' '], /^headertap: --pid ' ' has an empty process id/],
    ['empty --cgroup', ['run', '--cgroup', ''], /^headertap: --cgroup '' has an empty cgroup path/],
    ['--record in a missing directory', ['run', '--record', '/nonexistent/dir/x.bin'], /^headertap: cannot write --record \/nonexistent\/dir\/x\.bin: its directory \/nonexistent\/dir does not exist; create the directory or choose another path$/],
    ['--record on a directory', ['run', '--record', '/tmp'], /^headertap: cannot write --record \/tmp: is a directory/],
    ['--config that is a device', ['run', '--config', '/dev/zero'], /^headertap: cannot read --config \/dev\/zero: is not a regular file; point --config at a headertap YAML file/],
    ['--hash-key-file that is a device', ['run', '--hash-headers', 'x-a', '--hash-key-file', '/dev/zero'], /^headertap: cannot read --hash-key-file \/dev\/zero: is not a regular file; point it at a file holding/],
    ['--replay of a device', ['run', '--replay', '/dev/zero'], /^headertap: cannot read --replay file \/dev\/zero: not a regular file/],
    ['unwritable spool dir', ['run', '--spool-dir', '/proc/headertap-spool', '--replay', 'test/fixtures/curl-nginx.htrec'], /--spool-dir \/proc\/headertap-spool is not a writable directory \(ENOENT.*\); create it/],
  ];
  for (const [name, args, re] of cases) {
    it(`${name}: one line, exit 2`, () => {
      const r = headertap(args);
      if (args.length === 0) {
        // help goes to stderr first for a bare `headertap`; the last line is the error
        assert.equal(r.code, 2);
        assert.match(r.stderr.trimEnd().split('\n').pop()!, re);
        return;
      }
      assertOneLineError(r, re);
    });
  }

  it('an unknown config key is named with a suggestion', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ht-cli-'));
    const file = path.join(dir, 'c.yaml');
    writeFileSync(file, 'endpoint: http://localhost:4317\nredact-header: x\n');
    assertOneLineError(headertap(['run', '--config', file]), /unknown key 'redact-header' \(did you mean 'redact-headers'\?\)/);
  });

  it('invalid YAML: names the line; a bad value: names the key', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ht-cli-'));
    const broken = path.join(dir, 'broken.yaml');
    writeFileSync(broken, 'endpoint: http://localhost:4317\nport: [80\n');
    assertOneLineError(headertap(['run', '--config', broken]), /--config .*broken\.yaml is not valid YAML at line \d+: /);
    const badValue = path.join(dir, 'bad-value.yaml');
    writeFileSync(badValue, 'buffer-records: lots\n');
    assertOneLineError(headertap(['run', '--config', badValue]), /--config .*bad-value\.yaml: key 'buffer-records' 'lots' is not a valid record count/);
    const notMapping = path.join(dir, 'list.yaml');
    writeFileSync(notMapping, '- a\n- b\n');
    assertOneLineError(headertap(['run', '--config', notMapping]), /must be a mapping of option names to values/);
  });

  it('a config file over 1 MiB is refused by its size, without being read or parsed', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ht-cli-'));
    const file = path.join(dir, 'huge.yaml');
    writeFileSync(file, '');
    truncateSync(file, 200 * 1024 * 1024); // sparse: 200 MB of NULs, no disk used
    assertOneLineError(
      headertap(['run', '--config', file]),
      /^headertap: cannot read --config \S+huge\.yaml: is 209715200 bytes, larger than the 1 MiB allowed; point --config at a headertap YAML file/,
    );
    const big = path.join(dir, 'big.yaml');
    const text = `# ${'x'.repeat(1 << 20)}\nservice-name: s\n`;
    writeFileSync(big, text);
    assertOneLineError(headertap(['run', '--config', big]), new RegExp(`is ${text.length} bytes, larger than the 1 MiB allowed`));
  });

  it('receive --listen on a busy port: only headertap\'s own line, no gRPC log line before it', async () => {
    const blocker = createServer();
    await new Promise<void>((resolve) => blocker.listen(0, '127.0.0.1', resolve));
    const port = (blocker.address() as { port: number }).port;
    try {
      const r = await headertapAsync(['receive', '--listen', `127.0.0.1:${port}`]);
      assertOneLineError(r, new RegExp(`^headertap: cannot listen for OTLP/gRPC on 127\\.0\\.0\\.1:${port}: the address is already in use \\(another receiver or collector\\?\\); stop it or choose another port$`));
      const replay = await headertapAsync(['run', '--replay', 'test/fixtures/curl-nginx.htrec', '--embedded-receiver', '--endpoint', `http://127.0.0.1:${port}`]);
      assertOneLineError(replay, /cannot listen for OTLP\/gRPC on 127\.0\.0\.1:\d+: the address is already in use/);
    } finally {
      blocker.close();
    }
  });

  it('a --spool-dir others can write to is refused before anything starts', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ht-cli-spool-'));
    chmodSync(dir, 0o777);
    assertOneLineError(
      headertap(['run', '--replay', 'test/fixtures/curl-nginx.htrec', '--spool-dir', dir]),
      /--spool-dir \S+: \S+ is writable by group or others \(mode 0777\); another user could plant records in it: chmod go-w \S+, or choose another --spool-dir$/,
    );
  });

  it('--help and --version exit 0', () => {
    const help = headertap(['run', '--help']);
    assert.equal(help.code, 0);
    for (const flag of ['--endpoint', '--protocol', '--console', '--pid', '--comm', '--port', '--capture-headers', '--redact-headers', '--max-header-bytes', '--max-attributes', '--service-name', '--config', '--buffer-records', '--buffer-bytes', '--spool-dir', '--spool-max-bytes', '--shutdown-timeout', '--stats-interval', '--no-self-metrics', '--ringbuf-kb']) {
      assert.ok(help.stdout.includes(flag), `help mentions ${flag}`);
    }
    const v = headertap(['--version']);
    assert.equal(v.code, 0);
    assert.match(v.stdout, /^\d+\.\d+\.\d+/);
  });

  it('without privileges: names the missing capabilities and the fix', (t) => {
    if (process.getuid?.() !== 0) {
      // Already unprivileged: the plain run shows the message.
      assertOneLineError(headertap(['run']), /needs root or the capabilities CAP_BPF, CAP_PERFMON and CAP_SYS_RESOURCE/);
      return;
    }
    // nobody must be able to reach bin/headertap and dist/ (a checkout under /root is not).
    try {
      for (let p = PACKAGE_ROOT; p !== '/'; p = path.dirname(p)) {
        const mode = spawnSync('stat', ['-c', '%a', p], { encoding: 'utf8' }).stdout.trim();
        if (!(parseInt(mode, 8) & 0o001)) throw new Error(`${p} is not searchable by other users`);
      }
    } catch (err) {
      process.stderr.write(`# SKIP ${t.name}: ${(err as Error).message}\n`);
      t.skip((err as Error).message);
      return;
    }
    const r = headertap(['run'], { uid: 65534, gid: 65534 });
    assertOneLineError(r, /needs root or the capabilities CAP_BPF, CAP_PERFMON and CAP_SYS_RESOURCE \(missing: CAP_BPF, CAP_PERFMON, CAP_SYS_RESOURCE\); run it as root/);
  });
});

describe('privilege and kernel checks', () => {
  it('accepts CAP_SYS_ADMIN, or CAP_BPF+CAP_PERFMON+CAP_SYS_RESOURCE, and names what is missing', () => {
    const bit = (n: number) => 1n << BigInt(n);
    assert.doesNotThrow(() => checkPrivileges(bit(21)));
    assert.doesNotThrow(() => checkPrivileges(bit(39) | bit(38) | bit(24)));
    assert.throws(() => checkPrivileges(bit(39)), (e: unknown) => e instanceof EnvironmentError && /missing: CAP_PERFMON, CAP_SYS_RESOURCE\)/.test(e.message));
  });

  it('names a kernel too old for the BPF ring buffer', () => {
    assert.throws(
      () => checkKernel('/sys/kernel/btf/vmlinux', '5.4.0-150-generic'),
      (e: unknown) => e instanceof EnvironmentError && /^Linux 5\.4\.0-150-generic is too old; headertap needs Linux 5\.8 or newer/.test(e.message),
    );
    assert.throws(() => checkKernel('/sys/kernel/btf/vmlinux', '4.19.0'), EnvironmentError);
    assert.doesNotThrow(() => checkKernel(process.execPath, '5.8.0'));
    assert.doesNotThrow(() => checkKernel(process.execPath, '6.1.0-13-amd64'));
  });

  it('explains a kernel without BTF', () => {
    assert.throws(
      () => checkKernel('/nonexistent/vmlinux'),
      (e: unknown) => e instanceof EnvironmentError && /no BTF \(\/nonexistent\/vmlinux is missing\); headertap needs a kernel built with CONFIG_DEBUG_INFO_BTF=y/.test(e.message),
    );
  });
});
