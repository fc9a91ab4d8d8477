import { existsSync, readFileSync } from 'node:fs';
import { release } from 'node:os';
import { EnvironmentError } from '../common/errors';

const CAP_SYS_ADMIN = 21;
const CAP_SYS_RESOURCE = 24;
const CAP_PERFMON = 38;
const CAP_BPF = 39;

/** The effective capability set of this process, from /proc/self/status. */
export function effectiveCapabilities(status = readFileSync('/proc/self/status', 'utf8')): bigint {
  const m = /^CapEff:\s*([0-9a-f]+)$/m.exec(status);
  return m ? BigInt(`0x${m[1]}`) : 0n;
}

function has(caps: bigint, cap: number): boolean {
  return (caps & (1n << BigInt(cap))) !== 0n;
}

/**
 * Loading tracing BPF programs needs CAP_BPF + CAP_PERFMON (or CAP_SYS_ADMIN
 * on kernels before 5.8); CAP_SYS_RESOURCE lifts the locked-memory limit
 * kernels before 5.11 apply to BPF maps. Checked up front so the user reads
 * which capability is missing, not a bare EPERM.
 */
export function checkPrivileges(caps = effectiveCapabilities()): void {
  if (has(caps, CAP_SYS_ADMIN)) return;
  const missing = [
    ['CAP_BPF', CAP_BPF],
    ['CAP_PERFMON', CAP_PERFMON],
    ['CAP_SYS_RESOURCE', CAP_SYS_RESOURCE],
  ]
    .filter(([, cap]) => !has(caps, cap as number))
    .map(([name]) => name);
  if (missing.length === 0) return;
  throw new EnvironmentError(
    `headertap run needs root or the capabilities CAP_BPF, CAP_PERFMON and CAP_SYS_RESOURCE (missing: ${missing.join(', ')}); ` +
      'run it as root (sudo headertap run), or replay a recording with --replay FILE',
  );
}

/** The BPF ring buffer (and the tracepoints headertap uses) arrived in Linux 5.8. */
const MIN_KERNEL: [number, number] = [5, 8];

/**
 * BTF is what CO-RE relocates against; without it nothing can load. The
 * ring buffer needs 5.8: older kernels are named before anything is tried.
 */
export function checkKernel(btfPath = '/sys/kernel/btf/vmlinux', kernelRelease = release()): void {
  const m = /^(\d+)\.(\d+)/.exec(kernelRelease);
  if (m && (Number(m[1]) < MIN_KERNEL[0] || (Number(m[1]) === MIN_KERNEL[0] && Number(m[2]) < MIN_KERNEL[1]))) {
    throw new EnvironmentError(
      `Linux ${kernelRelease} is too old; headertap needs Linux ${MIN_KERNEL.join('.')} or newer (BPF ring buffer) with BTF: upgrade the kernel (Debian 11+, Ubuntu 20.10+, RHEL 9)`,
    );
  }
  if (!existsSync(btfPath)) {
    throw new EnvironmentError(
      `this kernel has no BTF (${btfPath} is missing); headertap needs a kernel built with CONFIG_DEBUG_INFO_BTF=y (Debian 11+, Ubuntu 20.10+, RHEL 8.2+ ship one)`,
    );
  }
}
