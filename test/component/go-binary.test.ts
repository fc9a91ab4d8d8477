/**
 * The Go program reader on real programs built here with the system Go
 * (Debian golang-go): with symbols, stripped (-s -w: only the function table
 * is left), and cross-built for arm64. The offsets are checked against
 * binutils' own reading of the symbol table and disassembly.
 *
 * Not covered: Go releases other than the installed one (the hand-built
 * files of test/unit/go-binary.test.ts cover the older table and build-info
 * layouts).
 */
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import { inspectGoFile, type GoInspection } from '../../src/source/go-binary';
import { GO, GO_HTTPS, buildGo, goEnv, goUnavailable } from '../helpers/go';

/** Go's amd64 linker maps file offset 0 at this address (non-PIE executables, the default). */
const GO_AMD64_BASE = 0x400000;

function skipWithoutGo(t: TestContext): boolean {
  const reason = goUnavailable();
  if (!reason) return false;
  process.stderr.write(`# SKIP ${t.name}: ${reason}\n`);
  t.skip(reason);
  return true;
}

/**
 * Addresses of a function's entry (nm), of its RET instructions and of the
 * stack check's jump among its first three instructions (objdump).
 */
function binutils(file: string, fn: string): { entry: number; check: number; rets: number[] } {
  const nm = spawnSync('nm', [file], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const line = nm.stdout.split('\n').find((l) => l.endsWith(` T ${fn}`));
  assert.ok(line, `nm lists ${fn}`);
  const od = spawnSync('objdump', ['-d', '--no-show-raw-insn', `--disassemble=${fn}`, file], { encoding: 'utf8', maxBuffer: 64 << 20 });
  const rets = [...od.stdout.matchAll(/^\s+([0-9a-f]+):\s+ret\b/gm)].map((m) => parseInt(m[1], 16));
  const first = [...od.stdout.matchAll(/^\s+([0-9a-f]+):\s+(\S+)/gm)].slice(0, 3);
  const jbe = first.find((m) => m[2] === 'jbe');
  assert.ok(jbe, `${fn} starts with Go's stack check`);
  return { entry: parseInt(line.split(' ')[0], 16), check: parseInt(jbe[1], 16), rets };
}

describe('inspectGoFile on programs built by the Go toolchain', () => {
  let dir = '';
  let plain = '';
  let stripped = '';
  let plainResult: GoInspection;

  before(() => {
    if (goUnavailable()) return;
    dir = mkdtempSync(path.join(tmpdir(), 'ht-gobin-'));
    plain = buildGo(dir, 'https-plain', GO_HTTPS);
    stripped = buildGo(dir, 'https-stripped', GO_HTTPS, { stripped: true });
    plainResult = inspectGoFile(plain);
  });
  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('finds Write, Read and Close (probed at their stack check) and every return of Write and Read, as binutils reads them', (t) => {
    if (skipWithoutGo(t)) return;
    const r = plainResult;
    assert.equal(r.kind, 'probes');
    if (r.kind !== 'probes') return;
    const version = spawnSync(GO!, ['env', 'GOVERSION'], { env: goEnv(), encoding: 'utf8' }).stdout.trim();
    assert.equal(r.goVersion, version);
    assert.equal(r.arch, 'amd64');
    const write = binutils(plain, 'crypto/tls.(*Conn).Write');
    const read = binutils(plain, 'crypto/tls.(*Conn).Read');
    const close = binutils(plain, 'crypto/tls.(*Conn).Close');
    const toFile = (a: number) => a - GO_AMD64_BASE;
    assert.ok(write.rets.length >= 1 && read.rets.length >= 1, 'objdump found returns');
    assert.ok(write.check > write.entry && write.check - write.entry <= 12);
    assert.deepEqual(r.probes.write, { entry: toFile(write.check), atCheck: true, rets: write.rets.map(toFile) });
    assert.deepEqual(r.probes.read, { entry: toFile(read.check), atCheck: true, rets: read.rets.map(toFile) });
    assert.equal(r.probes.close, toFile(close.check));
    const hs = binutils(plain, 'crypto/tls.(*Conn).handshakeContext');
    assert.deepEqual(r.probes.handshake, { entry: toFile(hs.check), atCheck: true, rets: hs.rets.map(toFile) });
  });

  it('reads a stripped program (-ldflags "-s -w") from its function table alone: the same offsets', (t) => {
    if (skipWithoutGo(t)) return;
    const nm = spawnSync('nm', [stripped], { encoding: 'utf8' });
    assert.match(nm.stderr, /no symbols/, 'the stripped program has no symbol table');
    assert.deepEqual(inspectGoFile(stripped), plainResult);
  });

  it('reports a Go program for arm64 as unsupported, with its version', (t) => {
    if (skipWithoutGo(t)) return;
    const out = path.join(dir, 'https-arm64');
    const r = spawnSync(GO!, ['build', '-o', out, '.'], {
      cwd: path.join(dir, 'https-plain-src'),
      env: { ...goEnv(), GOARCH: 'arm64' },
      encoding: 'utf8',
    });
    assert.equal(r.status, 0, r.stderr);
    const got = inspectGoFile(out);
    assert.equal(got.kind, 'unsupported');
    assert.equal(got.kind === 'unsupported' && got.arch, 'arm64');
  });

  it('says not-go for the programs around it (node, a shell) and for missing files', (t) => {
    if (skipWithoutGo(t)) return;
    assert.deepEqual(inspectGoFile(process.execPath), { kind: 'not-go' });
    assert.deepEqual(inspectGoFile('/bin/sh'), { kind: 'not-go' });
    assert.deepEqual(inspectGoFile(path.join(dir, 'missing')), { kind: 'not-go' });
  });
});
