import { closeSync, fstatSync, openSync, readSync } from 'node:fs';
import type * as Iced from 'iced-x86';

/**
 * The x86 decoder (a WebAssembly module), loaded on the first Go program
 * that has crypto/tls, not with the agent: start-up time
 * (test/bench/startup.ts).
 */
let iced: typeof Iced | undefined;
function x86(): typeof Iced {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (iced ??= require('iced-x86') as typeof Iced);
}

/**
 * Finds where to put headertap's Go TLS uprobes in a Go program, from the
 * file alone: the Go version (from the build info, `.go.buildinfo`), the
 * entry of crypto/tls.(*Conn).Write, Read and Close (from the function table,
 * `.gopclntab`, which `-ldflags "-s -w"` keeps), and every return
 * instruction of Write and Read (found by decoding their machine code).
 * Results are return-instruction probes, not uretprobes: a uretprobe
 * rewrites the return address on the stack, and Go moves goroutine stacks.
 *
 * Supported: Go >= 1.17 on x86-64 (the register ABI: receiver in RAX, the
 * buffer's pointer and length in RBX and RCX, the goroutine in R14). Other
 * Go programs are recognised and reported as unsupported, never probed.
 */

/** One file region as read from the binary. */
export interface GoFile {
  /** `length` bytes at `offset` (fewer at the end of the file). */
  read(offset: number, length: number): Buffer;
  size: number;
}

/** Probe offsets in the file (what a uprobe is given), not virtual addresses. */
export interface GoFunctionProbe {
  /**
   * Where the entry probe goes: the stack check's conditional jump when only
   * compares precede it (see entryProbe), else the function's first byte.
   */
  entry: number;
  /** The entry probe is on the stack check's jump (the probe can tell a restart after stack growth). */
  atCheck: boolean;
  /** File offsets of every return instruction of the function. */
  rets: number[];
}

export interface GoTlsProbes {
  write: GoFunctionProbe;
  read: GoFunctionProbe;
  /** Entry of crypto/tls.(*Conn).Close (ends the session), when the linker kept it. */
  close?: number;
  /**
   * crypto/tls.(*Conn).handshakeContext (Go >= 1.17; what Handshake,
   * HandshakeContext, Read and Write all run): its syscalls join the Conn to
   * its socket before the first Read, which may find the first request
   * already read (and decrypted) by the handshake and make no syscall.
   */
  handshake?: GoFunctionProbe;
}

export type GoInspection =
  /** Not a Go program (no Go build info, no Go function table), or not a readable ELF file. */
  | { kind: 'not-go' }
  /** A Go program headertap does not probe: an older ABI, another architecture. */
  | { kind: 'unsupported'; goVersion: string; arch: string; reason: string }
  /** A supported Go program that does not use crypto/tls (the linker dropped it). */
  | { kind: 'no-tls'; goVersion: string; arch: string }
  | { kind: 'probes'; goVersion: string; arch: string; probes: GoTlsProbes };

/** The oldest Go with the register ABI on amd64 (crypto/tls arguments in registers). */
export const GO_MIN_MINOR = 17;

const FN_WRITE = 'crypto/tls.(*Conn).Write';
const FN_READ = 'crypto/tls.(*Conn).Read';
const FN_CLOSE = 'crypto/tls.(*Conn).Close';
const FN_HANDSHAKE = 'crypto/tls.(*Conn).handshakeContext';

const EM_X86_64 = 62;
const MACHINES: Record<number, string> = { 3: '386', 40: 'arm', 62: 'amd64', 183: 'arm64', 243: 'riscv64', 21: 'ppc64', 22: 's390x' };
const BUILDINFO_MAGIC = Buffer.from('\xff Go buildinf:', 'latin1');

interface Section {
  name: string;
  addr: number;
  offset: number;
  size: number;
  type: number;
}

interface Segment {
  vaddr: number;
  offset: number;
  filesz: number;
}

/** The parts of an ELF64 little-endian file a Go lookup needs. */
export interface Elf {
  machine: number;
  sections: Section[];
  segments: Segment[];
}

class NotGo extends Error {}

