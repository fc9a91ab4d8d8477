/**
 * The Go program reader (src/source/go-binary.ts) on ELF files built here
 * byte by byte: build info in both formats, function tables in the Go 1.16
 * and 1.18 layouts, return instructions found by decoding (not by byte
 * search), and the verdicts on programs headertap does not probe. Real
 * programs built by the Go toolchain are read in
 * test/component/go-binary.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { entryProbe, goMinor, inspectGo, pclnFunctions, x86Returns, type GoFile } from '../../src/source/go-binary';

const BASE = 0x400000;
const EM_X86_64 = 62;
const EM_AARCH64 = 183;

function fileOf(b: Buffer): GoFile {
  return { size: b.length, read: (off, len) => b.subarray(off, Math.min(b.length, off + len)) };
}

function u64(v: number): Buffer {
  const b = Buffer.alloc(8);
  b.writeBigUInt64LE(BigInt(v));
  return b;
}

function u32(v: number): Buffer {
  const b = Buffer.alloc(4);
  b.writeUInt32LE(v >>> 0);
  return b;
}

interface SectionSpec {
  name: string;
  data: Buffer;
}

/**
 * An ELF64 executable: one PT_LOAD mapping the whole file at BASE, the given
 * sections one after another from 0x1000 (16-byte aligned), then the
 * section name table and the section headers. Returns the file and each
 * section's virtual address.
 */
function elf(machine: number, sections: SectionSpec[]): { file: Buffer; addr: Record<string, number> } {
  const addr: Record<string, number> = {};
  const offs: number[] = [];
  let at = 0x1000;
  for (const s of sections) {
    offs.push(at);
    addr[s.name] = BASE + at;
    at += s.data.length;
    at = (at + 15) & ~15;
  }
  const names = Buffer.from(['', ...sections.map((s) => s.name), '.shstrtab'].join('\0') + '\0', 'latin1');
  const shstrOff = at;
  const shoff = (shstrOff + names.length + 7) & ~7;
  const shnum = sections.length + 2;
  const total = shoff + 64 * shnum;
  const file = Buffer.alloc(total);
  // ELF header
  file.writeUInt32BE(0x7f454c46, 0);
  file[4] = 2; // 64-bit
  file[5] = 1; // little-endian
  file[6] = 1;
  file.writeUInt16LE(2, 16); // ET_EXEC
  file.writeUInt16LE(machine, 18);
  file.writeUInt32LE(1, 20);
  file.writeBigUInt64LE(BigInt(BASE + 0x1000), 24);
  file.writeBigUInt64LE(64n, 32); // phoff
  file.writeBigUInt64LE(BigInt(shoff), 40);
  file.writeUInt16LE(64, 52);
  file.writeUInt16LE(56, 54);
  file.writeUInt16LE(1, 56);
  file.writeUInt16LE(64, 58);
  file.writeUInt16LE(shnum, 60);
  file.writeUInt16LE(shnum - 1, 62);
  // PT_LOAD covering the file
  file.writeUInt32LE(1, 64);
  file.writeUInt32LE(5, 68);
  file.writeBigUInt64LE(0n, 72);
  file.writeBigUInt64LE(BigInt(BASE), 80);
  file.writeBigUInt64LE(BigInt(BASE), 88);
  file.writeBigUInt64LE(BigInt(total), 96);
  file.writeBigUInt64LE(BigInt(total), 104);
  sections.forEach((s, i) => s.data.copy(file, offs[i]));
  names.copy(file, shstrOff);
  let nameAt = 1;
  const header = (i: number, nameOff: number, type: number, a: number, off: number, size: number) => {
    const o = shoff + 64 * i;
    file.writeUInt32LE(nameOff, o);
    file.writeUInt32LE(type, o + 4);
    file.writeBigUInt64LE(BigInt(a), o + 16);
    file.writeBigUInt64LE(BigInt(off), o + 24);
    file.writeBigUInt64LE(BigInt(size), o + 32);
  };
  sections.forEach((s, i) => {
    header(i + 1, nameAt, 1, addr[s.name], offs[i], s.data.length);
    nameAt += s.name.length + 1;
  });
  header(shnum - 1, nameAt, 3, 0, shstrOff, names.length);
  return { file: file.subarray(0, total), addr };
}

/** Go >= 1.18 build info: the version inline, after a 32-byte header. */
function buildInfoInline(version: string): Buffer {
  const head = Buffer.alloc(32);
  Buffer.from('\xff Go buildinf:', 'latin1').copy(head);
  head[14] = 8;
  head[15] = 2;
  return Buffer.concat([head, Buffer.from([version.length]), Buffer.from(version), Buffer.from([0])]);
}

