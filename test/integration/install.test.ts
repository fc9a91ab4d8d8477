/**
 * The install path: `npm pack` gives a package that installs with
 * `npm install -g` and runs `headertap run` (real eBPF) on a host without
 * the build toolchain. The package is packed from this (already built) tree,
 * installed into a fresh --prefix, and run in a private mount namespace
 * where clang, llc, llvm-strip, bpftool, cc, gcc, ld and make, and the
 * shared libelf, zlib and libbpf, are hidden (/dev/null bound over them), with
 * a PATH that holds only node, npm, sh and the installed bin/.
 *
 * Not covered: a different distribution or kernel than this one; installing
 * with no npm registry or cache (dependencies come from npm's cache here).
 */
import assert from 'node:assert/strict';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, realpathSync, rmSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { PACKAGE_ROOT } from '../../src/common/paths';
import { attr, byPid, requireEbpf, run, startAgent, startNginx } from '../helpers/integration';
import { startOtlpSink } from '../helpers/otlp-sink';

/** What the build needs and a target host may lack. */
const BUILD_TOOLS = ['clang', 'llc', 'llvm-strip', 'bpftool', 'cc', 'gcc', 'ld', 'make'];
const SHARED_LIBS = ['libelf.so.1', 'libz.so.1', 'libbpf.so.1'];
const LIB_DIRS = ['/usr/lib/x86_64-linux-gnu', '/lib/x86_64-linux-gnu', '/usr/lib/aarch64-linux-gnu', '/lib/aarch64-linux-gnu', '/usr/lib64', '/lib64', '/usr/lib'];
const SYSTEM_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin';

/** Real files behind the build tools and shared libraries on this machine. */
function filesToHide(): string[] {
  const found = new Set<string>();
  for (const tool of BUILD_TOOLS) {
    for (const dir of SYSTEM_PATH.split(':')) {
      const p = path.join(dir, tool);
      if (existsSync(p)) found.add(realpathSync(p));
    }
  }
  for (const lib of SHARED_LIBS) {
    for (const dir of LIB_DIRS) {
      const p = path.join(dir, lib);
      if (existsSync(p)) found.add(realpathSync(p));
    }
  }
  return [...found];
}

function which(cmd: string): string {
  for (const dir of SYSTEM_PATH.split(':')) {
    const p = path.join(dir, cmd);
    if (existsSync(p)) return p;
  }
  throw new Error(`${cmd} not found in ${SYSTEM_PATH}`);
}

/**
 * A command prefix that runs the rest in a private mount namespace with
 * every file in `hide` replaced by /dev/null.
 */
function withoutToolchain(dir: string, hide: string[]): string[] {
  const script = path.join(dir, 'no-toolchain.sh');
  const mount = which('mount');
  writeFileSync(
    script,
    `#!/bin/sh\nset -e\n${hide.map((f) => `${mount} --bind /dev/null '${f}'`).join('\n')}\nexec "$@"\n`,
  );
  chmodSync(script, 0o755);
  return [which('unshare'), '--mount', '--propagation', 'private', '/bin/sh', script];
}

/** Every file under dir, relative, sorted. */
function listTree(dir: string, prefix = ''): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const rel = path.join(prefix, e.name);
    if (e.isDirectory()) out.push(...listTree(path.join(dir, e.name), rel));
    else out.push(rel);
  }
  return out.sort();
}

