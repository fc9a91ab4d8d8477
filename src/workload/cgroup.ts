import { readFileSync, statfsSync, statSync } from 'node:fs';
import * as path from 'node:path';
import { UsageError } from '../common/errors';

/** statfs f_type of a cgroup v2 file system. */
const CGROUP2_SUPER_MAGIC = 0x63677270;

/**
 * Where the cgroup v2 hierarchy is mounted: /sys/fs/cgroup on a pure v2
 * system, /sys/fs/cgroup/unified on a hybrid one. Undefined when none is.
 */
export function cgroup2Mount(mountinfo?: string): string | undefined {
  let text = mountinfo;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/self/mountinfo', 'utf8');
    } catch {
      return undefined;
    }
  }
  for (const line of text.split('\n')) {
    // id parent major:minor root mountpoint options [optional…] - fstype source superoptions
    const sep = line.indexOf(' - ');
    if (sep < 0 || !line.slice(sep + 3).startsWith('cgroup2 ')) continue;
    const mountPoint = line.split(' ')[4];
    if (mountPoint) return mountPoint.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(parseInt(o, 8)));
  }
  return undefined;
}

function isCgroup2Dir(dir: string): boolean {
  try {
    return statSync(dir).isDirectory() && statfsSync(dir).type === CGROUP2_SUPER_MAGIC;
  } catch {
    return false;
  }
}

/**
 * A --cgroup value to the cgroup v2 directory it names: a directory in the
 * cgroup2 file system, or a path as /proc/PID/cgroup shows it after `0::`
 * (taken relative to the cgroup2 mount). Throws UsageError otherwise.
 */
export function resolveCgroupPath(value: string, mount = cgroup2Mount()): string {
  if (path.isAbsolute(value) && isCgroup2Dir(value)) return path.resolve(value);
  if (mount) {
    const under = path.join(mount, value);
    if ((under === mount || under.startsWith(`${mount}/`)) && isCgroup2Dir(under)) return under;
  }
  const where = mount
    ? `a directory under ${mount} (the cgroup2 mount), or a path as /proc/PID/cgroup shows it after '0::', e.g. /system.slice/nginx.service`
    : 'a cgroup v2 directory; this machine has no cgroup2 file system mounted (mount -t cgroup2 none /sys/fs/cgroup)';
  throw new UsageError(`--cgroup '${value}' is not a cgroup v2 directory; use ${where}`);
}
