/**
 * One real-eBPF capture for a test: `headertap run` exporting OTLP/gRPC to a
 * real receiver, filtered to the test's own ports, stopped with SIGINT.
 */
import assert from 'node:assert/strict';
import type { TestContext } from 'node:test';
import type { FlatRecord } from '../../src/common/flat-record';
import { startAgent, type Agent } from './integration';
import { startOtlpSink, type OtlpSink } from './otlp-sink';

export interface Capture {
  sink: OtlpSink;
  agent: Agent;
  /**
   * Stops the agent (SIGINT), checks it exited 0 after a clean run (nothing
   * lost in the kernel, no byte the parser had to guess about, no stack
   * trace) and returns every record it exported and its stderr.
   */
  finish(): Promise<FlatRecord[]>;
  /** The agent's stderr once finish() returned. */
  stderr(): string;
}

export async function capture(t: TestContext, ports: number[], extra: string[] = []): Promise<Capture> {
  const sink = await startOtlpSink('grpc');
  t.after(() => sink.stop());
  const agent = await startAgent(t, ['--endpoint', sink.endpoint, ...ports.flatMap((p) => ['--port', String(p)]), ...extra]);
  let stderr = '';
  return {
    sink,
    agent,
    stderr: () => stderr,
    async finish() {
      const end = await agent.stop('SIGINT');
      stderr = end.stderr;
      assert.equal(end.code, 0, `agent exit status; stderr:\n${end.stderr}`);
      assert.match(end.stderr, /^headertap stopped: /m);
      // Kernel-side truncation is allowed: big bodies exceed the per-syscall copy.
      assert.match(end.stderr, /kernel events \d+, lost 0, truncated \d+, unreadable 0; parser resyncs 0, orphan responses 0/);
      assert.doesNotMatch(end.stderr, /\n\s+at /, 'no stack trace');
      return sink.records();
    },
  };
}

export function headers(r: FlatRecord, side: 'request' | 'response', name: string): unknown {
  return r.attributes[`http.${side}.header.${name}`];
}