function u64(b: Buffer, off: number): number {
  const v = b.readBigUInt64LE(off);
  if (v > BigInt(Number.MAX_SAFE_INTEGER)) throw new NotGo('value beyond 2^53');
  return Number(v);
}

/** Section and program headers; throws NotGo for anything but ELF64 LE. */
export function parseElf(f: GoFile): Elf {
  const h = f.read(0, 64);
  if (h.length < 64 || h.readUInt32BE(0) !== 0x7f454c46) throw new NotGo('not ELF');
  if (h[4] !== 2 || h[5] !== 1) throw new NotGo('not ELF64 little-endian');
  const machine = h.readUInt16LE(18);
  const phoff = u64(h, 32);
  const shoff = u64(h, 40);
  const phentsize = h.readUInt16LE(54);
  const phnum = h.readUInt16LE(56);
  const shentsize = h.readUInt16LE(58);
  const shnum = h.readUInt16LE(60);
  const shstrndx = h.readUInt16LE(62);
  const segments: Segment[] = [];
  if (phentsize >= 56 && phnum > 0 && phnum < 4096) {
    const ph = f.read(phoff, phentsize * phnum);
    for (let i = 0; i < phnum && (i + 1) * phentsize <= ph.length; i++) {
      const o = i * phentsize;
      if (ph.readUInt32LE(o) !== 1) continue; // PT_LOAD
      segments.push({ offset: u64(ph, o + 8), vaddr: u64(ph, o + 16), filesz: u64(ph, o + 32) });
    }
  }
  const sections: Section[] = [];
  if (shentsize >= 64 && shnum > 0 && shnum < 65536 && shstrndx < shnum) {
    const sh = f.read(shoff, shentsize * shnum);
    const raw: (Omit<Section, 'name'> & { nameOff: number })[] = [];
    for (let i = 0; i < shnum && (i + 1) * shentsize <= sh.length; i++) {
      const o = i * shentsize;
      raw.push({
        nameOff: sh.readUInt32LE(o),
        type: sh.readUInt32LE(o + 4),
        addr: u64(sh, o + 16),
        offset: u64(sh, o + 24),
        size: u64(sh, o + 32),
      });
    }
    const strtab = raw[shstrndx];
    const names = strtab ? f.read(strtab.offset, Math.min(strtab.size, 1 << 20)) : Buffer.alloc(0);
    for (const s of raw) {
      const end = names.indexOf(0, s.nameOff);
      const name = s.nameOff < names.length ? names.toString('latin1', s.nameOff, end < 0 ? names.length : end) : '';
      sections.push({ name, addr: s.addr, offset: s.offset, size: s.size, type: s.type });
    }
  }
  return { machine, sections, segments };
}

/** File offset of a virtual address, through the loadable segments; undefined outside them. */
export function fileOffset(elf: Elf, vaddr: number): number | undefined {
  for (const s of elf.segments) {
    if (vaddr >= s.vaddr && vaddr < s.vaddr + s.filesz) return s.offset + (vaddr - s.vaddr);
  }
  return undefined;
}

function sectionBytes(f: GoFile, s: Section): Buffer {
  if (s.type === 8) return Buffer.alloc(0); // SHT_NOBITS
  return f.read(s.offset, s.size);
}

function readUvarint(b: Buffer, off: number): [value: number, next: number] {
  let v = 0;
  let shift = 0;
  for (let i = off; i < b.length && shift < 35; i++) {
    v += (b[i] & 0x7f) * 2 ** shift;
    if (!(b[i] & 0x80)) return [v, i + 1];
    shift += 7;
  }
  throw new NotGo('bad varint in build info');
}

/**
 * The Go version from `.go.buildinfo` ("go1.19.8"), or undefined without
 * one. Go >= 1.18 stores the strings inline (flag 2); older Go stores
 * pointers to string headers.
 */
