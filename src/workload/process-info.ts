import { readFileSync, readlinkSync } from 'node:fs';
import { basename } from 'node:path';

/** What headertap knows about an observed process. */
export interface ProcessInfo {
  pid: number;
  /** Base name of /proc/PID/exe (semantic conventions' process.executable.name). */
  executableName: string;
  /** Container id from the process's cgroup path, when it has one. */
  containerId?: string;
}

/** Reads /proc (or a stand-in root in tests). */
export interface ProcFs {
  readlink(path: string): string;
  readFile(path: string): string;
}

export const hostProcFs: ProcFs = {
  readlink: (p) => readlinkSync(p),
  readFile: (p) => readFileSync(p, 'utf8'),
};

/**
 * A 64-hex-digit id in a cgroup path, as Docker, containerd, CRI-O and Podman
 * name their scopes (docker-<id>.scope, cri-containerd-<id>.scope, /docker/<id>,
 * libpod-<id>.scope, kubepods/…/<id>).
 */
const CONTAINER_ID = /(?:^|[/-])([0-9a-f]{64})(?:\.scope)?$/;

export function containerIdFromCgroup(cgroupFile: string): string | undefined {
  for (const line of cgroupFile.split('\n')) {
    const path = line.slice(line.indexOf(':', line.indexOf(':') + 1) + 1);
    for (const part of path.split('/').reverse()) {
      const m = CONTAINER_ID.exec(part);
      if (m) return m[1];
    }
  }
  return undefined;
}

/**
 * Process facts by pid, looked up once and cached. A process is looked up when
 * its first event arrives, while it most likely still runs; if it already
 * exited, its name from the event (comm) stands in for the executable name.
 * Bounded: the oldest entries go first.
 */
export class ProcessInfoCache {
  private readonly _byPid = new Map<number, ProcessInfo & { comm: string }>();

  constructor(
    private readonly _fs: ProcFs = hostProcFs,
    private readonly _max = 8192,
  ) {}

  /** Returns the process's info, looking it up on first sight (or when comm changed: exec or pid reuse). */
  get(pid: number, comm: string): ProcessInfo {
    const hit = this._byPid.get(pid);
    if (hit && hit.comm === comm) return hit;
    const info = { ...this._lookup(pid, comm), comm };
    if (this._byPid.size >= this._max) this._byPid.delete(this._byPid.keys().next().value as number);
    this._byPid.set(pid, info);
    return info;
  }

  private _lookup(pid: number, comm: string): ProcessInfo {
    let executableName = comm;
    let containerId: string | undefined;
    try {
      executableName = basename(this._fs.readlink(`/proc/${pid}/exe`).replace(/ \(deleted\)$/, ''));
    } catch {
      // exited already, or a kernel thread: comm is the best name left
    }
    try {
      containerId = containerIdFromCgroup(this._fs.readFile(`/proc/${pid}/cgroup`));
    } catch {
      // exited already
    }
    return containerId ? { pid, executableName, containerId } : { pid, executableName };
  }
}