/**
 * Go <= 1.17 build info: pointers to string headers. `at` is the section's
 * future virtual address; the header and the bytes follow the 32-byte head.
 */
function buildInfoPointers(version: string, at: number): Buffer {
  const head = Buffer.alloc(32);
  Buffer.from('\xff Go buildinf:', 'latin1').copy(head);
  head[14] = 8;
  head[15] = 0;
  head.writeBigUInt64LE(BigInt(at + 32), 16); // -> string header
  head.writeBigUInt64LE(0n, 24);
  return Buffer.concat([head, u64(at + 48), u64(version.length), Buffer.from(version)]);
}

interface Fn {
  name: string;
  code: Buffer;
}

/** .text from functions laid end to end, 32-byte aligned, INT3 between. */
function text(fns: Fn[]): { data: Buffer; offs: number[] } {
  const offs: number[] = [];
  const parts: Buffer[] = [];
  let at = 0;
  for (const f of fns) {
    offs.push(at);
    const padded = Buffer.alloc((f.code.length + 31) & ~31, 0xcc);
    f.code.copy(padded);
    parts.push(padded);
    at += padded.length;
  }
  return { data: Buffer.concat(parts), offs };
}

/** A function table in the Go 1.18 layout (pcln offsets relative to textStart). */
function pcln118(fns: Fn[], textStart: number, offs: number[], textLen: number): Buffer {
  const nfunc = fns.length;
  const names = Buffer.from(fns.map((f) => f.name).join('\0') + '\0', 'latin1');
  const headerLen = 8 + 8 * 8;
  const funcnameOff = headerLen;
  const pclnOff = (funcnameOff + names.length + 7) & ~7;
  const functabLen = (nfunc + 1) * 8;
  const funcsAt = functabLen; // relative to pclnOff
  const head = Buffer.concat([
    u32(0xfffffff0),
    Buffer.from([0, 0, 1, 8]),
    u64(nfunc),
    u64(0),
    u64(textStart),
    u64(funcnameOff),
    u64(0),
    u64(0),
    u64(0),
    u64(pclnOff),
  ]);
  const functab: Buffer[] = [];
  const funcs: Buffer[] = [];
  let nameoff = 0;
  fns.forEach((f, i) => {
    functab.push(u32(offs[i]), u32(funcsAt + i * 8));
    funcs.push(u32(offs[i]), u32(nameoff));
    nameoff += f.name.length + 1;
  });
  functab.push(u32(textLen), u32(0));
  const pad = Buffer.alloc(pclnOff - headerLen - names.length);
  return Buffer.concat([head, names, pad, ...functab, ...funcs]);
}

/** The same in the Go 1.16 layout (absolute entry addresses, word-sized functab). */
function pcln116(fns: Fn[], textStart: number, offs: number[], textLen: number): Buffer {
  const nfunc = fns.length;
  const names = Buffer.from(fns.map((f) => f.name).join('\0') + '\0', 'latin1');
  const headerLen = 8 + 7 * 8;
  const funcnameOff = headerLen;
  const pclnOff = (funcnameOff + names.length + 7) & ~7;
  const funcsAt = (nfunc + 1) * 16;
  const head = Buffer.concat([
    u32(0xfffffffa),
    Buffer.from([0, 0, 1, 8]),
    u64(nfunc),
    u64(0),
    u64(funcnameOff),
    u64(0),
    u64(0),
    u64(0),
    u64(pclnOff),
  ]);
  const functab: Buffer[] = [];
  const funcs: Buffer[] = [];
  let nameoff = 0;
  fns.forEach((f, i) => {
    functab.push(u64(textStart + offs[i]), u64(funcsAt + i * 16));
    funcs.push(u64(textStart + offs[i]), u32(nameoff), u32(0));
    nameoff += f.name.length + 1;
  });
  functab.push(u64(textStart + textLen), u64(0));
  const pad = Buffer.alloc(pclnOff - headerLen - names.length);
  return Buffer.concat([head, names, pad, ...functab, ...funcs]);
}

// mov eax, 0xc3 (a C3 byte that is not a RET); ret; call +0; ret 8
const WRITE_CODE = Buffer.from([0xb8, 0xc3, 0x00, 0x00, 0x00, 0xc3, 0xe8, 0x00, 0x00, 0x00, 0x00, 0xc2, 0x08, 0x00]);
// Go's prologue (cmp rsp, [r14+0x10]; jbe +2), then nop; ret; xor eax,eax; ret
const READ_CODE = Buffer.from([0x49, 0x3b, 0x66, 0x10, 0x0f, 0x86, 0x02, 0, 0, 0, 0x90, 0xc3, 0x31, 0xc0, 0xc3]);
const CLOSE_CODE = Buffer.from([0xc3]);

