import { readdirSync, readFileSync, readlinkSync, statSync } from 'node:fs';
import { constants as osConstants } from 'node:os';
import * as path from 'node:path';
import type { Log } from '../common/log';
import { inspectGoFile, type GoInspection, type GoTlsProbes } from './go-binary';
import { CONSTANTS as C } from './layout';
import type { AttachEvent, TlsLearnedEvent } from './types';

/**
 * Finds the files whose TLS functions headertap probes, without the user
 * naming them: the system OpenSSL (libssl.so.3, libssl.so.1.1), every libssl
 * mapped by a running process, and programs that link OpenSSL statically and
 * export its functions (node), and Go programs (crypto/tls, found in the
 * program's own function table: go-binary.ts). Each file is probed once (by
 * device and inode): a uprobe on a file covers every process that maps it,
 * now and later.
 */

/** Reads the machine; replaced in tests. */
export interface TlsFs {
  /** Process ids in /proc. */
  pids(): number[];
  /** /proc/PID/maps, or undefined when the process is gone. */
  maps(pid: number): string | undefined;
  /** "dev:inode" of a file, or undefined when it does not exist. */
  fileKey(file: string): string | undefined;
  /** Where /proc/PID/exe points, or undefined. */
  exe(pid: number): string | undefined;
  /** Regular files in a directory (names), or [] when it does not exist. */
  list(dir: string): string[];
}

export const hostTlsFs: TlsFs = {
  pids: () =>
    readdirSync('/proc')
      .filter((n) => /^\d+$/.test(n))
      .map(Number),
  maps: (pid) => {
    try {
      return readFileSync(`/proc/${pid}/maps`, 'utf8');
    } catch {
      return undefined;
    }
  },
  fileKey: (file) => {
    try {
      const st = statSync(file);
      return st.isFile() ? `${st.dev}:${st.ino}` : undefined;
    } catch {
      return undefined;
    }
  },
  exe: (pid) => {
    try {
      return readlinkSync(`/proc/${pid}/exe`);
    } catch {
      return undefined;
    }
  },
  list: (dir) => {
    try {
      return readdirSync(dir);
    } catch {
      return [];
    }
  },
};

/** OpenSSL's libssl (not NSS's libssl3.so): libssl.so, libssl.so.3, libssl.so.1.1. */
const LIBSSL = /^libssl\.so(\.\d+)*$/;

const MULTIARCH = process.arch === 'arm64' ? 'aarch64-linux-gnu' : 'x86_64-linux-gnu';

/** Where distributions install the system OpenSSL. */
export const LIBRARY_DIRS = [
  `/usr/lib/${MULTIARCH}`,
  `/lib/${MULTIARCH}`,
  '/usr/lib64',
  '/lib64',
  '/usr/lib',
  '/lib',
  '/usr/local/lib',
  '/usr/local/lib64',
];

/** libssl files mapped by a process, from its /proc/PID/maps text. */
export function libsslInMaps(maps: string): string[] {
  const found = new Set<string>();
  for (const line of maps.split('\n')) {
    // address perms offset dev inode pathname (the path may contain spaces)
    const m = /^\S+ \S+ \S+ \S+ \d+\s+(\/.*)$/.exec(line);
    if (!m || m[1].endsWith(' (deleted)')) continue;
    if (LIBSSL.test(path.basename(m[1]))) found.add(m[1]);
  }
  return [...found];
}

const FUNCTION_NAMES: [number, string][] = [
  [C.HT_TLS_FN_SSL_WRITE, 'SSL_write'],
  [C.HT_TLS_FN_SSL_READ, 'SSL_read'],
  [C.HT_TLS_FN_SSL_WRITE_EX, 'SSL_write_ex'],
  [C.HT_TLS_FN_SSL_READ_EX, 'SSL_read_ex'],
  [C.HT_TLS_FN_SSL_FREE, 'SSL_free'],
  [C.HT_TLS_FN_GO_WRITE, 'crypto/tls.(*Conn).Write'],
  [C.HT_TLS_FN_GO_READ, 'crypto/tls.(*Conn).Read'],
  [C.HT_TLS_FN_GO_CLOSE, 'crypto/tls.(*Conn).Close'],
  [C.HT_TLS_FN_GO_HANDSHAKE, 'crypto/tls.(*Conn).handshakeContext'],
];

/** HT_TLS_FN_* bits to function names. */
export function tlsFunctionNames(bits: number): string[] {
  return FUNCTION_NAMES.filter(([bit]) => bits & bit).map(([, name]) => name);
}

