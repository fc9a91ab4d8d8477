import { readFileSync, readlinkSync } from 'node:fs';
import { basename } from 'node:path';
import { otelEnv, otelEnvFromEnviron, type OtelEnv } from './environ';
import { podUidFromCgroup } from './kubepods';

/** What headertap knows about an observed process. */
export interface ProcessInfo {
  pid: number;
  /** Base name of /proc/PID/exe (semantic conventions' process.executable.name). */
  executableName: string;
  /** Container id from the process's cgroup path, when it has one. */
  containerId?: string;
  /** Its cgroup v2 path as /proc/PID/cgroup shows it after `0::` (e.g. /system.slice/nginx.service). */
  cgroupPath?: string;
  /** Kubernetes pod UID from the process's cgroup path, when it runs in a pod (src/workload/kubepods.ts). */
  podUid?: string;
  /** The process's own OTEL_SERVICE_NAME (or service.name in OTEL_RESOURCE_ATTRIBUTES). */
  serviceName?: string;
  /** The process's own OTEL_RESOURCE_ATTRIBUTES, parsed. */
  resourceAttributes?: Readonly<Record<string, string>>;
  /** argv from /proc/PID/cmdline, only when asked for (it can hold secrets: redact before use). */
  commandArgs?: readonly string[];
}

/**
 * A process's identity as the kernel read it in the process's own context
 * at its first data event (the source stage's ProcEvent): what /proc would
 * say, for a process that is gone when user space looks.
 */
export interface KernelIdentity {
  pid: number;
  startNs: number;
  comm: string;
  /** '' when unknown. */
  executableName: string;
  /** OTEL_SERVICE_NAME's and OTEL_RESOURCE_ATTRIBUTES's values, '' when unset. */
  serviceName: string;
  resourceAttributes: string;
  /** The environment could not be read: no OTEL_* values known. */
  envUnreadable: boolean;
}

/** How processes were identified (ProcessInfoCache.counters). */
export interface ProcessCounters {
  /** Processes whose /proc entry was gone (or a zombie's) when looked up, identified by what the kernel sent. */
  fromKernel: number;
  /** Processes identified by neither: their executable name is their comm, their OTEL_* environment unknown. */
  unidentified: number;
}

export interface ProcessInfoOptions {
  fs?: ProcFs;
  /** Processes remembered at most. */
  max?: number;
  /** Also read /proc/PID/cmdline (for process.command_line). */
  commandLine?: boolean;
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

/** The cgroup v2 path in a /proc/PID/cgroup file (its `0::` line), if it has one. */
export function unifiedCgroupPath(cgroupFile: string): string | undefined {
  for (const line of cgroupFile.split('\n')) if (line.startsWith('0::')) return line.slice(3) || '/';
  return undefined;
}

function setEnv(info: ProcessInfo, env: OtelEnv): void {
  if (env.serviceName) info.serviceName = env.serviceName;
  if (Object.keys(env.resourceAttributes).length) info.resourceAttributes = env.resourceAttributes;
}

/**
 * Process facts by pid, looked up once and cached. A process is looked up when
 * its first event arrives, while it most likely still runs; if it already
 * exited (or its pid now belongs to a process with another name, as when
 * replaying a recording), the identity the kernel sent before that event
 * (noteKernelIdentity: executable name, OTEL_* environment) stands in, and
 * without one its name from the event (comm) is the executable name and
 * nothing else is known (counted: counters.unidentified). Bounded: the
 * oldest entries go first.
 */
export class ProcessInfoCache {
  readonly counters: ProcessCounters = { fromKernel: 0, unidentified: 0 };
  private readonly _byPid = new Map<number, ProcessInfo & { comm: string }>();
  /** Identities the kernel sent, by pid, until the process is looked up (bounded like _byPid). */
  private readonly _kernel = new Map<number, KernelIdentity>();
  private readonly _fs: ProcFs;
  private readonly _max: number;
  private readonly _commandLine: boolean;

