/**
 * Live configuration without the kernel: the `rules:` key's shape and
 * errors, the Reloader's all-or-nothing switch and its messages and counts,
 * and the file watch (editors that rename over the file, SIGHUP's reload
 * without a change).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, renameSync, writeFileSync, symlinkSync, mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { UsageError } from '../../src/common/errors';
import type { Log } from '../../src/common/log';
import { resolveRunOptions, RUN_OPTIONS, type RunOptions } from '../../src/cli/options';
import { Reloader, rulesDigest, watchConfig, type LivePart } from '../../src/cli/reload';

function configFile(text: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'ht-reload-'));
  const file = path.join(dir, 'headertap.yaml');
  writeFileSync(file, text);
  return file;
}

/** Writes like an editor: a temporary file renamed over the config. */
function replace(file: string, text: string): void {
  const tmp = `${file}.tmp-${process.hrtime.bigint()}`;
  writeFileSync(tmp, text);
  renameSync(tmp, file);
}

function throwsUsage(fn: () => unknown, re: RegExp) {
  assert.throws(fn, (e: unknown) => e instanceof UsageError && re.test(e.message), re.source);
}

function logLines(): Log & { lines: string[] } {
  const lines: string[] = [];
  return { lines, info: (s) => lines.push(s), warn: (s) => lines.push(`warning: ${s}`), debug: () => {} };
}

describe('config: rules per workload (rules:)', () => {
  it('reads match and header lists into scoped rules', () => {
    const o = resolveRunOptions(
      {},
      configFile(`
hash-headers: x-user-id
rules:
  - match: { service-name: payments }
    exclude-headers: []
    capture-headers: [x-tenant-id, host]
  - match: { executable: [nginx, "envoy*"], port: 8443, cgroup: /sys/fs/cgroup/unified/system.slice }
    redact-headers: x-internal-*
`),
    );
    assert.deepEqual(o.rules, [
      { match: { serviceNames: ['payments'] }, exclude: [], capture: ['x-tenant-id', 'host'] },
      // a directory under the cgroup2 mount is taken as /proc/PID/cgroup shows it, when the mount is that one
      {
        match: { executables: ['nginx', 'envoy*'], ports: [8443], cgroups: [o.rules[1].match.cgroups![0]] },
        redact: ['x-internal-*'],
      },
    ]);
    assert.match(o.rules[1].match.cgroups![0], /^\/(sys\/fs\/cgroup\/unified\/)?system\.slice$/);
    assert.deepEqual(resolveRunOptions({}).rules, []);
  });

  it('names the key path of every mistake', () => {
    const bad = (yaml: string, re: RegExp) => throwsUsage(() => resolveRunOptions({}, configFile(yaml)), re);
    bad('rules:\n  - match: {service-name: a}\n    captur-headers: x\n', /has an unknown key 'rules\[0\]\.captur-headers' \(did you mean 'capture-headers'\?\)/);
    bad('rules:\n  - match: {servce-name: a}\n    capture-headers: x\n', /unknown key 'rules\[0\]\.match\.servce-name' \(did you mean 'service-name'\?\)/);
    bad('rules:\n  - match: {port: 99999}\n    capture-headers: x\n', /key 'rules\[0\]\.match\.port' '99999' is not a valid port/);
    bad('rules:\n  - match: {port: 80}\n    capture-headers: x\n  - match: {port: 81}\n    hash-headers: "x id"\n', /key 'rules\[1\]\.hash-headers' 'x id' is not a header-name glob/);
    bad('rules:\n  - capture-headers: x\n', /key 'rules\[0\]': needs a 'match'/);
    bad('rules:\n  - match: {}\n    capture-headers: x\n', /key 'rules\[0\]\.match': names no workload/);
    bad('rules:\n  - match: {port: 80}\n', /key 'rules\[0\]': sets no header list/);
    bad('rules:\n  - match: {cgroup: relative/path}\n    capture-headers: x\n', /key 'rules\[0\]\.match\.cgroup' 'relative\/path' is not a cgroup path/);
    bad('rules: {match: x}\n', /key 'rules': expected a list of rules/);
  });

  it('reads routes: patterns per workload, checked when read', () => {
    const ok = resolveRunOptions({}, configFile('routes:\n  - match: {service-name: shop}\n    patterns: ["/api/items/{id}", /static/**]\n  - patterns: /health\nmax-routes: 20\n'));
    assert.deepEqual(ok.routes, [{ match: { serviceNames: ['shop'] }, patterns: ['/api/items/{id}', '/static/**'] }, { patterns: ['/health'] }]);
    assert.equal(ok.maxRoutes, 20);
    const bad = (text: string, re: RegExp) => assert.throws(() => resolveRunOptions({}, configFile(text)), re);
    bad('routes:\n  - patterns: [api/items]\n', /key 'routes\[0\]\.patterns': 'api\/items' does not start with '\/'/);
    bad('routes:\n  - patterns: ["/a/**/b"]\n', /must come last/);
    bad('routes:\n  - match: {service-name: x}\n', /key 'routes\[0\]': needs 'patterns'/);
    bad('routes:\n  - patern: [/a]\n', /unknown key 'routes\[0\]\.patern' \(did you mean 'patterns'\?\)/);
    bad('max-routes: 0\n', /key 'max-routes' '0' is not a valid route count/);
  });

  it('follows routes: and max-routes live', async () => {
    const file = configFile('port: 80\n');
    const { r, log, committed } = reloader(file);
    replace(file, 'port: 80\nroutes:\n  - patterns:\n      - /a/{x}\nmax-routes: 7\n');
    await r.reload('file change');
    assert.deepEqual(committed, ['ports [80]', 'capture ["*"]', 'routes [{"patterns":["/a/{x}"]}] max 7']);
    assert.match(log.lines[0], /routes, max-routes changed/);
  });

  it('follows metric-headers live, lower-cased, names only', async () => {
    const file = configFile('port: 80\n');
    const { r, committed } = reloader(file);
    replace(file, 'port: 80\nmetric-headers: [X-Tenant, x-api-client]\n');
    await r.reload('file change');
    assert.deepEqual(committed, ['ports [80]', 'capture ["*"]', 'metric-headers ["x-tenant","x-api-client"]']);
    assert.throws(() => resolveRunOptions({ metricHeaders: 'x-*' }), /--metric-headers 'x-\*' is not a header name/);
    assert.throws(() => resolveRunOptions({ metricHeaders: 'a,b,c,d,e,f,g,h,i' }), /at most 8/);
  });

  it('is a config file key only: no --rules flag', () => {
    assert.equal(RUN_OPTIONS.find((s) => s.key === 'rules')?.flag, undefined);
  });
});

