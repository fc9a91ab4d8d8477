/**
 * Which files get TLS probes: the system libssl, libssl mapped by running
 * processes, programs exporting OpenSSL's functions; each file once.
 * Driven with a stand-in /proc and a stand-in loader.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { CONSTANTS as C } from '../../src/source/layout';
import { TlsTargets, libsslInMaps, tlsFunctionNames, type TlsFs } from '../../src/source/tls-targets';
import type { AttachEvent } from '../../src/source/types';
import type { GoInspection, GoTlsProbes } from '../../src/source/go-binary';
import type { Log } from '../../src/common/log';

const ALL = C.HT_TLS_FN_SSL_WRITE | C.HT_TLS_FN_SSL_READ | C.HT_TLS_FN_SSL_WRITE_EX | C.HT_TLS_FN_SSL_READ_EX | C.HT_TLS_FN_SSL_FREE;

const MAPS_CURL = `
55d0c0a00000-55d0c0a0a000 r--p 00000000 08:01 1311 /usr/bin/curl
7f1e2c000000-7f1e2c05e000 r-xp 0001c000 08:01 2048 /usr/lib/x86_64-linux-gnu/libssl.so.3
7f1e2d000000-7f1e2d200000 r-xp 00000000 08:01 2049 /usr/lib/x86_64-linux-gnu/libcrypto.so.3
7f1e2e000000-7f1e2e010000 r-xp 00000000 08:01 2050 /usr/lib/x86_64-linux-gnu/libssl3.so
7f1e2f000000-7f1e2f010000 r-xp 00000000 00:00 0 [vdso]
`;

interface World {
  fs: TlsFs;
  /** file -> dev:inode */
  keys: Record<string, string>;
  maps: Record<number, string>;
  exes: Record<number, string>;
  dirs: Record<string, string[]>;
}

function world(): World {
  const w: World = {
    keys: {},
    maps: {},
    exes: {},
    dirs: {},
    fs: {
      pids: () => Object.keys(w.maps).map(Number),
      maps: (pid) => w.maps[pid],
      fileKey: (f) => w.keys[f],
      exe: (pid) => w.exes[pid],
      list: (d) => w.dirs[d] ?? [],
    },
  };
  return w;
}

function loader(symbols: Record<string, number>) {
  const calls: string[] = [];
  return {
    calls,
    attach: (file: string): Promise<AttachEvent> => {
      calls.push(file);
      const bits = symbols[file];
      if (bits === undefined) return Promise.resolve({ kind: 'attach', requestId: 0, err: -2, attached: 0 });
      if (bits < 0) return Promise.resolve({ kind: 'attach', requestId: 0, err: bits, attached: 0 });
      return Promise.resolve({ kind: 'attach', requestId: 0, err: 0, attached: bits });
    },
  };
}

function log() {
  const lines: string[] = [];
  const l: Log = { info: (s) => lines.push(`info ${s}`), warn: (s) => lines.push(`warn ${s}`), debug: () => {} };
  return { l, lines };
}

describe('libsslInMaps', () => {
  it("finds OpenSSL's libssl and nothing else (not NSS's libssl3.so, not libcrypto)", () => {
    assert.deepEqual(libsslInMaps(MAPS_CURL), ['/usr/lib/x86_64-linux-gnu/libssl.so.3']);
  });

  it('keeps paths with spaces and skips deleted files', () => {
    const maps = [
      '7f00-7f10 r-xp 00000000 08:01 77 /opt/my app/lib/libssl.so.1.1',
      '7f20-7f30 r-xp 00000000 08:01 78 /usr/lib/libssl.so.3 (deleted)',
    ].join('\n');
    assert.deepEqual(libsslInMaps(maps), ['/opt/my app/lib/libssl.so.1.1']);
  });
});

describe('tlsFunctionNames', () => {
  it('names the probed functions from the loader bits', () => {
    assert.deepEqual(tlsFunctionNames(C.HT_TLS_FN_SSL_READ | C.HT_TLS_FN_SSL_FREE), ['SSL_read', 'SSL_free']);
  });
});