export function goBuildVersion(f: GoFile, elf: Elf): string | undefined {
  const sec = elf.sections.find((s) => s.name === '.go.buildinfo');
  if (!sec) return undefined;
  const b = f.read(sec.offset, Math.min(sec.size, 64 * 1024));
  if (b.length < 32 || !b.subarray(0, 14).equals(BUILDINFO_MAGIC)) return undefined;
  const ptrSize = b[14];
  const flags = b[15];
  if (flags & 2) {
    const [len, at] = readUvarint(b, 32);
    return b.toString('utf8', at, Math.min(b.length, at + len)) || undefined;
  }
  if (ptrSize !== 8 || flags & 1) return undefined; // 32-bit or big-endian: not probed anyway
  const hdrAt = fileOffset(elf, u64(b, 16));
  if (hdrAt === undefined) return undefined;
  const hdr = f.read(hdrAt, 16);
  if (hdr.length < 16) return undefined;
  const strAt = fileOffset(elf, u64(hdr, 0));
  const len = u64(hdr, 8);
  if (strAt === undefined || len > 256) return undefined;
  return f.read(strAt, len).toString('utf8') || undefined;
}

/** Go's minor version from "go1.19.8", "go1.22rc1", "devel go1.23-abc"; undefined when unknown. */
export function goMinor(version: string | undefined): number | undefined {
  const m = version ? /go1\.(\d+)/.exec(version) : null;
  return m ? Number(m[1]) : undefined;
}

const PCLN_MAGIC_116 = 0xfffffffa; // Go 1.16, 1.17
const PCLN_MAGIC_118 = 0xfffffff0; // Go 1.18, 1.19
const PCLN_MAGIC_120 = 0xfffffff1; // Go 1.20 and later
const PCLN_MAGIC_12 = 0xfffffffb; // Go 1.2 to 1.15

function plausiblePclnHeader(b: Buffer, at: number): boolean {
  if (at + 16 > b.length) return false;
  const magic = b.readUInt32LE(at);
  if (magic !== PCLN_MAGIC_116 && magic !== PCLN_MAGIC_118 && magic !== PCLN_MAGIC_120 && magic !== PCLN_MAGIC_12) return false;
  return b[at + 4] === 0 && b[at + 5] === 0 && [1, 2, 4].includes(b[at + 6]) && (b[at + 7] === 4 || b[at + 7] === 8);
}

/**
 * The function table: `.gopclntab` where the linker makes one; else (PIE and
 * externally linked programs put it inside `.data.rel.ro` or `.rodata`) found
 * by its header. Returns the table's bytes and virtual address.
 */
function findPclntab(f: GoFile, elf: Elf): { b: Buffer; addr: number } | undefined {
  const own = elf.sections.find((s) => s.name === '.gopclntab');
  if (own) return { b: sectionBytes(f, own), addr: own.addr };
  for (const name of ['.data.rel.ro', '.rodata']) {
    const s = elf.sections.find((x) => x.name === name);
    if (!s) continue;
    const b = sectionBytes(f, s);
    for (let at = 0; at + 64 <= b.length; at += 8) {
      if (b[at] === 0xf0 || b[at] === 0xf1 || b[at] === 0xfa || b[at] === 0xfb) {
        if (b[at + 1] === 0xff && b[at + 2] === 0xff && b[at + 3] === 0xff && plausiblePclnHeader(b, at)) {
          return { b: b.subarray(at), addr: s.addr + at };
        }
      }
    }
  }
  return undefined;
}

export interface GoFunction {
  name: string;
  /** Virtual addresses: [entry, end). */
  entry: number;
  end: number;
}

/** The table's Go generation: 1.2 (stack ABI only), 1.16, 1.18 or 1.20 layouts. */
export type PclnVersion = '1.2' | '1.16' | '1.18' | '1.20';

/**
 * Looks functions up by name in a Go function table (runtime/symtab.go's
 * layouts). Walks every function once, comparing name bytes without
 * making strings.
 */
