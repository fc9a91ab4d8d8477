/**
 * Debian's stock kernels for the kernel matrix: found with apt-cache (never
 * a hard-coded ABI number), fetched with `apt-get download` and unpacked with
 * `dpkg-deb -x` into a cache folder. Nothing is installed as the host's
 * kernel. Also the module list an initramfs needs for a 9p root, in load
 * order, read from the modules' own `depends=` (the package ships no
 * modules.dep: depmod runs at install time, which we never do).
 */
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, readdirSync, renameSync, rmSync } from 'node:fs';
import * as path from 'node:path';

export const CACHE_DIR = process.env.HEADERTAP_KERNEL_CACHE ?? '/var/cache/headertap-kernels';

/** The kernel series tested by default: Debian 12's own (6.1) and its newer 6.12. */
export const DEFAULT_SERIES = ['6.1', '6.12'];

export interface Kernel {
  /** Debian package, e.g. linux-image-6.1.0-57-amd64-unsigned. */
  pkg: string;
  /** Its version, e.g. 6.1.192-3. */
  version: string;
  /** uname -r of the kernel, the folder under lib/modules. */
  release: string;
  /** The unpacked package. */
  root: string;
  vmlinuz: string;
}

function sh(cmd: string, args: string[], cwd?: string): string {
  return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'], ...(cwd ? { cwd } : {}) });
}

/** Compares version-like strings piece by piece, numbers as numbers (sort -V). */
export function naturalCompare(a: string, b: string): number {
  const pa = a.match(/\d+|\D+/g) ?? [];
  const pb = b.match(/\d+|\D+/g) ?? [];
  for (let i = 0; i < Math.max(pa.length, pb.length); i++) {
    const x = pa[i] ?? '';
    const y = pb[i] ?? '';
    if (x === y) continue;
    if (/^\d/.test(x) && /^\d/.test(y)) return Number(x) - Number(y);
    return x < y ? -1 : 1;
  }
  return 0;
}

/**
 * The newest generic amd64 unsigned image of a series the configured apt
 * sources offer: 6.1 -> linux-image-6.1.0-N-amd64-unsigned, 6.12 ->
 * linux-image-6.12.N+debM-amd64-unsigned. The cloud flavour lacks 9p and
 * rt is another kernel, so both are left out. A full package name is taken
 * as it is.
 */
export function newestPackage(series: string): string {
  if (series.startsWith('linux-image-')) return series;
  const esc = series.replace(/\./g, '\\.');
  const names = sh('apt-cache', ['search', '--names-only', `^linux-image-${esc}\\.`])
    .split('\n')
    .map((l) => l.split(' - ')[0].trim())
    .filter((n) => new RegExp(`^linux-image-${esc}\\.\\d+(-\\d+)?(\\+deb\\d+)?-amd64-unsigned$`).test(n));
  if (names.length === 0) {
    throw new Error(`no linux-image-${series}.*-amd64-unsigned package in the apt sources; run apt-get update, or add the Debian suite that has it`);
  }
  return names.sort(naturalCompare).at(-1)!;
}

export function candidateVersion(pkg: string): string {
  const m = /^\s*Candidate:\s*(\S+)/m.exec(sh('apt-cache', ['policy', pkg]));
  if (!m || m[1] === '(none)') throw new Error(`${pkg} has no candidate version in the apt sources`);
  return m[1];
}

