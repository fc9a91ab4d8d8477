import { CONSTANTS as C } from './layout';
import type { ReadyEvent } from './types';

/**
 * The kernel part of the ready line: its release, how headertap attaches
 * (always syscall tracepoints and, with TLS, uprobes: nothing optional is
 * chosen by kernel), and what the loader found beyond that (HT_KF_*), e.g.
 * `kernel 6.1.0-57-amd64 (attach: tracepoints, uprobes; kprobes: yes; bpf_loop: yes)`.
 */
export function describeKernel(ready: ReadyEvent, release: string, tls: boolean): string {
  const has = (bit: number) => ((ready.features & bit) !== 0 ? 'yes' : 'no');
  return `kernel ${release} (attach: tracepoints${tls ? ', uprobes' : ''}; kprobes: ${has(C.HT_KF_KPROBES)}; bpf_loop: ${has(C.HT_KF_BPF_LOOP)})`;
}
