/**
 * A second real OTLP/gRPC peer besides the embedded receiver: a grpcio
 * server (python3-grpcio) with grpcio's default limits, in its own process,
 * keeping every request it got as a file (test/helpers/grpcio_sink.py).
 */
import { execFileSync, spawn } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { TestContext } from 'node:test';
import type { FlatRecord } from '../../src/common/flat-record';
import { PACKAGE_ROOT } from '../../src/common/paths';
import { decodeLogsRequest } from '../../src/receiver/decode';
import { PYTHON } from './integration';

const SCRIPT = path.join(PACKAGE_ROOT, 'test', 'helpers', 'grpcio_sink.py');

/** Skips (with the reason printed) or, in CI (HEADERTAP_REQUIRE_EBPF=1), fails when python3-grpcio is missing. */
export function requireGrpcio(t: TestContext): boolean {
  try {
    if (existsSync(PYTHON)) {
      execFileSync(PYTHON, ['-c', 'import grpc'], { stdio: 'ignore' });
      return true;
    }
  } catch {
    // not installed
  }
  const reason = 'python3-grpcio is not installed (apt-get install python3-grpcio; scripts/ensure-deps.sh test does it)';
  if (process.env.HEADERTAP_REQUIRE_EBPF === '1') throw new Error(reason);
  process.stderr.write(`# SKIP ${t.name}: ${reason}\n`);
  t.skip(reason);
  return false;
}

export interface GrpcioSink {
  endpoint: string;
  port: number;
  pid: number;
  /** Sizes of the logs export requests in arrival order (decompressed, as grpcio measures them). */
  logRequestSizes(): number[];
  /** Records of every logs request, in arrival order. */
  records(): FlatRecord[];
  /** Requests of any signal: [signal, size]. */
  requests(): [string, number][];
  waitFor(done: (records: FlatRecord[]) => boolean, timeoutMs?: number, what?: string): Promise<FlatRecord[]>;
}

/** Starts the grpcio collector (answering each request `delaySec` after storing it), killed when the test ends. */
export async function startGrpcioSink(t: TestContext, delaySec = 0, port = 0): Promise<GrpcioSink> {
  const dir = mkdtempSync(path.join(tmpdir(), 'ht-grpcio-'));
  const child = spawn(PYTHON, [SCRIPT, dir, String(port), String(delaySec)], { stdio: ['ignore', 'pipe', 'pipe'] });
  let err = '';
  child.stderr.on('data', (c: Buffer) => (err += c.toString()));
  t.after(() => {
    child.kill('SIGKILL');
  });
  const bound = await new Promise<number>((resolve, reject) => {
    child.stdout.once('data', (c: Buffer) => resolve(Number(String(c).trim())));
    child.once('exit', (code) => reject(new Error(`grpcio sink exited (${code}): ${err}`)));
  });
  const files = () => readdirSync(dir).filter((f) => f.endsWith('.pb')).sort();
  const cache = new Map<string, FlatRecord[]>();
  const records = () =>
    files()
      .filter((f) => f.endsWith('-logs.pb'))
      .flatMap((f) => {
        let rs = cache.get(f);
        if (!rs) cache.set(f, (rs = decodeLogsRequest(readFileSync(path.join(dir, f)))));
        return rs;
      });
  const sizeOf = (f: string) => readFileSync(path.join(dir, f)).length;
  return {
    endpoint: `http://127.0.0.1:${bound}`,
    port: bound,
    pid: child.pid!,
    logRequestSizes: () => files().filter((f) => f.endsWith('-logs.pb')).map(sizeOf),
    records,
    requests: () => files().map((f) => [/-(\w+)\.pb$/.exec(f)![1], sizeOf(f)] as [string, number]),
    waitFor: async (done, timeoutMs = 20000, what = 'expected records') => {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const rs = records();
        if (done(rs)) return rs;
        if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}; got ${rs.length} records`);
        await new Promise((r) => setTimeout(r, 100));
      }
    },
  };
}