/** Parts that record what they were asked to do. */
function recordingParts(failKernel?: () => boolean) {
  const committed: string[] = [];
  const parts: LivePart[] = [
    {
      keys: ['pid', 'comm', 'port', 'cgroup'],
      prepare: (n) => n.port,
      commit: async (ports) => {
        if (failKernel?.()) throw new UsageError('the loader refused');
        committed.push(`ports ${JSON.stringify(ports)}`);
      },
    },
    {
      keys: ['capture-headers', 'exclude-headers', 'capture-request-headers', 'capture-response-headers', 'exclude-request-headers', 'exclude-response-headers', 'redact-headers', 'hash-headers', 'hash-key-file', 'rules', 'max-header-bytes'],
      prepare: (n) => n.captureHeaders,
      commit: (c) => void committed.push(`capture ${JSON.stringify(c)}`),
    },
    {
      keys: ['metric-headers'],
      prepare: (n) => n.metricHeaders,
      commit: (names) => {
        if ((names as string[]).length) committed.push(`metric-headers ${JSON.stringify(names)}`);
      },
    },
    {
      keys: ['routes', 'max-routes'],
      prepare: (n) => ({ routes: n.routes, max: n.maxRoutes }),
      commit: (r) => {
        const { routes, max } = r as { routes: unknown[]; max: number };
        if (routes.length || max !== 500) committed.push(`routes ${JSON.stringify(routes)} max ${max}`);
      },
    },
  ];
  return { parts, committed };
}

