/**
 * host.name for headertap's own resource and every workload's: the name of
 * the machine the observed processes run on, which is not always the name
 * headertap's process sees. In a container, os.hostname() is the UTS
 * namespace's (a Kubernetes pod's name, a Docker container id), and
 * /proc/sys/kernel/hostname answers for the reader's UTS namespace too.
 * Node cannot setns(2), so the host's own UTS namespace is asked through a
 * helper that can: `nsenter --uts=/proc/1/ns/uts uname -n` (util-linux, in
 * every Debian-based image, the node:*-slim ones included), which needs the
 * host's PID namespace (hostPID, `pid: host`), CAP_SYS_PTRACE (to open
 * another process's namespace) and CAP_SYS_ADMIN (to enter it).
 *
 * In order, the first that gives a name:
 *   1. host.name in headertap's own OTEL_RESOURCE_ATTRIBUTES (the user's word);
 *   2. os.hostname() when headertap shares the host's UTS namespace (a plain
 *      host, systemd, `uts: host`, a hostNetwork pod): PID 1's, or the
 *      initial one when /proc/1 is closed to us;
 *   3. the host's UTS namespace through nsenter;
 *   4. K8S_NODE_NAME (the DaemonSet sets it from spec.nodeName);
 *   5. os.hostname(), the container's name: said once on stderr.
 * Read once at start: a host renamed later keeps the old name until restart.
 */
import { execFile } from 'node:child_process';
import { readdirSync, readlinkSync } from 'node:fs';
import { hostname } from 'node:os';

export type HostNameSource = 'OTEL_RESOURCE_ATTRIBUTES' | 'uts' | 'host-uts' | 'K8S_NODE_NAME' | 'container';

export interface HostName {
  name: string;
  /** Where it came from (the numbered steps above). */
  source: HostNameSource;
}

/** The initial UTS namespace, as readlink shows it (include/linux/proc_ns.h PROC_UTS_INIT_INO = 0xeffffffe). */
const INIT_UTS_NS = `uts:[${0xeffffffe}]`;

/** The kernel's probes, replaceable in tests. */
export interface HostProbes {
  /** readlink of this process's /proc/self/ns/uts, undefined when unreadable. */
  selfUts(): string | undefined;
  /**
   * The host's UTS namespace: PID 1's, or when /proc/1 may not be looked at
   * (some sandboxes deny it even to root) the first process found in the
   * initial one. `path` is its /proc/PID/ns/uts.
   */
  hostUts(): { ns: string; path: string } | undefined;
  /** The hostname in the UTS namespace at `path`, undefined when it cannot be read. */
  hostnameIn(path: string): Promise<string | undefined>;
  osHostname(): string;
}

const readUts = (pid: string): string | undefined => {
  try {
    return readlinkSync(`/proc/${pid}/ns/uts`);
  } catch {
    return undefined; // exited, or not ours to look at
  }
};

export const hostProbes: HostProbes = {
  selfUts: () => readUts('self'),
  hostUts() {
    const pid1 = readUts('1');
    if (pid1) return { ns: pid1, path: '/proc/1/ns/uts' };
    let pids: string[];
    try {
      pids = readdirSync('/proc').filter((d) => /^\d+$/.test(d));
    } catch {
      return undefined;
    }
    for (const pid of pids.sort((a, b) => Number(a) - Number(b))) {
      if (readUts(pid) === INIT_UTS_NS) return { ns: INIT_UTS_NS, path: `/proc/${pid}/ns/uts` };
    }
    return undefined;
  },
  hostnameIn(path) {
    return new Promise((resolve) => {
      execFile('nsenter', [`--uts=${path}`, 'uname', '-n'], { timeout: 2000 }, (err, stdout) => {
        const name = err ? '' : stdout.trim();
        resolve(name || undefined);
      });
    });
  },
  osHostname: () => hostname(),
};

/** host.name, by the steps in this file's comment. */
export async function detectHostName(
  env: NodeJS.ProcessEnv,
  resourceAttributes: Readonly<Record<string, string>>,
  probes: HostProbes = hostProbes,
): Promise<HostName> {
  const explicit = resourceAttributes['host.name']?.trim();
  if (explicit) return { name: explicit, source: 'OTEL_RESOURCE_ATTRIBUTES' };
  const host = probes.hostUts();
  if (host && host.ns === probes.selfUts()) return { name: probes.osHostname(), source: 'uts' };
  const name = host && (await probes.hostnameIn(host.path));
  if (name) return { name, source: 'host-uts' };
  const node = env.K8S_NODE_NAME?.trim();
  if (node) return { name: node, source: 'K8S_NODE_NAME' };
  return { name: probes.osHostname(), source: 'container' };
}