/** Downloads (once) and unpacks (once) the package into the cache. */
export function fetchKernel(pkg: string): Kernel {
  const version = candidateVersion(pkg);
  mkdirSync(CACHE_DIR, { recursive: true });
  const root = path.join(CACHE_DIR, `${pkg}_${version}`);
  if (!existsSync(path.join(root, '.unpacked'))) {
    const debName = `${pkg}_${version.replace(/:/g, '%3a')}_amd64.deb`;
    const deb = path.join(CACHE_DIR, debName);
    if (!existsSync(deb)) {
      // As root apt fetches as _apt, which cannot write the cache folder: fetch as root.
      sh('apt-get', ['download', '-q', '-o', 'APT::Sandbox::User=root', `${pkg}=${version}`], CACHE_DIR);
    }
    const tmp = `${root}.tmp`;
    rmSync(tmp, { recursive: true, force: true });
    sh('dpkg-deb', ['-x', deb, tmp]);
    execFileSync('touch', [path.join(tmp, '.unpacked')]);
    rmSync(root, { recursive: true, force: true });
    renameSync(tmp, root);
    rmSync(deb); // the unpacked tree is the cache; the .deb would only double it
  }
  const releases = readdirSync(path.join(root, 'lib', 'modules'));
  if (releases.length !== 1) throw new Error(`${root}/lib/modules holds ${releases.length} kernels, expected one`);
  const release = releases[0];
  return { pkg, version, release, root, vmlinuz: path.join(root, 'boot', `vmlinuz-${release}`) };
}

/** Removes older unpacked packages of the same series (6.1: 400 MB, 6.12 with xz modules: 115 MB). */
export function pruneSeries(series: string, keep: Kernel): void {
  if (series.startsWith('linux-image-')) return;
  for (const name of readdirSync(CACHE_DIR)) {
    if (name.startsWith(`linux-image-${series}.`) && path.join(CACHE_DIR, name) !== keep.root) {
      rmSync(path.join(CACHE_DIR, name), { recursive: true, force: true });
    }
  }
}

/** A module file's bytes, decompressed when it is .ko.xz (Debian compresses them since 6.3). */
export function moduleBytes(file: string): Buffer {
  return file.endsWith('.xz') ? execFileSync('xz', ['-dc', file], { maxBuffer: 64 << 20 }) : readFileSync(file);
}

/** The module's own `depends=` list (its .modinfo section), names with '_'. */
export function moduleDepends(bytes: Buffer): string[] {
  const at = bytes.indexOf('\0depends=');
  if (at < 0) return [];
  const start = at + '\0depends='.length;
  const value = bytes.subarray(start, bytes.indexOf(0, start)).toString();
  return value ? value.split(',').map((n) => n.replace(/-/g, '_')) : [];
}

/**
 * The modules to insmod, in order, for `wanted` (names), with what each
 * needs first; built-in ones are left out. Returns each module's bytes,
 * decompressed, under its name.
 */
export function modulesInOrder(k: Kernel, wanted: string[]): { name: string; bytes: Buffer }[] {
  const dir = path.join(k.root, 'lib', 'modules', k.release);
  const name = (p: string) => path.basename(p).replace(/\.ko(\.\w+)?$/, '').replace(/-/g, '_');
  const builtin = new Set(readFileSync(path.join(dir, 'modules.builtin'), 'utf8').split('\n').filter(Boolean).map(name));
  const files = new Map<string, string>();
  for (const rel of readFileSync(path.join(dir, 'modules.order'), 'utf8').split('\n').filter(Boolean)) {
    for (const ext of ['', '.xz', '.zst', '.gz']) {
      const p = path.join(dir, rel + ext);
      if (existsSync(p)) files.set(name(p), p);
    }
  }
  const out: { name: string; bytes: Buffer }[] = [];
  const seen = new Set<string>();
  const visit = (m: string): void => {
    if (seen.has(m) || builtin.has(m)) return;
    seen.add(m);
    const file = files.get(m);
    if (!file) throw new Error(`${k.pkg} has no module ${m} (neither built in nor in modules.order)`);
    if (file.endsWith('.zst') || file.endsWith('.gz')) throw new Error(`${file}: only .ko and .ko.xz modules are handled`);
    const bytes = moduleBytes(file);
    for (const dep of moduleDepends(bytes)) visit(dep);
    out.push({ name: m, bytes });
  };
  for (const m of wanted) visit(m);
  return out;
}