export function pclnFunctions(
  b: Buffer,
  textFallback: number,
  wanted: readonly string[],
): { version: PclnVersion; found: Map<string, GoFunction> } {
  if (!plausiblePclnHeader(b, 0)) throw new NotGo('no Go function table');
  const magic = b.readUInt32LE(0);
  const ptrSize = b[7];
  const found = new Map<string, GoFunction>();
  if (magic === PCLN_MAGIC_12) return { version: '1.2', found };
  if (ptrSize !== 8) return { version: magic === PCLN_MAGIC_116 ? '1.16' : '1.18', found };
  const word = (i: number): number => u64(b, 8 + 8 * i);
  const nfunc = word(0);
  let version: PclnVersion;
  let textStart = 0;
  let funcnameOff: number;
  let pclnOff: number;
  if (magic === PCLN_MAGIC_116) {
    version = '1.16';
    funcnameOff = word(2);
    pclnOff = word(6);
  } else {
    version = magic === PCLN_MAGIC_118 ? '1.18' : '1.20';
    // PIE: the field holds 0 in the file and is filled by a relocation: use .text.
    textStart = word(2) || textFallback;
    funcnameOff = word(3);
    pclnOff = word(7);
  }
  const names = wanted.map((n) => Buffer.from(n, 'latin1'));
  const entrySize = version === '1.16' ? 16 : 8;
  if (pclnOff + (nfunc + 1) * entrySize > b.length) throw new NotGo('truncated Go function table');
  const entryAt = (i: number): number =>
    version === '1.16' ? u64(b, pclnOff + i * 16) : textStart + b.readUInt32LE(pclnOff + i * 8);
  const funcAt = (i: number): number =>
    version === '1.16' ? u64(b, pclnOff + i * 16 + 8) : b.readUInt32LE(pclnOff + i * 8 + 4);
  for (let i = 0; i < nfunc && found.size < names.length; i++) {
    const fn = pclnOff + funcAt(i);
    const nameoffAt = fn + (version === '1.16' ? 8 : 4);
    if (nameoffAt + 4 > b.length) continue;
    const nameAt = funcnameOff + b.readInt32LE(nameoffAt);
    for (let k = 0; k < names.length; k++) {
      const n = names[k];
      if (nameAt + n.length >= b.length || b[nameAt + n.length] !== 0) continue;
      if (b.compare(n, 0, n.length, nameAt, nameAt + n.length) !== 0) continue;
      found.set(wanted[k], { name: wanted[k], entry: entryAt(i), end: entryAt(i + 1) });
    }
  }
  return { version, found };
}

/** Virtual addresses of every return instruction in x86-64 code starting at `ip`. */
export function x86Returns(code: Uint8Array, ip: number): number[] {
  const { Decoder, DecoderOptions, FlowControl, Instruction } = x86();
  const decoder = new Decoder(64, code, DecoderOptions.None);
  const instr = new Instruction();
  const rets: number[] = [];
  try {
    decoder.ip = BigInt(ip);
    while (decoder.canDecode) {
      decoder.decodeOut(instr);
      if (instr.flowControl === FlowControl.Return) rets.push(Number(instr.ip));
    }
  } finally {
    instr.free();
    decoder.free();
  }
  return rets;
}

/**
 * Where to put a function's entry probe, as an offset into its code. Go's
 * amd64 prologue checks the stack first (`CMPQ SP, 16(R14)`, or `LEAQ
 * -N(SP), R12` and `CMPQ R12, 16(R14)`) then jumps to morestack if it must
 * grow (`JBE`). A uprobe on the compare runs it out of line with a
 * single-step trap, which costs tens of microseconds on virtual machines;
 * one on the jump is emulated by the kernel (x86 uprobes emulate jumps,
 * calls and returns). The argument registers and R14 are still untouched
 * there, and its flags say whether the stack will grow (CF or ZF: the
 * function then starts again). So: the first conditional jump when it is a
 * JBE and only CMP/LEA come before it (at most 3 instructions), else 0.
 */
export function entryProbe(code: Uint8Array): number {
  const { Decoder, DecoderOptions, FlowControl, Instruction, Mnemonic } = x86();
  const decoder = new Decoder(64, code, DecoderOptions.None);
  const instr = new Instruction();
  try {
    decoder.ip = 0n;
    for (let i = 0; i < 4 && decoder.canDecode; i++) {
      decoder.decodeOut(instr);
      if (instr.flowControl === FlowControl.ConditionalBranch) return instr.mnemonic === Mnemonic.Jbe ? Number(instr.ip) : 0;
      if (instr.mnemonic !== Mnemonic.Cmp && instr.mnemonic !== Mnemonic.Lea) return 0;
    }
    return 0;
  } finally {
    instr.free();
    decoder.free();
  }
}