const TLS_FNS: Fn[] = [
  { name: 'runtime.main', code: Buffer.from([0xc3]) },
  { name: 'crypto/tls.(*Conn).Write', code: WRITE_CODE },
  { name: 'crypto/tls.(*Conn).Read', code: READ_CODE },
  { name: 'crypto/tls.(*Conn).Close', code: CLOSE_CODE },
  { name: 'crypto/tls.(*Conn).Read.func1', code: Buffer.from([0xc3]) },
];

/** A whole Go program: .text, .gopclntab, .go.buildinfo. */
function goProgram(opts: { machine?: number; version?: string; layout?: '1.16' | '1.18'; fns?: Fn[]; pointerBuildInfo?: boolean }) {
  const fns = opts.fns ?? TLS_FNS;
  const t = text(fns);
  const textStart = BASE + 0x1000; // .text is the first section
  const pcln = (opts.layout ?? '1.18') === '1.18' ? pcln118(fns, textStart, t.offs, t.data.length) : pcln116(fns, textStart, t.offs, t.data.length);
  // .go.buildinfo is laid out last: its address is known once the others are placed.
  const probe = elf(opts.machine ?? EM_X86_64, [
    { name: '.text', data: t.data },
    { name: '.gopclntab', data: pcln },
    { name: '.go.buildinfo', data: Buffer.alloc(128) },
  ]);
  const version = opts.version ?? 'go1.19.8';
  const info = opts.pointerBuildInfo ? buildInfoPointers(version, probe.addr['.go.buildinfo']) : buildInfoInline(version);
  const out = elf(opts.machine ?? EM_X86_64, [
    { name: '.text', data: t.data },
    { name: '.gopclntab', data: pcln },
    { name: '.go.buildinfo', data: Buffer.concat([info, Buffer.alloc(128 - info.length)]) },
  ]);
  return { file: out.file, fileOffsetOf: (i: number) => 0x1000 + t.offs[i] };
}

describe('x86Returns', () => {
  it('finds RET and RET imm16 by decoding, not a C3 byte inside another instruction', () => {
    assert.deepEqual(x86Returns(WRITE_CODE, 0x1000), [0x1005, 0x100b]);
  });

  it('reports nothing for code without returns', () => {
    assert.deepEqual(x86Returns(Buffer.from([0x90, 0xe8, 0, 0, 0, 0]), 0), []);
  });
});

describe('entryProbe', () => {
  it("puts the entry probe on the stack check's conditional jump (emulated, not single-stepped)", () => {
    // cmp rsp, [r14+0x10]; jbe +0x3c2; sub rsp, 0x68
    assert.equal(entryProbe(Buffer.from([0x49, 0x3b, 0x66, 0x10, 0x0f, 0x86, 0xc2, 0x03, 0, 0, 0x48, 0x83, 0xec, 0x68])), 4);
    // lea r12, [rsp-0x68]; cmp r12, [r14+0x10]; jbe ...
    assert.equal(entryProbe(Buffer.from([0x4c, 0x8d, 0x64, 0x24, 0x98, 0x4d, 0x3b, 0x66, 0x10, 0x0f, 0x86, 0x64, 0x07, 0, 0])), 9);
  });

  it('stays on the first byte when anything but a compare comes before a jump (no stack check)', () => {
    // mov rbx, rax; jbe ...: a register changes before the jump
    assert.equal(entryProbe(Buffer.from([0x48, 0x89, 0xc3, 0x76, 0x10])), 0);
    assert.equal(entryProbe(Buffer.from([0xc3])), 0);
    assert.equal(entryProbe(Buffer.alloc(0)), 0);
  });
});

describe('goMinor', () => {
  it('reads release, pre-release and development versions', () => {
    assert.equal(goMinor('go1.19.8'), 19);
    assert.equal(goMinor('go1.22rc1'), 22);
    assert.equal(goMinor('devel go1.23-abcdef Tue'), 23);
    assert.equal(goMinor('gccgo'), undefined);
    assert.equal(goMinor(undefined), undefined);
  });
});

