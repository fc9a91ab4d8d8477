/**
 * Delivery that real collectors accept, with real eBPF capture: records
 * with a dozen 100-byte custom headers queued while the collector is down
 * (2048 of them make a request over the 4 MiB gRPC servers accept by
 * default), a spool segment of the size earlier versions wrote, and a
 * collector slower than the export timeout. The peers are real gRPC servers
 * with their default limits: the embedded receiver (@grpc/grpc-js) in this
 * process, and grpcio (python3-grpcio) in its own. Each test prints what it
 * measured: requests, their sizes, records delivered, duplicates.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import type { FlatRecord } from '../../src/common/flat-record';
import { decodeSegment, encodeSegment } from '../../src/otel/spool';
import { startGrpcioSink, requireGrpcio } from '../helpers/grpcio-sink';
import { freePort, requireEbpf, run, startAgent, startNginx, type Agent } from '../helpers/integration';
import { startOtlpSink } from '../helpers/otlp-sink';

const CURL = '/usr/bin/curl';
const FOUR_MIB = 4 << 20;
const TWO_MIB = 2 << 20;

/** A dozen custom headers of about 100 bytes each, as curl arguments. */
const TWELVE_HEADERS = Array.from({ length: 12 }, (_, h) => ['-H', `X-Custom-${h}: ${`value-${h}-`.padEnd(100, 'v')}`]).flat();

/** `n` requests over one keep-alive connection (curl's URL globbing), with the dozen headers. */
async function heavyRequests(port: number, prefix: string, n: number): Promise<void> {
  const r = await run(CURL, ['-sS', '-o', '/dev/null', ...TWELVE_HEADERS, `http://127.0.0.1:${port}/${prefix}/[1-${n}]`], { timeoutMs: 120_000 });
  assert.equal(r.code, 0, r.stderr);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

async function waitForStderr(agent: Agent, re: RegExp, timeoutMs = 60_000): Promise<RegExpMatchArray> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = re.exec(agent.stderr());
    if (m) return m;
    if (Date.now() > deadline) throw new Error(`stderr never matched ${re}:\n${agent.stderr().slice(-3000)}`);
    await sleep(100);
  }
}

/** How often each exchange (role and path) arrived, for records under `prefix`. */
function copies(records: FlatRecord[], prefix: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const r of records) {
    const p = String(r.attributes['url.path']);
    if (!p.startsWith(`/${prefix}/`)) continue;
    const key = `${String(r.attributes['headertap.role'])} ${p}`;
    out.set(key, (out.get(key) ?? 0) + 1);
  }
  return out;
}

function median(xs: number[]): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.floor(s.length / 2)] ?? 0;
}

/** One line of figures for the closing note. */
function report(what: string, sizes: number[], delivered: number, duplicates: number, extra = ''): void {
  process.stderr.write(
    `# ${what}: ${sizes.length} log requests, max ${sizes.length ? Math.max(...sizes) : 0} bytes, median ${median(sizes)} bytes; ${delivered} records delivered, ${duplicates} duplicates${extra}\n`,
  );
}

interface Peer {
  endpoint: string;
  records(): FlatRecord[];
  logRequestSizes(): number[];
  waitFor(done: (rs: FlatRecord[]) => boolean, timeoutMs: number, what: string): Promise<FlatRecord[]>;
}

/** The collector stand-ins: @grpc/grpc-js (the embedded receiver) and grpcio, both with their default 4 MiB receive limit. */
const PEERS: Record<'grpc-js' | 'grpcio', (t: TestContext, port: number, delaySec?: number) => Promise<Peer>> = {
  'grpc-js': async (t, port) => {
    const sink = await startOtlpSink('grpc', '127.0.0.1', port);
    t.after(() => sink.stop());
    return {
      endpoint: sink.endpoint,
      records: () => sink.records(),
      logRequestSizes: () => sink.batches.filter((b) => b.signal === 'logs').map((b) => b.raw.length),
      waitFor: (done, timeoutMs, what) => sink.waitFor(done, timeoutMs, what),
    };
  },
  grpcio: (t, port, delaySec = 0) => startGrpcioSink(t, delaySec, port),
};

