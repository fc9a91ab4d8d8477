import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { describeKernel, type ReadyEvent } from '../../src/source';
import { CONSTANTS as C } from '../../src/source/layout';
import { decode, readyFrame } from '../helpers/events';

describe('describeKernel (the ready line names the kernel and what the loader found)', () => {
  it('reads every HT_KF_* bit from the ready frame', () => {
    const ready = decode(readyFrame(0n, C.HT_KF_KPROBES | C.HT_KF_BPF_LOOP)) as ReadyEvent;
    assert.equal(ready.features, 3);
    assert.equal(describeKernel(ready, '6.1.0-57-amd64', true), 'kernel 6.1.0-57-amd64 (attach: tracepoints, uprobes; kprobes: yes; bpf_loop: yes)');
  });

  it('says no for what is missing, and leaves uprobes out without TLS capture', () => {
    const ready = decode(readyFrame(0n, C.HT_KF_BPF_LOOP)) as ReadyEvent;
    assert.equal(describeKernel(ready, '6.18.0', false), 'kernel 6.18.0 (attach: tracepoints; kprobes: no; bpf_loop: yes)');
  });
});