/** A file that got TLS probes. */
export interface TlsTarget {
  /** The path as the process (or the library directory) names it. */
  path: string;
  /** program: OpenSSL built into a program; go: a Go program's crypto/tls. */
  kind: 'library' | 'program' | 'go';
  functions: string[];
  /** Go programs: the Go version from the build info ("go1.19.8"). */
  goVersion?: string;
}

/** A Go program found but not probed (an older Go, another architecture). */
export interface GoSkipped {
  path: string;
  goVersion: string;
  arch: string;
  reason: string;
}

export interface TlsTargetsOptions {
  attach(file: string): Promise<AttachEvent>;
  /** Puts the Go crypto/tls probes on a Go program; without it Go programs are not looked at. */
  attachGo?(file: string, probes: GoTlsProbes): Promise<AttachEvent>;
  /** Reads a program file for Go (replaced in tests). */
  inspectGo?(file: string): GoInspection;
  log: Log;
  fs?: TlsFs;
  libraryDirs?: readonly string[];
  /** After an exec, when to look at the process's libraries again (ms). */
  execRescanMs?: readonly number[];
  /** A busy process's libraries are looked at again at most this often (ms). */
  rescanIntervalMs?: number;
  /** Processes remembered for rescans (LRU). */
  maxProcesses?: number;
}

const ENOENT = -2;

/** -13 -> "EACCES (errno 13)". */
function errnoName(negErrno: number): string {
  const n = -negErrno;
  const name = Object.entries(osConstants.errno).find(([, v]) => v === n)?.[0];
  return name ? `${name} (errno ${n})` : `errno ${n}`;
}

/**
 * Decides what to probe and asks the loader, one file at a time. Everything
 * it learns about files is keyed by device and inode, so a library shared by
 * a thousand processes costs one attach.
 */
export class TlsTargets {
  /** Files that got probes. */
  readonly attached: TlsTarget[] = [];
  /** Attach attempts that failed for a reason other than "no TLS functions". */
  failures = 0;
  /** Go programs seen but not probed (each reported once): their HTTPS is not captured. */
  readonly goSkipped: GoSkipped[] = [];
  private readonly _fs: TlsFs;
  /**
   * dev:inode -> asked (an attach from here is queued or in flight) or done
   * (its result was reported, from here or by the loader's onLearned).
   */
  private readonly _files = new Map<string, 'asked' | 'done'>();
  /** pid -> last time its libraries were looked at (ms), LRU by insertion. */
  private readonly _scanned = new Map<number, number>();
  private _queue: Promise<void> = Promise.resolve();
  private _timers = new Set<NodeJS.Timeout>();
  private _stopped = false;
  /** After the first full scan, new probes are announced (info, not debug). */
  private _announce = false;

  constructor(private readonly _opts: TlsTargetsOptions) {
    this._fs = _opts.fs ?? hostTlsFs;
  }

  /** The system OpenSSL plus what every running process maps or runs. */
  async scanAll(): Promise<void> {
    for (const dir of this._opts.libraryDirs ?? LIBRARY_DIRS) {
      // Versioned names first, so a file is shown as libssl.so.3 rather than its libssl.so link.
      const names = this._fs.list(dir).sort((a, b) => b.length - a.length);
      for (const name of names) {
        if (LIBSSL.test(name)) this._consider(path.join(dir, name), path.join(dir, name), 'library');
      }
    }
    for (const pid of this._fs.pids()) this._scanProcess(pid, true);
    await this._queue;
    this._announce = true;
  }

  /** A process started a new program: probe it, and its libraries once loaded. */
  onExec(pid: number): void {
    if (this._stopped) return;
    this._scanProcess(pid, true);
    for (const ms of this._opts.execRescanMs ?? [50, 500, 2000]) {
      const timer = setTimeout(() => {
        this._timers.delete(timer);
        if (!this._stopped) this._scanProcess(pid, false);
      }, ms);
      timer.unref();
      this._timers.add(timer);
    }
  }

  /**
   * A process moved socket data: if its libraries were not looked at lately,
   * look again (a library loaded with dlopen, e.g. python's ssl module).
   */
  onActivity(pid: number, nowMs = Date.now()): void {
    if (this._stopped) return;
    const last = this._scanned.get(pid);
    if (last !== undefined && nowMs - last < (this._opts.rescanIntervalMs ?? 10_000)) return;
    this._scanProcess(pid, last === undefined, nowMs);
  }