describe('bounded export requests, with real eBPF and real gRPC servers', () => {
  for (const peer of ['grpc-js', 'grpcio'] as const) {
    it(`${peer}: 3000 records with a dozen 100-byte headers, queued while the collector is down, all arrive in requests under 4 MiB; delivery goes on after`, async (t) => {
      if (!requireEbpf(t) || (peer === 'grpcio' && !requireGrpcio(t))) return;
      const nginx = await startNginx(t);
      const port = await freePort();
      const agent = await startAgent(t, ['--endpoint', `http://127.0.0.1:${port}`, '--port', String(nginx.port), '--no-self-metrics', '--stats-interval', '1']);
      await heavyRequests(nginx.port, 'load', 1500);
      await waitForStderr(agent, /^headertap stats: exchanges 3000 /m);
      // 3000 records wait: any 2048 of them are over 4 MiB in one request.
      const sink = await PEERS[peer](t, port);
      await sink.waitFor((rs) => copies(rs, 'load').size === 3000, 90_000, 'the 3000 queued records');
      await heavyRequests(nginx.port, 'after', 100);
      await sink.waitFor((rs) => copies(rs, 'after').size === 200, 30_000, 'records made after the backlog');
      const end = await agent.stop('SIGINT');
      assert.equal(end.code, 0, end.stderr);
      const all = [...copies(sink.records(), 'load').values(), ...copies(sink.records(), 'after').values()];
      const sizes = sink.logRequestSizes();
      report(`${peer}, 12-header load`, sizes, all.length, all.reduce((a, n) => a + n - 1, 0));
      assert.ok(all.every((n) => n === 1), 'each record exactly once');
      assert.ok(Math.max(...sizes) <= TWO_MIB, `largest request ${Math.max(...sizes)} bytes, within --max-request-bytes`);
      assert.match(end.stderr, /records exported 3200, failed 0, dropped 0; /);
    });
  }

  it('grpcio: a spool segment of 3000 such records (over 4 MiB, as the version before wrote one at shutdown) drains after a restart', async (t) => {
    if (!requireEbpf(t) || !requireGrpcio(t)) return;
    const nginx = await startNginx(t);
    const port = await freePort();
    const spool = mkdtempSync(path.join(tmpdir(), 'ht-spool-'));
    const common = ['--endpoint', `http://127.0.0.1:${port}`, '--port', String(nginx.port), '--no-self-metrics', '--stats-interval', '1', '--spool-dir', spool];
    const first = await startAgent(t, [...common, '--shutdown-timeout', '1']);
    await heavyRequests(nginx.port, 'spooled', 1500);
    await waitForStderr(first, /^headertap stats: exchanges 3000 /m);
    const firstEnd = await first.stop('SIGTERM');
    assert.equal(firstEnd.code, 0, firstEnd.stderr);
    assert.match(firstEnd.stderr, /spooled 3000/);
    // The version before wrote what was pending at shutdown as one segment: make that file from what this one wrote.
    const files = readdirSync(spool).sort();
    const records = files.flatMap((f) => decodeSegment(readFileSync(path.join(spool, f))));
    for (const f of files) rmSync(path.join(spool, f));
    const old = encodeSegment(records);
    writeFileSync(path.join(spool, `seg-${'1'.padStart(16, '0')}-${records.length}.otlp`), old);
    assert.equal(records.length, 3000);
    assert.ok(old.length > FOUR_MIB, `the segment is ${old.length} bytes`);

    const sink = await PEERS.grpcio(t, port);
    const second = await startAgent(t, common);
    await sink.waitFor((rs) => copies(rs, 'spooled').size === 3000, 60_000, 'the 3000 spooled records');
    await heavyRequests(nginx.port, 'after-spool', 10);
    await sink.waitFor((rs) => copies(rs, 'after-spool').size === 20, 30_000, 'new records after the spool');
    const end = await second.stop('SIGINT');
    assert.equal(end.code, 0, end.stderr);
    const all = [...copies(sink.records(), 'spooled').values()];
    const sizes = sink.logRequestSizes();
    report(`grpcio, ${old.length}-byte old spool segment`, sizes, all.length, all.reduce((a, n) => a + n - 1, 0));
    assert.ok(all.every((n) => n === 1), 'each spooled record exactly once');
    assert.ok(Math.max(...sizes) <= TWO_MIB);
    assert.deepEqual(readdirSync(spool), [], 'the segment is gone once delivered');
    assert.match(end.stderr, /records exported 3020, failed 0, dropped 0; retries 0, buffered 0, spooled 0/);
  });

  it('grpcio slower than the export timeout: each record arrives a bounded number of times, and the summary calls them unconfirmed, not dropped', async (t) => {
    if (!requireEbpf(t) || !requireGrpcio(t)) return;
    const nginx = await startNginx(t);
    // Stores every request at once, answers 30 s later: longer than the 0.5, 1 and 2 s the agent waits.
    const sink = await PEERS.grpcio(t, 0, 30);
    const agent = await startAgent(t, ['--endpoint', sink.endpoint, '--port', String(nginx.port), '--no-self-metrics', '--export-timeout', '0.5']);
    const r = await run(CURL, ['-sS', '-o', '/dev/null', `http://127.0.0.1:${nginx.port}/slow/[1-8]`]);
    assert.equal(r.code, 0, r.stderr);
    await waitForStderr(agent, /giving them up as unconfirmed/, 60_000);
    await sleep(1000);
    const end = await agent.stop('SIGINT');
    assert.equal(end.code, 0, end.stderr);
    const all = [...copies(sink.records(), 'slow').values()];
    report('grpcio answering after 30 s, --export-timeout 0.5', sink.logRequestSizes(), all.length, all.reduce((a, n) => a + n - 1, 0), `; copies per record ${[...new Set(all)].join('/')}`);
    assert.equal(all.length, 16, 'both sides of the 8 requests reached the collector');
    assert.ok(all.every((n) => n <= 3), `each record at most 3 times (once, then 2 retries): ${all}`);
    assert.match(end.stderr, /records exported 0, failed 0, dropped 0, unconfirmed 16; retries \d+ \(\d+ after timeouts\)/);
  });

  it('grpcio answering in 0.75 s with --export-timeout 0.5: the retry waits longer, and later requests too', async (t) => {
    if (!requireEbpf(t) || !requireGrpcio(t)) return;
    const nginx = await startNginx(t);
    const sink = await PEERS.grpcio(t, 0, 0.75);
    const agent = await startAgent(t, ['--endpoint', sink.endpoint, '--port', String(nginx.port), '--no-self-metrics', '--export-timeout', '0.5']);
    for (let round = 0; round < 4; round++) {
      const r = await run(CURL, ['-sS', '-o', '/dev/null', `http://127.0.0.1:${nginx.port}/late-${round}/[1-4]`]);
      assert.equal(r.code, 0, r.stderr);
      await sink.waitFor((rs) => copies(rs, `late-${round}`).size === 8, 30_000, `round ${round}`);
      await sleep(1000);
    }
    const end = await agent.stop('SIGINT');
    assert.equal(end.code, 0, end.stderr);
    const rounds = [0, 1, 2, 3].map((k) => [...copies(sink.records(), `late-${k}`).values()]);
    const all = rounds.flat();
    report('grpcio answering in 0.75 s, --export-timeout 0.5', sink.logRequestSizes(), all.length, all.reduce((a, n) => a + n - 1, 0), `; copies per round ${rounds.map((r) => Math.max(...r)).join(',')}`);
    assert.ok(all.every((n) => n <= 2), 'at most one duplicate');
    assert.ok(rounds.slice(1).flat().every((n) => n === 1), 'after the first timeout, requests wait long enough: no more duplicates');
    assert.match(end.stderr, /records exported 32, failed 0, dropped 0; /);
  });
});