function probeOf(f: GoFile, elf: Elf, fn: GoFunction): GoFunctionProbe {
  const entry = fileOffset(elf, fn.entry);
  if (entry === undefined || fn.end <= fn.entry || fn.end - fn.entry > 1 << 20) {
    throw new NotGo(`${fn.name} lies outside the file`);
  }
  const code = f.read(entry, fn.end - fn.entry);
  const rets = x86Returns(code, fn.entry).map((v) => entry + (v - fn.entry));
  const check = entryProbe(code);
  return { entry: entry + check, atCheck: check > 0, rets };
}

/** Everything about one file; never throws (an unreadable file is 'not-go'). */
export function inspectGo(f: GoFile): GoInspection {
  try {
    const elf = parseElf(f);
    const arch = MACHINES[elf.machine] ?? `elf-machine-${elf.machine}`;
    const version = goBuildVersion(f, elf);
    // Without build info only a `.gopclntab` section says Go: other programs' data is never scanned.
    if (!version && !elf.sections.some((s) => s.name === '.gopclntab')) return { kind: 'not-go' };
    const pcln = findPclntab(f, elf);
    if (!pcln) return version ? { kind: 'unsupported', goVersion: version, arch, reason: 'no Go function table' } : { kind: 'not-go' };
    const text = elf.sections.find((s) => s.name === '.text')?.addr ?? 0;
    const { version: table, found } = pclnFunctions(pcln.b, text, [FN_WRITE, FN_READ, FN_CLOSE, FN_HANDSHAKE]);
    const goVersion = version ?? `go (function table ${table})`;
    const minor = goMinor(version) ?? (table === '1.18' || table === '1.20' ? 18 : undefined);
    if (elf.machine !== EM_X86_64) {
      return { kind: 'unsupported', goVersion, arch, reason: `architecture ${arch} (only amd64 is probed)` };
    }
    if (minor === undefined || minor < GO_MIN_MINOR) {
      return { kind: 'unsupported', goVersion, arch, reason: `Go before 1.${GO_MIN_MINOR} passes arguments on the stack` };
    }
    const write = found.get(FN_WRITE);
    const read = found.get(FN_READ);
    if (!write || !read) return { kind: 'no-tls', goVersion, arch };
    const close = found.get(FN_CLOSE);
    const probes: GoTlsProbes = { write: probeOf(f, elf, write), read: probeOf(f, elf, read) };
    if (close) {
      const at = fileOffset(elf, close.entry);
      if (at !== undefined) probes.close = at + entryProbe(f.read(at, 32));
    }
    const handshake = found.get(FN_HANDSHAKE);
    if (handshake) probes.handshake = probeOf(f, elf, handshake);
    if (!probes.write.rets.length || !probes.read.rets.length) {
      return { kind: 'unsupported', goVersion, arch, reason: 'no return instruction found in crypto/tls' };
    }
    return { kind: 'probes', goVersion, arch, probes };
  } catch (err) {
    if (err instanceof NotGo || err instanceof RangeError) return { kind: 'not-go' };
    throw err;
  }
}

/** A file on disk as a GoFile (positioned reads; the file is never read whole). */
export function openGoFile(path: string): { file: GoFile; close(): void } {
  const fd = openSync(path, 'r');
  const size = fstatSync(fd).size;
  return {
    file: {
      size,
      read(offset, length) {
        const n = Math.max(0, Math.min(length, size - offset));
        const buf = Buffer.allocUnsafe(n);
        let got = 0;
        while (got < n) {
          const r = readSync(fd, buf, got, n - got, offset + got);
          if (r === 0) break;
          got += r;
        }
        return buf.subarray(0, got);
      },
    },
    close: () => closeSync(fd),
  };
}

/** inspectGo on a path; 'not-go' when the file cannot be opened. */
export function inspectGoFile(path: string): GoInspection {
  let opened: ReturnType<typeof openGoFile>;
  try {
    opened = openGoFile(path);
  } catch {
    return { kind: 'not-go' };
  }
  try {
    return inspectGo(opened.file);
  } finally {
    opened.close();
  }
}