  /**
   * The loader probed a libssl a process had just opened (the kernel held
   * the process meanwhile): the file is done, as if attached from here.
   */
  onLearned(ev: TlsLearnedEvent): void {
    // A scan may have asked for the same file meanwhile (its libssl showed in
    // the process's maps): the loader probed it once, and this report, which
    // names the process, is the one told. The scan's answer is then dropped.
    if (this._files.get(ev.fileKey) === 'done') return;
    this._files.set(ev.fileKey, 'done');
    const held = ev.stopped ? `; process ${ev.pid} was held ${(ev.holdNs / 1e6).toFixed(1)} ms for it` : '';
    if (ev.err === 0) {
      const target: TlsTarget = { path: ev.path, kind: 'library', functions: tlsFunctionNames(ev.attached) };
      this.attached.push(target);
      this._opts.log.info(`TLS: probes on ${ev.path} (${target.functions.join(', ')}), opened by process ${ev.pid}${held}`);
    } else if (ev.err !== ENOENT) {
      this.failures++;
      this._opts.log.warn(`TLS: cannot probe ${ev.path}: ${errnoName(ev.err)}; its HTTPS traffic is not captured${held}`);
    }
  }

  /** Resolves once every attach asked for so far was answered. */
  settled(): Promise<void> {
    return this._queue;
  }

  stop(): void {
    this._stopped = true;
    for (const t of this._timers) clearTimeout(t);
    this._timers.clear();
  }

  private _scanProcess(pid: number, withProgram: boolean, nowMs = Date.now()): void {
    this._scanned.delete(pid);
    this._scanned.set(pid, nowMs);
    if (this._scanned.size > (this._opts.maxProcesses ?? 8192)) {
      this._scanned.delete(this._scanned.keys().next().value as number);
    }
    const root = `/proc/${pid}/root`;
    for (const lib of libsslInMaps(this._fs.maps(pid) ?? '')) this._consider(root + lib, lib, 'library');
    if (withProgram) {
      const exe = this._fs.exe(pid);
      if (exe && !exe.endsWith(' (deleted)')) this._consider(`/proc/${pid}/exe`, exe, 'program');
    }
  }

  /**
   * A Go program gets the crypto/tls probes; one that cannot is counted and
   * reported once. True when the file is a Go program (no OpenSSL probing).
   */
  private async _considerGo(file: string, shown: string): Promise<boolean> {
    const go = (this._opts.inspectGo ?? inspectGoFile)(file);
    if (go.kind === 'not-go') return false;
    if (go.kind === 'no-tls') return true;
    if (go.kind === 'unsupported') {
      this.goSkipped.push({ path: shown, goVersion: go.goVersion, arch: go.arch, reason: go.reason });
      this._opts.log.warn(
        `TLS: Go program ${shown} (${go.goVersion}, ${go.arch}) is not probed: ${go.reason}; its HTTPS traffic is not captured`,
      );
      return true;
    }
    const res = await this._opts.attachGo!(file, go.probes);
    if (res.err === 0) {
      const target: TlsTarget = { path: shown, kind: 'go', functions: tlsFunctionNames(res.attached), goVersion: go.goVersion };
      this.attached.push(target);
      const say = this._announce ? this._opts.log.info : this._opts.log.debug;
      say(`TLS: probes on Go program ${shown} (${go.goVersion}: ${target.functions.join(', ')})`);
    } else {
      this.failures++;
      this._opts.log.warn(`TLS: cannot probe Go program ${shown}: ${errnoName(res.err)}; its HTTPS traffic is not captured`);
    }
    return true;
  }

  /** Probes a file once; `file` is where to open it, `shown` how to name it. */
  private _consider(file: string, shown: string, kind: TlsTarget['kind']): void {
    const key = this._fs.fileKey(file);
    if (!key || this._files.has(key)) return;
    this._files.set(key, 'asked');
    this._queue = this._queue.then(async () => {
      if (this._stopped) return;
      try {
        if (kind === 'program' && this._opts.attachGo && (await this._considerGo(file, shown))) return;
        const res = await this._opts.attach(file);
        if (this._files.get(key) === 'done') return; // the loader told it first (onLearned)
        if (res.err === ENOENT && !this._fs.fileKey(file)) {
          // Seen through a process that has exited since: not an answer about the file.
          this._files.delete(key);
          return;
        }
        this._files.set(key, 'done');
        if (res.err === 0) {
          const target = { path: shown, kind, functions: tlsFunctionNames(res.attached) };
          this.attached.push(target);
          const say = this._announce ? this._opts.log.info : this._opts.log.debug;
          say(`TLS: probes on ${shown} (${target.functions.join(', ')})`);
        } else if (res.err !== ENOENT) {
          this.failures++;
          this._opts.log.warn(`TLS: cannot probe ${shown}: ${errnoName(res.err)}; its HTTPS traffic is not captured`);
        }
      } catch (err) {
        this.failures++;
        this._opts.log.debug(`TLS: cannot probe ${shown}: ${(err as Error).message}`);
      }
    });
  }
}
