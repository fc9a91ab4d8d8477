import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeFrame } from '../../src/source/decode';
import { CONSTANTS as C, LAYOUT } from '../../src/source/layout';
import type { ProcEvent } from '../../src/source';
import { ProcessInfoCache } from '../../src/workload';
import type { ProcFs } from '../../src/workload/process-info';

/** A proc frame as bpf/proc.bpf.h writes it. */
function procFrame(o: { pid: number; comm: string; exe?: string; service?: string; attrs?: string; flags?: number }): Buffer {
  const f = LAYOUT.ht_proc_event.fields;
  const b = Buffer.alloc(LAYOUT.ht_proc_event.size);
  b[0] = C.HT_EV_PROC;
  b[f.flags[0]] = o.flags ?? 0;
  b.writeUInt32LE(o.pid, f.tgid[0]);
  b.writeBigUInt64LE(123456789n, f.start_ns[0]);
  b.write(o.comm, f.comm[0], 'latin1');
  b.write(o.exe ?? '', f.exe[0], 'utf8');
  b.write(o.service ?? '', f.service_name[0], 'utf8');
  b.write(o.attrs ?? '', f.resource_attributes[0], 'utf8');
  return b;
}

function decodeProc(frame: Buffer): ProcEvent {
  const ev = decodeFrame(frame);
  assert.ok(typeof ev !== 'string' && ev.kind === 'proc', String(ev));
  return ev;
}

/** /proc as files; a missing file is ENOENT, an exe link only where given. */
function fakeProc(files: Record<string, string>, links: Record<string, string> = {}): ProcFs {
  return {
    readlink: (p) => {
      if (p in links) return links[p];
      throw new Error('ENOENT');
    },
    readFile: (p) => {
      if (p in files) return files[p];
      throw new Error('ENOENT');
    },
  };
}

describe('process identity from the kernel (HT_EV_PROC)', () => {
  it('decodes the frame: names, the two OTEL_* values (UTF-8), flags', () => {
    const ev = decodeProc(procFrame({ pid: 42, comm: 'curl', exe: 'curl', service: 'svc-é', attrs: 'team=edge', flags: C.HT_PROC_ENV_CUT }));
    assert.deepEqual(ev, {
      kind: 'proc',
      pid: 42,
      startNs: 123456789,
      comm: 'curl',
      executableName: 'curl',
      serviceName: 'svc-é',
      resourceAttributes: 'team=edge',
      envUnreadable: false,
      envCut: true,
    });
    assert.equal(decodeFrame(procFrame({ pid: 1, comm: 'x' }).subarray(0, 100)), 'short_frame');
  });

  it('a process gone from /proc: its resource comes from what the kernel sent, and is counted', () => {
    const cache = new ProcessInfoCache({ fs: fakeProc({}) });
    cache.noteKernelIdentity(decodeProc(procFrame({ pid: 42, comm: 'curl', exe: 'curl-8', service: 'svc', attrs: 'deployment.environment=prod' })));
    assert.deepEqual(cache.get(42, 'curl'), {
      pid: 42,
      comm: 'curl',
      executableName: 'curl-8',
      serviceName: 'svc',
      resourceAttributes: { 'deployment.environment': 'prod' },
    });
    assert.deepEqual(cache.counters, { fromKernel: 1, unidentified: 0 });
  });

  it('gone, and nothing from the kernel (or for another program under that pid): comm only, counted as unidentified', () => {
    const cache = new ProcessInfoCache({ fs: fakeProc({}) });
    cache.noteKernelIdentity(decodeProc(procFrame({ pid: 43, comm: 'bash', exe: 'bash', service: 'wrong' })));
    assert.deepEqual(cache.get(43, 'curl'), { pid: 43, comm: 'curl', executableName: 'curl' });
    assert.deepEqual(cache.get(44, 'wget'), { pid: 44, comm: 'wget', executableName: 'wget' });
    assert.deepEqual(cache.counters, { fromKernel: 0, unidentified: 2 });
  });

  it('a zombie (comm left, no exe, empty environ): the kernel fills what /proc no longer has', () => {
    const fs = fakeProc({ '/proc/50/comm': 'curl\n', '/proc/50/environ': '', '/proc/50/cgroup': '0::/user.slice\n' });
    const cache = new ProcessInfoCache({ fs });
    cache.noteKernelIdentity(decodeProc(procFrame({ pid: 50, comm: 'curl', exe: 'curl', service: 'svc' })));
    const info = cache.get(50, 'curl');
    assert.equal(info.serviceName, 'svc');
    assert.equal(info.cgroupPath, '/user.slice', 'what /proc still has is read');
    assert.deepEqual(cache.counters, { fromKernel: 1, unidentified: 0 });

    const without = new ProcessInfoCache({ fs });
    assert.equal(without.get(50, 'curl').serviceName, undefined);
    assert.deepEqual(without.counters, { fromKernel: 0, unidentified: 1 }, 'a zombie without the kernel copy is unidentified');
  });

  it('a running process: /proc wins, nothing is counted', () => {
    const fs = fakeProc({ '/proc/60/comm': 'app\n', '/proc/60/environ': 'OTEL_SERVICE_NAME=from-proc\0' }, { '/proc/60/exe': '/usr/bin/app' });
    const cache = new ProcessInfoCache({ fs });
    cache.noteKernelIdentity(decodeProc(procFrame({ pid: 60, comm: 'app', exe: 'app', service: 'from-kernel' })));
    assert.equal(cache.get(60, 'app').serviceName, 'from-proc');
    assert.deepEqual(cache.counters, { fromKernel: 0, unidentified: 0 });
  });

  it('an unreadable environment is unknown, not empty; a new identity for a pid replaces what was cached', () => {
    const cache = new ProcessInfoCache({ fs: fakeProc({}) });
    cache.noteKernelIdentity(decodeProc(procFrame({ pid: 70, comm: 'curl', exe: 'curl', service: 'ignored', flags: C.HT_PROC_ENV_UNREADABLE })));
    assert.deepEqual(cache.get(70, 'curl'), { pid: 70, comm: 'curl', executableName: 'curl' });
    // The pid is reused by another curl: the kernel sends its identity before its first data event.
    cache.noteKernelIdentity(decodeProc(procFrame({ pid: 70, comm: 'curl', exe: 'curl', service: 'second' })));
    assert.equal(cache.get(70, 'curl').serviceName, 'second');
  });
});