describe('TlsTargets', () => {
  it('probes the system libssl, mapped libraries and programs, each file once by device and inode', async () => {
    const w = world();
    w.dirs['/usr/lib/x86_64-linux-gnu'] = ['libssl.so.3', 'libssl.so', 'libcrypto.so.3', 'libssl3.so'];
    // /lib is /usr/lib on merged-/usr systems: same file, same key.
    w.dirs['/lib/x86_64-linux-gnu'] = ['libssl.so.3'];
    w.keys['/usr/lib/x86_64-linux-gnu/libssl.so.3'] = '8:1:2048';
    w.keys['/usr/lib/x86_64-linux-gnu/libssl.so'] = '8:1:2048';
    w.keys['/lib/x86_64-linux-gnu/libssl.so.3'] = '8:1:2048';
    w.maps[100] = MAPS_CURL;
    w.exes[100] = '/usr/bin/curl';
    w.keys['/proc/100/root/usr/lib/x86_64-linux-gnu/libssl.so.3'] = '8:1:2048';
    w.keys['/proc/100/exe'] = '8:1:1311';
    w.maps[200] = '';
    w.exes[200] = '/usr/bin/node';
    w.keys['/proc/200/exe'] = '8:1:4000';
    w.maps[201] = '';
    w.exes[201] = '/usr/bin/node';
    w.keys['/proc/201/exe'] = '8:1:4000';
    const ld = loader({ '/usr/lib/x86_64-linux-gnu/libssl.so.3': ALL, '/proc/200/exe': ALL });
    const { l } = log();
    const tls = new TlsTargets({ attach: ld.attach, log: l, fs: w.fs, libraryDirs: ['/usr/lib/x86_64-linux-gnu', '/lib/x86_64-linux-gnu'] });
    await tls.scanAll();
    // libssl once (three names, one inode), curl checked (no TLS functions: silent), node once (two processes).
    assert.deepEqual(ld.calls, ['/usr/lib/x86_64-linux-gnu/libssl.so.3', '/proc/100/exe', '/proc/200/exe']);
    assert.deepEqual(
      tls.attached.map((t) => [t.path, t.kind]),
      [
        ['/usr/lib/x86_64-linux-gnu/libssl.so.3', 'library'],
        ['/usr/bin/node', 'program'],
      ],
    );
    assert.equal(tls.failures, 0);
  });

  it('after exec: probes the new program at once and its libraries once loaded, announcing it', async () => {
    const w = world();
    const ld = loader({ '/proc/300/exe': ALL, '/proc/300/root/opt/app/libssl.so.3': ALL });
    const { l, lines } = log();
    const tls = new TlsTargets({ attach: ld.attach, log: l, fs: w.fs, libraryDirs: [], execRescanMs: [5] });
    await tls.scanAll();
    w.exes[300] = '/opt/app/server';
    w.keys['/proc/300/exe'] = '8:1:9000';
    w.maps[300] = '';
    tls.onExec(300);
    await tls.settled();
    assert.deepEqual(ld.calls, ['/proc/300/exe']);
    // The dynamic linker (or dlopen) maps libssl a moment later.
    w.maps[300] = '7f00-7f10 r-xp 00000000 08:01 9001 /opt/app/libssl.so.3';
    w.keys['/proc/300/root/opt/app/libssl.so.3'] = '8:1:9001';
    await new Promise((r) => setTimeout(r, 30));
    await tls.settled();
    assert.deepEqual(ld.calls, ['/proc/300/exe', '/proc/300/root/opt/app/libssl.so.3']);
    assert.deepEqual(
      tls.attached.map((t) => t.path),
      ['/opt/app/server', '/opt/app/libssl.so.3'],
    );
    assert.ok(lines.some((s) => s.startsWith('info TLS: probes on /opt/app/libssl.so.3')), lines.join('\n'));
    tls.stop();
  });

  it('looks at a busy process again only after the rescan interval', async () => {
    const w = world();
    w.maps[400] = '';
    const ld = loader({ '/proc/400/root/usr/lib/libssl.so.3': ALL });
    const { l } = log();
    const tls = new TlsTargets({ attach: ld.attach, log: l, fs: w.fs, libraryDirs: [], rescanIntervalMs: 1000 });
    await tls.scanAll(); // pid 400 scanned now (nothing yet)
    w.maps[400] = '7f00-7f10 r-xp 00000000 08:01 55 /usr/lib/libssl.so.3';
    w.keys['/proc/400/root/usr/lib/libssl.so.3'] = '8:1:55';
    const t0 = Date.now();
    tls.onActivity(400, t0 + 10);
    await tls.settled();
    assert.deepEqual(ld.calls, [], 'too soon: not looked at again');
    tls.onActivity(400, t0 + 5000);
    await tls.settled();
    assert.deepEqual(ld.calls, ['/proc/400/root/usr/lib/libssl.so.3']);
  });

  it('warns about files it cannot probe, naming the error, and counts them', async () => {
    const w = world();
    w.dirs['/lib'] = ['libssl.so.3'];
    w.keys['/lib/libssl.so.3'] = '8:1:1';
    const ld = loader({ '/lib/libssl.so.3': -13 });
    const { l, lines } = log();
    const tls = new TlsTargets({ attach: ld.attach, log: l, fs: w.fs, libraryDirs: ['/lib'] });
    await tls.scanAll();
    assert.equal(tls.failures, 1);
    assert.deepEqual(lines, ['warn TLS: cannot probe /lib/libssl.so.3: EACCES (errno 13); its HTTPS traffic is not captured']);
  });

  it('keeps going when the loader fails a request', async () => {
    const w = world();
    w.dirs['/lib'] = ['libssl.so.3', 'libssl.so.1.1'];
    w.keys['/lib/libssl.so.3'] = '8:1:1';
    w.keys['/lib/libssl.so.1.1'] = '8:1:2';
    let n = 0;
    const tls = new TlsTargets({
      attach: () => (n++ === 0 ? Promise.reject(new Error('loader exited')) : Promise.resolve({ kind: 'attach', requestId: 0, err: 0, attached: ALL })),
      log: log().l,
      fs: w.fs,
      libraryDirs: ['/lib'],
    });
    await tls.scanAll();
    assert.equal(tls.failures, 1);
    assert.equal(tls.attached.length, 1);
  });
  it('a libssl the loader probed when a process opened it: listed, logged with the hold, and never asked for again', async () => {
    const w = world();
    const l = loader({ '/proc/300/root/opt/app/lib/libssl.so.3': ALL });
    const { l: lg, lines } = log();
    const tls = new TlsTargets({ attach: l.attach, log: lg, fs: w.fs, libraryDirs: [] });
    await tls.scanAll();
    tls.onLearned({ kind: 'tls_learned', pid: 300, err: 0, attached: ALL, stopped: true, holdNs: 12_300_000, fileKey: '8:1:9000', path: '/opt/app/lib/libssl.so.3' });
    assert.deepEqual(tls.attached, [{ path: '/opt/app/lib/libssl.so.3', kind: 'library', functions: tlsFunctionNames(ALL) }]);
    assert.match(lines.join('\n'), /info TLS: probes on \/opt\/app\/lib\/libssl\.so\.3 \(SSL_write.*\), opened by process 300; process 300 was held 12\.3 ms for it/);
    // The process's maps name it later: same file, no second attach.
    w.maps[300] = '7f00-7f10 r-xp 00000000 08:01 9000 /opt/app/lib/libssl.so.3';
    w.keys['/proc/300/root/opt/app/lib/libssl.so.3'] = '8:1:9000';
    tls.onActivity(300);
    await tls.settled();
    assert.deepEqual(l.calls, []);
    // A failure is counted and warned about; ENOENT (no TLS functions) is not.
    tls.onLearned({ kind: 'tls_learned', pid: 301, err: -13, attached: 0, stopped: true, holdNs: 1e6, fileKey: '8:1:9001', path: '/x/libssl.so' });
    tls.onLearned({ kind: 'tls_learned', pid: 302, err: -2, attached: 0, stopped: false, holdNs: 1e6, fileKey: '8:1:9002', path: '/y/libssl.so' });
    assert.equal(tls.failures, 1);
    assert.match(lines.join('\n'), /warn TLS: cannot probe \/x\/libssl\.so: EACCES/);
  });

  it("a scan of a short-lived process racing the loader's report: the file is told once, by the report, even when the process is gone", async () => {
    // The process's socket activity makes the agent read its maps before the
    // loader's report arrives; the process then exits before the scan's
    // attach is answered (the loader cannot stat /proc/PID/root/... any more).
    const w = world();
    const { l: lg, lines } = log();
    const answers: ((ev: AttachEvent) => void)[] = [];
    const tls = new TlsTargets({
      attach: () => new Promise((resolve) => answers.push(resolve)),
      log: lg,
      fs: w.fs,
      libraryDirs: [],
    });
    await tls.scanAll();
    const lib = '/tmp/late/lib9/libssl.so.3';
    w.maps[400] = `7f00-7f10 r-xp 00000000 08:01 9100 ${lib}`;
    w.keys[`/proc/400/root${lib}`] = '8:1:9100';
    tls.onActivity(400);
    await new Promise((r) => setImmediate(r));
    assert.equal(answers.length, 1, 'the scan asked the loader');
    tls.onLearned({ kind: 'tls_learned', pid: 400, err: 0, attached: ALL, stopped: true, holdNs: 900_000, fileKey: '8:1:9100', path: lib });
    delete w.keys[`/proc/400/root${lib}`]; // the process exited
    delete w.maps[400];
    answers[0]({ kind: 'attach', requestId: 0, err: -2, attached: 0 });
    await tls.settled();
    const told = lines.filter((s) => s.includes(lib));
    assert.equal(told.length, 1, told.join('\n'));
    assert.match(told[0], /info TLS: probes on \/tmp\/late\/lib9\/libssl\.so\.3 \(SSL_write.*\), opened by process 400; process 400 was held 0\.9 ms/);
    assert.deepEqual(tls.attached.map((t) => t.path), [lib]);

    // The same race the other way: the scan's answer first (process gone, so
    // no answer about the file), then the report: still told once.
    const lib2 = '/tmp/late/lib10/libssl.so.3';
    w.maps[401] = `7f00-7f10 r-xp 00000000 08:01 9101 ${lib2}`;
    w.keys[`/proc/401/root${lib2}`] = '8:1:9101';
    tls.onActivity(401);
    await new Promise((r) => setImmediate(r));
    delete w.keys[`/proc/401/root${lib2}`];
    answers[1]({ kind: 'attach', requestId: 0, err: -2, attached: 0 });
    await tls.settled();
    tls.onLearned({ kind: 'tls_learned', pid: 401, err: 0, attached: ALL, stopped: true, holdNs: 1_000_000, fileKey: '8:1:9101', path: lib2 });
    assert.equal(lines.filter((s) => s.includes(lib2)).length, 1);
    assert.deepEqual(tls.attached.map((t) => t.path), [lib, lib2]);
  });

  describe('Go programs', () => {
    const PROBES: GoTlsProbes = {
      write: { entry: 0x1004, atCheck: true, rets: [0x1010, 0x1020] },
      read: { entry: 0x2004, atCheck: true, rets: [0x2030] },
      close: 0x3000,
    };
    const GO_FNS = C.HT_TLS_FN_GO_WRITE | C.HT_TLS_FN_GO_READ | C.HT_TLS_FN_GO_CLOSE;

    function goWorld(programs: Record<string, GoInspection>) {
      const w = world();
      let pid = 500;
      for (const exe of Object.keys(programs)) {
        w.maps[pid] = '';
        w.exes[pid] = exe;
        w.keys[`/proc/${pid}/exe`] = `8:1:${pid}`;
        pid++;
      }
      const byFile = (file: string) => programs[w.exes[Number(/^\/proc\/(\d+)\/exe$/.exec(file)![1])]];
      const goCalls: [string, GoTlsProbes][] = [];
      return { w, byFile, goCalls };
    }

    it('gives a supported Go program the crypto/tls probes at the offsets found, not the OpenSSL ones', async () => {
      const { w, byFile, goCalls } = goWorld({ '/srv/api': { kind: 'probes', goVersion: 'go1.19.8', arch: 'amd64', probes: PROBES } });
      const ld = loader({});
      const { l } = log();
      const tls = new TlsTargets({
        attach: ld.attach,
        attachGo: (file, probes) => {
          goCalls.push([file, probes]);
          return Promise.resolve({ kind: 'attach', requestId: 0, err: 0, attached: GO_FNS });
        },
        inspectGo: byFile,
        log: l,
        fs: w.fs,
        libraryDirs: [],
      });
      await tls.scanAll();
      assert.deepEqual(goCalls, [['/proc/500/exe', PROBES]]);
      assert.deepEqual(ld.calls, [], 'no OpenSSL attach for a Go program');
      assert.deepEqual(tls.attached, [
        {
          path: '/srv/api',
          kind: 'go',
          goVersion: 'go1.19.8',
          functions: ['crypto/tls.(*Conn).Write', 'crypto/tls.(*Conn).Read', 'crypto/tls.(*Conn).Close'],
        },
      ]);
    });

    it('counts and reports once a Go program it does not probe (older Go, other architecture)', async () => {
      const { w, byFile } = goWorld({
        '/srv/old': { kind: 'unsupported', goVersion: 'go1.16.15', arch: 'amd64', reason: 'Go before 1.17 passes arguments on the stack' },
        '/srv/arm': { kind: 'unsupported', goVersion: 'go1.19.8', arch: 'arm64', reason: 'architecture arm64 (only amd64 is probed)' },
      });
      w.maps[600] = '';
      w.exes[600] = '/srv/old';
      w.keys['/proc/600/exe'] = '8:1:500'; // a second process of the same file
      const ld = loader({});
      const { l, lines } = log();
      let goAttach = 0;
      const tls = new TlsTargets({
        attach: ld.attach,
        attachGo: () => (goAttach++, Promise.resolve({ kind: 'attach', requestId: 0, err: 0, attached: GO_FNS })),
        inspectGo: (f) => byFile(f) ?? byFile('/proc/500/exe'),
        log: l,
        fs: w.fs,
        libraryDirs: [],
      });
      await tls.scanAll();
      tls.onExec(600);
      await tls.settled();
      tls.stop();
      assert.equal(goAttach, 0);
      assert.deepEqual(tls.goSkipped.map((s) => [s.path, s.goVersion, s.arch]), [
        ['/srv/old', 'go1.16.15', 'amd64'],
        ['/srv/arm', 'go1.19.8', 'arm64'],
      ]);
      assert.deepEqual(lines, [
        'warn TLS: Go program /srv/old (go1.16.15, amd64) is not probed: Go before 1.17 passes arguments on the stack; its HTTPS traffic is not captured',
        'warn TLS: Go program /srv/arm (go1.19.8, arm64) is not probed: architecture arm64 (only amd64 is probed); its HTTPS traffic is not captured',
      ]);
    });

    it('leaves Go programs without crypto/tls alone, and checks other programs for OpenSSL as before', async () => {
      const { w, byFile } = goWorld({ '/srv/plain': { kind: 'no-tls', goVersion: 'go1.19.8', arch: 'amd64' }, '/usr/bin/node': { kind: 'not-go' } });
      const ld = loader({ '/proc/501/exe': ALL });
      const tls = new TlsTargets({
        attach: ld.attach,
        attachGo: () => Promise.reject(new Error('not expected')),
        inspectGo: byFile,
        log: log().l,
        fs: w.fs,
        libraryDirs: [],
      });
      await tls.scanAll();
      assert.deepEqual(ld.calls, ['/proc/501/exe']);
      assert.deepEqual(tls.attached.map((t) => [t.path, t.kind]), [['/usr/bin/node', 'program']]);
      assert.equal(tls.failures, 0);
    });
  });
});