function reloader(file: string, flags: Record<string, unknown> = {}, failKernel?: () => boolean) {
  const initial: RunOptions = resolveRunOptions(flags, file);
  const log = logLines();
  const { parts, committed } = recordingParts(failKernel);
  const r = new Reloader({ configFile: file, flags, initial, digest: rulesDigest(initial), parts, digestOf: (n) => rulesDigest(n), log });
  return { r, log, committed };
}

describe('Reloader', () => {
  it('puts a changed file in force, says what changed, counts it', async () => {
    const file = configFile('capture-headers: [x-a]\nport: 80\n');
    const { r, log, committed } = reloader(file);
    const before = r.digest;
    replace(file, 'capture-headers: [x-b]\nport: 81\n');
    await r.reload('file change');
    assert.deepEqual(committed, ['ports [81]', 'capture ["x-b"]']);
    assert.deepEqual([r.reloads, r.failures], [1, 0]);
    assert.notEqual(r.digest, before);
    assert.equal(log.lines.length, 1);
    assert.match(log.lines[0], new RegExp(`^config reloaded \\(file change\\) from .*: port, capture-headers changed; rules ${before} -> ${r.digest}$`));
  });

  it('keeps everything in force when the file does not parse or validate, with one line naming the problem', async () => {
    const file = configFile('capture-headers: [x-a]\n');
    const { r, log, committed } = reloader(file);
    const digest = r.digest;
    replace(file, 'capture-headers: [x-b]\nport: [oops]\n');
    await r.reload('file change');
    await r.reload('file change'); // the same broken bytes again (another event): said once
    replace(file, 'capture-headers: [x-b\n');
    await r.reload('file change');
    assert.deepEqual(committed, []);
    assert.deepEqual([r.reloads, r.failures], [0, 2]);
    assert.equal(r.digest, digest);
    assert.match(log.lines[0], new RegExp(`^warning: config reload failed, the rules in force stay \\(rules ${digest}\\): --config .*: key 'port' 'oops' is not a valid port`));
    assert.match(log.lines[1], /is not valid YAML at line \d+/);
  });

  it('changes nothing when the part that may fail (the kernel) refuses', async () => {
    const file = configFile('port: 80\ncapture-headers: [x-a]\n');
    const { r, committed } = reloader(file, {}, () => true);
    replace(file, 'port: 81\ncapture-headers: [x-b]\n');
    await r.reload('file change');
    assert.deepEqual(committed, [], 'the header rules were not switched either');
    assert.deepEqual([r.reloads, r.failures], [0, 1]);
    assert.deepEqual(r.current.port, [80]);
  });

  it('SIGHUP reloads an unchanged file; a file event with the same bytes does nothing', async () => {
    const file = configFile('port: 80\n');
    const { r, log, committed } = reloader(file);
    await r.reload('file change');
    assert.deepEqual([r.reloads, log.lines.length], [0, 0]);
    await r.reload('SIGHUP');
    assert.deepEqual(committed, ['ports [80]', 'capture ["*"]'], 'every part asked again (e.g. the hash key file is read anew)');
    assert.equal(r.reloads, 1);
    assert.match(log.lines[0], /^config reloaded \(SIGHUP\) from .*: nothing changed; rules [0-9a-f]{8}$/);
  });

  it('reports keys that need a restart and keys a flag overrides; the rest applies', async () => {
    const file = configFile('endpoint: http://a:4317\nport: 80\ncapture-headers: [x-a]\n');
    const { r, log, committed } = reloader(file, { port: ['9090'] });
    replace(file, 'endpoint: http://b:4317\nringbuf-kb: 64\nport: 81\ncapture-headers: [x-b]\n');
    await r.reload('file change');
    assert.deepEqual(committed, ['ports [9090]', 'capture ["x-b"]']);
    assert.match(
      log.lines[0],
      /: capture-headers changed; rules \S+ -> \S+; endpoint, ringbuf-kb changed but need a restart \(still as at start\); port is given as a flag, which wins over the file$/,
    );
    assert.equal(r.current.endpoint, 'http://a:4317', 'still the running endpoint');
    // The next reload still knows the endpoint differs from the running one.
    await r.reload('SIGHUP');
    assert.match(log.lines[1], /nothing changed; .*endpoint, ringbuf-kb changed but need a restart/);
  });

  it('runs one reload at a time: a request during one runs after it, once', async () => {
    const file = configFile('port: 80\n');
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const initial = resolveRunOptions({}, file);
    const order: string[] = [];
    const parts: LivePart[] = [
      {
        keys: RUN_OPTIONS.filter((s) => s.live).map((s) => s.key),
        prepare: (n) => n.port[0],
        commit: async (p) => {
          order.push(`start ${String(p)}`);
          if (p === 81) await gate;
          order.push(`end ${String(p)}`);
        },
      },
    ];
    const r = new Reloader({ configFile: file, flags: {}, initial, digest: 'x', parts, digestOf: (n) => rulesDigest(n), log: logLines() });
    replace(file, 'port: 81\n');
    const first = r.reload('file change');
    replace(file, 'port: 82\n');
    const second = r.reload('file change');
    const third = r.reload('file change');
    release();
    await Promise.all([first, second, third]);
    assert.deepEqual(order, ['start 81', 'end 81', 'start 82', 'end 82']);
    assert.equal(r.reloads, 2);
  });

  it('refuses to start when a live key has no part to apply it (adding one means adding both)', () => {
    const file = configFile('');
    const initial = resolveRunOptions({}, file);
    assert.throws(
      () => new Reloader({ configFile: file, flags: {}, initial, digest: 'x', parts: recordingParts().parts.slice(1), digestOf: () => 'x', log: logLines() }),
      /live keys without a LivePart to apply them: pid, comm, port, cgroup/,
    );
  });

  it('gives the same digest for the same rules and another when any live value or the hash key differs', () => {
    const a = resolveRunOptions({ captureHeaders: 'x-a' });
    assert.equal(rulesDigest(a), rulesDigest(resolveRunOptions({ captureHeaders: 'x-a', endpoint: 'http://elsewhere:4317' })));
    assert.notEqual(rulesDigest(a), rulesDigest(resolveRunOptions({ captureHeaders: 'x-b' })));
    assert.notEqual(rulesDigest(a, Buffer.from('k'.repeat(16))), rulesDigest(a, Buffer.from('j'.repeat(16))));
    assert.match(rulesDigest(a), /^[0-9a-f]{8}$/);
  });
});

