/**
 * The guest's initramfs: busybox (static), the modules a 9p root needs, and
 * an /init that loads them, mounts the host's `/` read-only over virtio-9p
 * under a tmpfs overlay, mounts the kernel file systems headertap uses and
 * chroots into it to run one command. The guest so runs the host's own
 * node, curl, python and built checkout: no image to build, no network.
 *
 * What /init prints on the console, for run.ts:
 *   HT-GUEST root <uptime>    the overlay root is up (boot time)
 *   HT-GUEST exit <status>    the command's exit status, then power off
 *   HT-GUEST error <what>     a step failed (then power off)
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, copyFileSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { modulesInOrder, type Kernel } from './kernels';

/** Modules for the root: 9p over virtio PCI, and the overlay above it. */
export const ROOT_MODULES = ['virtio_pci', '9pnet_virtio', '9p', 'overlay'];

export const MOUNT_TAG = 'hostroot';

function shQuote(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export function initScript(opts: { modules: string[]; command: string[]; env: Record<string, string>; cwd: string; timeoutS: number }): string {
  const env = Object.entries(opts.env).map(([k, v]) => shQuote(`${k}=${v}`)).join(' ');
  return `#!/bin/busybox sh
/bin/busybox --install -s /bin
export PATH=/bin
fail() { echo "HT-GUEST error $*"; poweroff -f; sleep 5; echo o > /proc/sysrq-trigger; }
mkdir -p /proc /sys /dev /lower /rw /newroot
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
for m in ${opts.modules.map((m) => shQuote(m)).join(' ')}; do
  insmod /modules/$m.ko || fail "insmod $m"
done
# msize: bigger 9p messages, fewer round trips (the node binary is ~100 MB).
mount -t 9p -o trans=virtio,version=9p2000.L,ro,cache=loose,msize=262144 ${MOUNT_TAG} /lower || fail "mount 9p"
mount -t tmpfs -o mode=0755 tmpfs /rw || fail "mount tmpfs"
mkdir -p /rw/upper /rw/work
mount -t overlay overlay -o lowerdir=/lower,upperdir=/rw/upper,workdir=/rw/work /newroot || fail "mount overlay"
N=/newroot
mount -t proc proc $N/proc
mount -t sysfs sysfs $N/sys
mount -t devtmpfs devtmpfs $N/dev
mkdir -p $N/dev/pts $N/dev/shm
mount -t devpts devpts $N/dev/pts
mount -t tmpfs tmpfs $N/dev/shm
# /tmp stays the overlay's (writable already): a checkout under the host's /tmp must stay visible.
mount -t tmpfs tmpfs $N/run
mount -t bpf bpf $N/sys/fs/bpf || fail "mount bpf"
mount -t tracefs tracefs $N/sys/kernel/tracing || fail "mount tracefs"
mount -t debugfs debugfs $N/sys/kernel/debug || fail "mount debugfs"
mount -t cgroup2 cgroup2 $N/sys/fs/cgroup
ip link set lo up || fail "loopback up"
echo "HT-GUEST root $(cut -d' ' -f1 /proc/uptime)"
timeout -s KILL ${opts.timeoutS} chroot $N /usr/bin/env -i ${env} /bin/sh -c ${shQuote(`cd ${shQuote(opts.cwd)} && exec ${opts.command.map(shQuote).join(' ')}`)} < /dev/console > /dev/console 2>&1
echo "HT-GUEST exit $?"
sync
poweroff -f
sleep 5
echo o > /proc/sysrq-trigger
`;
}

/** Writes the initramfs (an uncompressed newc cpio) for kernel k to `out`. */
export function buildInitramfs(k: Kernel, out: string, opts: Omit<Parameters<typeof initScript>[0], 'modules'>): void {
  const dir = mkdtempSync(path.join(tmpdir(), 'ht-initramfs-'));
  try {
    mkdirSync(path.join(dir, 'bin'));
    mkdirSync(path.join(dir, 'modules'));
    copyFileSync('/bin/busybox', path.join(dir, 'bin', 'busybox'));
    const modules = modulesInOrder(k, ROOT_MODULES);
    for (const m of modules) writeFileSync(path.join(dir, 'modules', `${m.name}.ko`), m.bytes);
    writeFileSync(path.join(dir, 'init'), initScript({ ...opts, modules: modules.map((m) => m.name) }));
    chmodSync(path.join(dir, 'init'), 0o755);
    const list = execFileSync('find', ['.', '-mindepth', '1'], { cwd: dir, encoding: 'utf8' });
    execFileSync('sh', ['-c', `cpio --quiet -o -H newc --owner=0:0 > ${shQuote(out)}`], { cwd: dir, input: list });
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}