describe('pclnFunctions', () => {
  it('finds functions by exact name in the 1.18 layout (not Read.func1 for Read)', () => {
    const t = text(TLS_FNS);
    const tab = pcln118(TLS_FNS, 0x401000, t.offs, t.data.length);
    const { version, found } = pclnFunctions(tab, 0, ['crypto/tls.(*Conn).Read', 'crypto/tls.(*Conn).Write']);
    assert.equal(version, '1.18');
    assert.deepEqual(found.get('crypto/tls.(*Conn).Read'), {
      name: 'crypto/tls.(*Conn).Read',
      entry: 0x401000 + t.offs[2],
      end: 0x401000 + t.offs[3],
    });
    assert.equal(found.get('crypto/tls.(*Conn).Write')?.entry, 0x401000 + t.offs[1]);
  });

  it('uses .text for the start of code when the table says 0 (position-independent programs)', () => {
    const t = text(TLS_FNS);
    const tab = pcln118(TLS_FNS, 0, t.offs, t.data.length);
    const { found } = pclnFunctions(tab, 0x555000, ['crypto/tls.(*Conn).Write']);
    assert.equal(found.get('crypto/tls.(*Conn).Write')?.entry, 0x555000 + t.offs[1]);
  });

  it('reads the 1.16 layout, and the last function ends where the table says', () => {
    const t = text(TLS_FNS);
    const tab = pcln116(TLS_FNS, 0x401000, t.offs, t.data.length);
    const { version, found } = pclnFunctions(tab, 0, ['crypto/tls.(*Conn).Read.func1']);
    assert.equal(version, '1.16');
    assert.equal(found.get('crypto/tls.(*Conn).Read.func1')?.end, 0x401000 + t.data.length);
  });
});

describe('inspectGo', () => {
  it('gives file offsets of the entries and of every return of Write and Read (Go 1.19, amd64)', () => {
    const p = goProgram({});
    const r = inspectGo(fileOf(p.file));
    assert.equal(r.kind, 'probes');
    if (r.kind !== 'probes') return;
    assert.equal(r.goVersion, 'go1.19.8');
    assert.equal(r.arch, 'amd64');
    assert.deepEqual(r.probes.write, { entry: p.fileOffsetOf(1), atCheck: false, rets: [p.fileOffsetOf(1) + 5, p.fileOffsetOf(1) + 11] });
    assert.deepEqual(r.probes.read, { entry: p.fileOffsetOf(2) + 4, atCheck: true, rets: [p.fileOffsetOf(2) + 11, p.fileOffsetOf(2) + 14] });
    assert.equal(r.probes.close, p.fileOffsetOf(3));
  });

  it('reads the older pointer-format build info (Go 1.17) and probes it', () => {
    const r = inspectGo(fileOf(goProgram({ version: 'go1.17.13', layout: '1.16', pointerBuildInfo: true }).file));
    assert.equal(r.kind, 'probes');
    assert.equal(r.kind === 'probes' && r.goVersion, 'go1.17.13');
  });

  it('reports Go before 1.17 as unsupported (stack ABI): never probed', () => {
    const r = inspectGo(fileOf(goProgram({ version: 'go1.16.15', layout: '1.16', pointerBuildInfo: true }).file));
    assert.deepEqual(r, { kind: 'unsupported', goVersion: 'go1.16.15', arch: 'amd64', reason: 'Go before 1.17 passes arguments on the stack' });
  });

  it('reports other architectures as unsupported, with the version', () => {
    const r = inspectGo(fileOf(goProgram({ machine: EM_AARCH64 }).file));
    assert.deepEqual(r, { kind: 'unsupported', goVersion: 'go1.19.8', arch: 'arm64', reason: 'architecture arm64 (only amd64 is probed)' });
  });

  it('says no-tls for a Go program without crypto/tls', () => {
    const r = inspectGo(fileOf(goProgram({ fns: [{ name: 'main.main', code: Buffer.from([0xc3]) }] }).file));
    assert.deepEqual(r, { kind: 'no-tls', goVersion: 'go1.19.8', arch: 'amd64' });
  });

  it('says not-go for other ELF programs and for files that are not ELF', () => {
    assert.deepEqual(inspectGo(fileOf(elf(EM_X86_64, [{ name: '.text', data: Buffer.from([0xc3]) }]).file)), { kind: 'not-go' });
    assert.deepEqual(inspectGo(fileOf(Buffer.from('#!/bin/sh\necho hi\n'))), { kind: 'not-go' });
    assert.deepEqual(inspectGo(fileOf(Buffer.alloc(0))), { kind: 'not-go' });
  });

  it('never throws on a cut-off file: every prefix gives a verdict', () => {
    const whole = goProgram({}).file;
    for (let len = 0; len < whole.length; len += 61) {
      const r = inspectGo(fileOf(whole.subarray(0, len)));
      assert.ok(['not-go', 'unsupported', 'no-tls', 'probes'].includes(r.kind));
    }
  });
});