  constructor(opts: ProcessInfoOptions = {}) {
    this._fs = opts.fs ?? hostProcFs;
    this._max = opts.max ?? 8192;
    this._commandLine = opts.commandLine ?? false;
  }

  /**
   * The kernel's identity of a process, sent before its first data event:
   * kept for its lookup. It also means a new process (or a new program) has
   * this pid now: what was cached for the pid is forgotten.
   */
  noteKernelIdentity(id: KernelIdentity): void {
    this._byPid.delete(id.pid);
    this._kernel.delete(id.pid);
    if (this._kernel.size >= this._max) this._kernel.delete(this._kernel.keys().next().value as number);
    this._kernel.set(id.pid, id);
  }

  /** Returns the process's info, looking it up on first sight (or when comm changed: exec or pid reuse). */
  get(pid: number, comm: string): ProcessInfo {
    const hit = this._byPid.get(pid);
    if (hit && hit.comm === comm) return hit;
    const info = { ...this._lookup(pid, comm), comm };
    if (this._byPid.size >= this._max) this._byPid.delete(this._byPid.keys().next().value as number);
    this._byPid.set(pid, info);
    return info;
  }

  private _read(path: string): string | undefined {
    try {
      return this._fs.readFile(path);
    } catch {
      return undefined; // exited already, or not ours to read
    }
  }

  private _lookup(pid: number, comm: string): ProcessInfo {
    const info: ProcessInfo = { pid, executableName: comm };
    const known = this._kernel.get(pid);
    const kernel = known?.comm === comm ? known : undefined;
    if (kernel) this._kernel.delete(pid);
    // The pid is someone else now (the process exited, or this is a replay): only the kernel's word is left.
    if (this._read(`/proc/${pid}/comm`)?.replace(/\n$/, '') !== comm) {
      if (!kernel) {
        this.counters.unidentified++;
        return info;
      }
      this.counters.fromKernel++;
      if (kernel.executableName) info.executableName = kernel.executableName;
      if (!kernel.envUnreadable) setEnv(info, otelEnv(kernel.serviceName || undefined, kernel.resourceAttributes || undefined));
      return info;
    }
    let fromKernel = false;
    let exeGone = false;
    try {
      info.executableName = basename(this._fs.readlink(`/proc/${pid}/exe`).replace(/ \(deleted\)$/, ''));
    } catch {
      // a kernel thread, or exited (a zombie keeps its comm, not its exe): the kernel's name, else comm
      exeGone = true;
      if (kernel?.executableName) {
        info.executableName = kernel.executableName;
        fromKernel = true;
      }
    }
    const cgroup = this._read(`/proc/${pid}/cgroup`);
    const cgroupPath = cgroup !== undefined ? unifiedCgroupPath(cgroup) : undefined;
    if (cgroupPath) info.cgroupPath = cgroupPath;
    const containerId = cgroup !== undefined ? containerIdFromCgroup(cgroup) : undefined;
    if (containerId) info.containerId = containerId;
    const podUid = cgroup !== undefined ? podUidFromCgroup(cgroup) : undefined;
    if (podUid) info.podUid = podUid;
    const environ = this._read(`/proc/${pid}/environ`);
    // A zombie (exited, not yet reaped) shows an empty environment: the kernel read it while it ran.
    if (environ && environ.length > 0) setEnv(info, otelEnvFromEnviron(environ));
    else if (kernel && !kernel.envUnreadable) {
      setEnv(info, otelEnv(kernel.serviceName || undefined, kernel.resourceAttributes || undefined));
      fromKernel = true;
    }
    if (fromKernel) this.counters.fromKernel++;
    else if (exeGone && !environ) this.counters.unidentified++; // exited already (a zombie): only its comm was left
    if (this._commandLine) {
      const cmdline = this._read(`/proc/${pid}/cmdline`);
      if (cmdline) info.commandArgs = cmdline.replace(/\0$/, '').split('\0');
    }
    return info;
  }
}
