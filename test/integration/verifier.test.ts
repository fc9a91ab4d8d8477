/**
 * Real eBPF: what loading the programs costs the kernel's verifier, in
 * instructions processed per program (the loader's --verifier-stats, log
 * level 4). The count depends on the object and the kernel, not on the
 * machine's speed, and it is what the time to the ready line is made of: the
 * process identity's environment walk once inlined into every data program
 * made it ~7 million instructions in all and 9-11 s to ready (bpf/proc.bpf.h
 * says how it is kept out of them now).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { requireEbpf, verifierStats } from '../helpers/integration';

/** Per program: the kernel refuses at 1 000 000; a fifth of it leaves room for older verifiers. */
const PER_PROGRAM = 200_000;
/** The whole object: about 0.5 million on 6.18 (7 million when the identity read was inlined everywhere). */
const TOTAL = 1_000_000;
/** Programs on every data path: they carry the copy, never the identity read. */
const DATA_PATH = /^ht_exit_(write|writev|sendto|sendmsg|read|readv|recvfrom|recvmsg)$/;
const DATA_PATH_BUDGET = 60_000;

describe('verifier cost of the BPF object (real eBPF)', () => {
  it(`every program within ${PER_PROGRAM} processed instructions, the syscall exits within ${DATA_PATH_BUDGET}, all within ${TOTAL}`, async (t) => {
    if (!requireEbpf(t)) return;
    const { programs, total, most, stdout } = await verifierStats(120_000, 6);
    process.stderr.write(`# verifier: ${programs.length} programs, ${total} instructions processed in all; most: ${most}\n`);
    // The stats were read for every program (a parse that finds nothing would pass the budgets).
    assert.ok(programs.length >= 30, stdout);
    for (const p of programs) assert.ok(Number.isInteger(p.insns) && p.insns > 0, `no statistics for ${p.name}: ${stdout}`);
    for (const name of ['ht_exit_write', 'ht_ssl_ret', 'ht_go_ret', 'ht_proc_sys', 'ht_proc_uprobe']) {
      assert.ok(programs.some((p) => p.name === name), `${name} missing from ${stdout}`);
    }
    for (const p of programs) {
      assert.ok(p.insns <= PER_PROGRAM, `${p.name}: ${p.insns} instructions processed`);
      if (DATA_PATH.test(p.name)) assert.ok(p.insns <= DATA_PATH_BUDGET, `${p.name}: ${p.insns} instructions processed`);
    }
    assert.ok(total <= TOTAL, `${total} instructions processed in all`);
  });
});