describe('install path: npm pack, npm install -g, headertap run without a toolchain', () => {
  it('packs exactly the agent, the static loader and the protos, installs them, and captures a curl (real eBPF)', async (t) => {
    if (!requireEbpf(t)) return;
    const work = mkdtempSync(path.join(tmpdir(), 'ht-install-'));
    t.after(() => rmSync(work, { recursive: true, force: true }));

    // npm pack (the tree is built already; `prepack` rebuilds for a user's own npm pack).
    const pack = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], { timeoutMs: 120_000, cwd: PACKAGE_ROOT });
    assert.equal(pack.code, 0, pack.stderr);
    const [packed] = JSON.parse(pack.stdout) as { filename: string; files: { path: string }[] }[];
    const files = packed.files.map((f) => f.path).sort();
    for (const needed of ['bin/headertap', 'bpf/.output/headertap-loader', 'dist/src/cli/main.js', 'dist/src/otel/spans.js', 'package.json', 'proto/opentelemetry/proto/collector/logs/v1/logs_service.proto', 'proto/opentelemetry/proto/collector/trace/v1/trace_service.proto']) {
      assert.ok(files.includes(needed), `the package has ${needed}`);
    }
    const unwanted = files.filter((f) => /^(src|test|dist\/test|scripts|otel-config|node_modules)\/|\.ts$|\.map$|\.c$|\.h$|\.bpf\.o$|tsbuildinfo/.test(f));
    assert.deepEqual(unwanted, [], 'no sources, tests, build intermediates or maps');
    const tarball = path.join(work, packed.filename);

    // Nothing runs at install time: no install scripts, no native addon to compile.
    const manifest = JSON.parse((await run('tar', ['-xOzf', tarball, 'package/package.json'])).stdout) as {
      version: string;
      scripts?: Record<string, string>;
      gypfile?: boolean;
    };
    for (const hook of ['preinstall', 'install', 'postinstall', 'prepare']) assert.equal(manifest.scripts?.[hook], undefined, `no ${hook} script`);
    assert.ok(!files.includes('binding.gyp') && !manifest.gypfile, 'no native addon');

    // A host without the toolchain: PATH with node and npm only, tools and libraries hidden.
    const tools = path.join(work, 'tools');
    mkdirSync(tools);
    symlinkSync(process.execPath, path.join(tools, 'node'));
    symlinkSync(realpathSync(which('npm')), path.join(tools, 'npm'));
    symlinkSync('/bin/sh', path.join(tools, 'sh')); // npm runs dependencies' scripts with sh
    const prefix = path.join(work, 'prefix');
    const hidden = filesToHide();
    assert.ok(hidden.some((f) => /libelf/.test(f)), 'libelf is installed here, so hiding it proves the loader does not need it');
    const bare = withoutToolchain(work, hidden);
    const env = { ...process.env, PATH: `${path.join(prefix, 'bin')}:${tools}` };

    const check = await run(bare[0], [...bare.slice(1), '/bin/sh', '-c', `for t in ${BUILD_TOOLS.join(' ')}; do command -v $t && exit 1; done; ${which('wc')} -c < '${hidden.find((f) => /libelf/.test(f))}'`], { env });
    assert.equal(check.code, 0, `no build tool reachable: ${check.stdout}${check.stderr}`);
    assert.equal(check.stdout.trim(), '0', 'libelf reads as empty inside the namespace');

    const install = await run(bare[0], [...bare.slice(1), 'npm', 'install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', tarball], {
      env,
      timeoutMs: 300_000,
    });
    assert.equal(install.code, 0, `npm install -g failed:\n${install.stdout}\n${install.stderr}`);
    const installed = path.join(prefix, 'lib', 'node_modules', 'headertap');
    assert.ok(statSync(path.join(prefix, 'bin', 'headertap')).isFile(), 'bin/headertap is linked into the prefix');
    const tree = listTree(installed).filter((f) => !f.startsWith('node_modules/'));
    assert.deepEqual(tree, files, 'installed exactly what was packed, nothing built at install time');

    // headertap run from the installed package, real eBPF, curl to a local server.
    const nginx = await startNginx(t);
    const sink = await startOtlpSink();
    t.after(() => sink.stop());
    const agent = await startAgent(t, ['--endpoint', sink.endpoint, '--port', String(nginx.port)], env, [...bare, 'headertap']);
    const curl = await run('curl', ['-sS', '-H', 'X-Installed: from-tgz', `http://127.0.0.1:${nginx.port}/installed`]);
    assert.equal(curl.code, 0, curl.stderr);
    await sink.waitFor((rs) => byPid(rs, curl.pid).length === 1, 15000, "curl's record");
    const end = await agent.stop();
    assert.equal(end.code, 0, `installed agent exit status; stderr:\n${end.stderr}`);
    assert.match(end.stderr, /^headertap stopped: exchanges 2 /m);
    const [rec] = byPid(sink.records(), curl.pid);
    assert.equal(attr(rec, 'url.path'), '/installed');
    assert.equal(attr(rec, 'headertap.role'), 'client');
    assert.deepEqual(attr(rec, 'http.request.header.x-installed'), ['from-tgz']);
    assert.equal(attr(rec, 'http.response.status_code'), 200);
    assert.equal(rec.scope?.version, manifest.version, 'the installed package reads its own package.json');
  });
});