describe('watchConfig', () => {
  const until = (cond: () => boolean) =>
    new Promise<void>((resolve, reject) => {
      const deadline = setTimeout(() => reject(new Error('no change seen')), 5000);
      const tick = setInterval(() => {
        if (!cond()) return;
        clearInterval(tick);
        clearTimeout(deadline);
        resolve();
      }, 10);
    });

  it('sees a file replaced by rename and one written in place, once per save, and ignores other files', async () => {
    const file = configFile('a: 1\n');
    let calls = 0;
    const w = watchConfig(file, () => calls++, logLines());
    try {
      replace(file, 'a: 2\n');
      await until(() => calls === 1);
      writeFileSync(file, 'a: 3\n');
      await until(() => calls === 2);
      writeFileSync(path.join(path.dirname(file), 'other.log'), 'x');
      await new Promise((r) => setTimeout(r, 300));
      assert.equal(calls, 2, 'another file in the directory is not a change');
    } finally {
      w.close();
    }
  });

  it('follows a config that is a symlink into another directory (and a ConfigMap-style ..data swap)', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ht-reload-link-'));
    mkdirSync(path.join(dir, 'real'));
    writeFileSync(path.join(dir, 'real', 'x.yaml'), 'a: 1\n');
    const link = path.join(dir, 'headertap.yaml');
    symlinkSync(path.join(dir, 'real', 'x.yaml'), link);
    let calls = 0;
    const w = watchConfig(link, () => calls++, logLines());
    try {
      replace(path.join(dir, 'real', 'x.yaml'), 'a: 2\n');
      await until(() => calls === 1);
      symlinkSync(path.join(dir, 'real'), path.join(dir, '..data_tmp'));
      renameSync(path.join(dir, '..data_tmp'), path.join(dir, '..data'));
      await until(() => calls === 2);
    } finally {
      w.close();
    }
  });
});
