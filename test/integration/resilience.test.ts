/**
 * Real eBPF under trouble: a collector that is down when the agent starts,
 * shutdown while records are still pending (and the spool that keeps them),
 * the loader killed, hostile bytes on an HTTP port, a flood larger than the
 * ring buffer, and the agent's own metrics. Loopback only; each test filters
 * on ports it owns.
 */
import assert from 'node:assert/strict';
import { readFileSync, mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import type { FlatRecord } from '../../src/common/flat-record';
import { background, freePort, requireCommand, requireEbpf, run, startAgent, startNginx, waitForPort, waitForStderr } from '../helpers/integration';
import { startOtlpSink } from '../helpers/otlp-sink';

const CURL = '/usr/bin/curl';

function paths(records: FlatRecord[]): string[] {
  return records.map((r) => String(r.attributes['url.path']));
}

async function curl(url: string, extra: string[] = []): Promise<void> {
  const r = await run(CURL, ['-sS', '-o', '/dev/null', ...extra, url]);
  assert.equal(r.code, 0, `curl ${url}: ${r.stderr}`);
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Peak resident memory (VmHWM) of a process, in KiB. */
function peakRssKb(pid: number): number {
  const m = /^VmHWM:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/** A plain node HTTP server, answering every request. */
const NODE_SERVER = `
const http = require('http');
http.createServer({ maxHeaderSize: 4 << 20 }, (req, res) => { res.setHeader('X-Server', 'node'); res.end('ok'); })
  .on('clientError', (err, socket) => socket.destroy())
  .listen(Number(process.argv[1]), '127.0.0.1', () => console.log('listening'));
`;

/** Sends hostile bytes, one connection each, then exits. */
const HOSTILE_CLIENT = `
const net = require('net');
const port = Number(process.argv[1]);
const big = (n, c) => Buffer.alloc(n, c);
const payloads = [
  ['binary garbage', Buffer.from(Array.from({ length: 65536 }, (_, i) => (i * 7919 + 13) & 0xff))],
  ['no CRLF at all', big(1 << 20, 0x41)],
  ['1 MB header line', Buffer.concat([Buffer.from('GET /huge-line HTTP/1.1\\r\\nHost: h\\r\\nX-Big: '), big(1 << 20, 0x62), Buffer.from('\\r\\n\\r\\n')])],
  ['NUL bytes', Buffer.concat([Buffer.from('GET /nul HTTP/1.1\\r\\nHost: h\\r\\nX-Nul: a'), big(4096, 0), Buffer.from('\\r\\n\\r\\n')])],
  ['huge header count', Buffer.from('GET /many HTTP/1.1\\r\\nHost: h\\r\\n' + 'x-h: v\\r\\n'.repeat(50000) + '\\r\\n')],
  ['invalid UTF-8', Buffer.concat([Buffer.from('GET /bad-utf8 HTTP/1.1\\r\\nHost: h\\r\\nX-Bad: '), Buffer.from([0xff, 0xfe, 0x41, 0xc3, 0x28]), Buffer.from('\\r\\nConnection: close\\r\\n\\r\\n')])],
];
(async () => {
  for (const [name, bytes] of payloads) {
    await new Promise((resolve) => {
      const s = net.connect(port, '127.0.0.1');
      s.on('error', resolve);
      s.on('close', resolve);
      s.on('data', () => {});
      s.write(bytes, () => setTimeout(() => s.end(), 100));
      setTimeout(() => s.destroy(), 3000);
    });
  }
})();
`;

describe('resilience with real eBPF', () => {
  it('collector down at start, up 3 s later: every record arrives', async (t) => {
    if (!requireEbpf(t)) return;
    const nginx = await startNginx(t);
    const port = await freePort();
    const agent = await startAgent(t, ['--endpoint', `http://127.0.0.1:${port}`, '--port', String(nginx.port), '--no-self-metrics']);
    for (let i = 0; i < 10; i++) await curl(`http://127.0.0.1:${nginx.port}/down-${i}`);
    await waitForStderr(agent, /failed \(UNAVAILABLE\).*retrying/);
    await sleep(3000);
    const sink = await startOtlpSink('grpc', '127.0.0.1', port);
    t.after(() => sink.stop());
    const records = await sink.waitFor((rs) => rs.length >= 20, 30000, '10 client and 10 server records');
    const end = await agent.stop('SIGTERM');
    assert.equal(end.code, 0, end.stderr);
    const got = paths(sink.records()).sort();
    const want = Array.from({ length: 10 }, (_, i) => [`/down-${i}`, `/down-${i}`]).flat().sort();
    assert.deepEqual(got, want, 'both sides of every request, once');
    assert.equal(records.length >= 20, true);
    assert.match(end.stderr, /records exported 20, failed 0, dropped 0; retries [1-9]\d*/);
  });

  it('SIGTERM with the collector down: exits 0 within --shutdown-timeout; --spool-dir keeps the records for the next run', async (t) => {
    if (!requireEbpf(t)) return;
    const nginx = await startNginx(t);
    const port = await freePort();
    const spool = mkdtempSync(path.join(tmpdir(), 'ht-spool-'));
    const common = ['--endpoint', `http://127.0.0.1:${port}`, '--port', String(nginx.port), '--no-self-metrics', '--stats-interval', '1'];

    // Without a spool: counted as dropped at shutdown.
    const plain = await startAgent(t, [...common, '--shutdown-timeout', '2']);
    for (let i = 0; i < 3; i++) await curl(`http://127.0.0.1:${nginx.port}/lost-${i}`);
    await waitForStderr(plain, /headertap stats: exchanges 6 /);
    const plainEnd = await plain.stop('SIGTERM');
    assert.equal(plainEnd.code, 0, plainEnd.stderr);
    assert.match(plainEnd.stderr, /6 records not delivered to http:\/\/127\.0\.0\.1:\d+ before the shutdown timeout/);
    assert.match(plainEnd.stderr, /records exported 0, failed 0, dropped 6 \(shutdown 6\)/);

    // With a spool: kept on disk, delivered by the next run, exactly once.
    const first = await startAgent(t, [...common, '--shutdown-timeout', '2', '--spool-dir', spool]);
    for (let i = 0; i < 3; i++) await curl(`http://127.0.0.1:${nginx.port}/spooled-${i}`);
    await waitForStderr(first, /headertap stats: exchanges 6 /);
    const firstEnd = await first.stop('SIGTERM');
    assert.equal(firstEnd.code, 0, firstEnd.stderr);
    assert.match(firstEnd.stderr, /records exported 0, failed 0, dropped 0; retries \d+, buffered 0, spooled 6/);

    const sink = await startOtlpSink('grpc', '127.0.0.1', port);
    t.after(() => sink.stop());
    const second = await startAgent(t, [...common, '--spool-dir', spool]);
    await sink.waitFor((rs) => rs.length >= 6, 20000, 'the 6 spooled records');
    const secondEnd = await second.stop('SIGINT');
    assert.equal(secondEnd.code, 0, secondEnd.stderr);
    assert.match(secondEnd.stderr, /6 records from an earlier run wait in/);
    assert.deepEqual(paths(sink.records()).sort(), ['/spooled-0', '/spooled-0', '/spooled-1', '/spooled-1', '/spooled-2', '/spooled-2']);
    assert.match(secondEnd.stderr, /records exported 6, failed 0, dropped 0; retries 0, buffered 0, spooled 0/);
  });

  it('kill the loader: the agent restarts it, says why, and capture resumes', async (t) => {
    if (!requireEbpf(t)) return;
    const nginx = await startNginx(t);
    const sink = await startOtlpSink('grpc');
    t.after(() => sink.stop());
    const agent = await startAgent(t, ['--endpoint', sink.endpoint, '--port', String(nginx.port), '--no-self-metrics']);
    const loaderPid = Number(/loader pid (\d+)/.exec(agent.stderr())![1]);
    await curl(`http://127.0.0.1:${nginx.port}/before-kill`);
    await sink.waitFor((rs) => paths(rs).filter((p) => p === '/before-kill').length === 2, 15000, 'records before the kill');
    process.kill(loaderPid, 'SIGKILL');
    const m = await waitForStderr(agent, /eBPF loader restarted \(pid (\d+)\); capture resumed/);
    assert.notEqual(Number(m[1]), loaderPid);
    assert.match(agent.stderr(), /eBPF loader stopped: killed by SIGKILL; restarting it in 1\.0 s \(restart 1\)/);
    await curl(`http://127.0.0.1:${nginx.port}/after-kill`);
    await sink.waitFor((rs) => paths(rs).filter((p) => p === '/after-kill').length === 2, 15000, 'records after the restart');
    const end = await agent.stop('SIGINT');
    assert.equal(end.code, 0, end.stderr);
    assert.match(end.stderr, /loader restarts 1/);
  });

  it('hostile bytes on an HTTP port never crash or wedge the agent; a normal request is still captured', async (t) => {
    if (!requireEbpf(t)) return;
    const port = await freePort();
    const server = background(t, process.execPath, ['-e', NODE_SERVER, String(port)]);
    await waitForPort(port);
    const sink = await startOtlpSink('grpc');
    t.after(() => sink.stop());
    const agent = await startAgent(t, ['--endpoint', sink.endpoint, '--port', String(port), '--no-self-metrics']);
    const hostile = await run(process.execPath, ['-e', HOSTILE_CLIENT, String(port)], { timeoutMs: 60000 });
    assert.equal(hostile.code, 0, hostile.stderr);
    await curl(`http://127.0.0.1:${port}/after-garbage`, ['-H', 'X-Check: fine']);
    const records = await sink.waitFor(
      (rs) => paths(rs).filter((p) => p === '/after-garbage').length === 2,
      20000,
      'client and server records of the request after the garbage',
    );
    const end = await agent.stop('SIGINT');
    assert.equal(end.code, 0, `agent alive until told to stop; stderr:\n${end.stderr}`);
    assert.doesNotMatch(end.stderr, /\n\s+at |unexpected error/, 'no crash, no stack trace');
    const after = records.find((r) => r.attributes['url.path'] === '/after-garbage' && r.attributes['headertap.role'] === 'server')!;
    assert.deepEqual(after.attributes['http.request.header.x-check'], ['fine']);
    // Invalid UTF-8 is exported as Latin-1 text: every byte kept, nothing mangled into U+FFFD.
    const bad = sink.records().find((r) => r.attributes['url.path'] === '/bad-utf8' && r.attributes['headertap.role'] === 'client');
    assert.ok(bad, 'the request with invalid UTF-8 was recorded');
    assert.deepEqual(bad.attributes['http.request.header.x-bad'], ['\u00ff\u00feA\u00c3(']);
    // The huge-count request is recorded with its headers cut at the limit, and says so.
    const many = sink.records().find((r) => r.attributes['url.path'] === '/many' && r.attributes['headertap.role'] === 'client');
    assert.ok(many, 'the request with 50 000 headers was recorded');
    assert.equal(many.attributes['headertap.truncated'], true);
    assert.ok((many.attributes['http.request.header.x-h'] as unknown[]).length < 50000);
    assert.match(end.stderr, /parser resyncs [1-9]\d*/, 'the garbage was seen and counted');
    void server;
  });

  it('a flood larger than the ring buffer: loss counted per CPU, agent alive, memory bounded', async (t) => {
    if (!requireEbpf(t) || !requireCommand(t, '/usr/bin/wrk')) return;
    const nginx = await startNginx(t);
    const sink = await startOtlpSink('grpc');
    t.after(() => sink.stop());
    const agent = await startAgent(t, ['--endpoint', sink.endpoint, '--port', String(nginx.port), '--ringbuf-kb', '64', '--stats-interval', '1', '--no-self-metrics']);
    const wrk = await run('/usr/bin/wrk', ['-t2', '-c64', '-d4s', `http://127.0.0.1:${nginx.port}/flood`], { timeoutMs: 30000 });
    assert.equal(wrk.code, 0, wrk.stderr);
    // Let the agent work through the backlog (two stats lines with the same event count), then check capture still works.
    for (let prev = ''; ; ) {
      await sleep(1500);
      const counts = [...agent.stderr().matchAll(/^headertap stats: .*kernel events (\d+)/gm)].map((m) => m[1]);
      if (counts.length && counts[counts.length - 1] === prev) break;
      prev = counts[counts.length - 1] ?? '';
    }
    await curl(`http://127.0.0.1:${nginx.port}/after-flood`);
    await sink.waitFor((rs) => paths(rs).includes('/after-flood'), 30000, 'a record after the flood');
    const peakKb = peakRssKb(agent.pid);
    const end = await agent.stop('SIGINT');
    assert.equal(end.code, 0, end.stderr);
    const summary = /^headertap stopped: .*$/m.exec(end.stderr)![0];
    process.stderr.write(`# flood: ${/Requests\/sec:\s+\S+/.exec(wrk.stdout)?.[0]}; agent peak RSS ${Math.round(peakKb / 1024)} MiB\n# ${summary}\n`);
    const lost = Number(/lost (\d+)/.exec(summary)![1]);
    assert.ok(lost > 0, `the 64 KiB ring buffer overflowed and it was counted: ${summary}`);
    const perCpu = [...summary.matchAll(/cpu(\d+) (\d+)/g)].reduce((n, m) => n + Number(m[2]), 0);
    assert.equal(perCpu, lost, 'per-CPU losses add up to the total');
    assert.ok(peakKb < 1024 * 1024, `agent peak RSS ${peakKb} KiB stays under 1 GiB`);
  });

  it("exports its own counters as OTLP metrics under its own resource", async (t) => {
    if (!requireEbpf(t)) return;
    const nginx = await startNginx(t);
    const sink = await startOtlpSink('grpc');
    t.after(() => sink.stop());
    const agent = await startAgent(t, ['--endpoint', sink.endpoint, '--port', String(nginx.port), '--stats-interval', '1', '--service-name', 'ht-self-test']);
    for (let i = 0; i < 3; i++) await curl(`http://127.0.0.1:${nginx.port}/m-${i}`);
    await sink.waitFor((rs) => rs.length >= 6, 15000, 'the records');
    await waitForStderr(agent, /^headertap stats: exchanges 6 /m);
    const end = await agent.stop('SIGINT');
    assert.equal(end.code, 0, end.stderr);
    const last = (name: string) => sink.metrics.filter((p) => p.name === name).pop();
    assert.equal(last('headertap.exchanges')?.value, 6, 'the final export has the final counts');
    assert.equal(last('headertap.records.exported')?.value, 6);
    assert.equal(last('headertap.exchanges')?.resource['service.name'], 'ht-self-test');
    assert.ok(sink.metrics.some((p) => p.name === 'headertap.records.dropped' && p.attributes.reason === 'buffer_full' && p.value === 0));
    for (const name of ['headertap.events.received', 'headertap.buffer.records', 'headertap.ringbuf.lost', 'headertap.parse.errors', 'headertap.export.retries']) {
      assert.ok(last(name), `${name} is exported`);
    }
    // Its own counters; the request metrics of what it observed are under the observed processes' resources.
    const own = sink.metrics.filter((p) => p.name.startsWith('headertap.'));
    assert.ok(own.length > 0 && own.every((p) => p.resource['service.name'] === 'ht-self-test'), "every self-metrics point under the agent's own resource");
    assert.ok(sink.metrics.filter((p) => !own.includes(p)).every((p) => p.name.endsWith('.duration') && p.resource['service.name'] !== 'ht-self-test'), 'the rest are request metrics of workloads');
    assert.match(end.stderr, /^headertap stats: exchanges \d+/m, 'a stats line every --stats-interval');
  });

  it('--no-self-metrics sends no metrics', async (t) => {
    if (!requireEbpf(t)) return;
    const sink = await startOtlpSink('grpc');
    t.after(() => sink.stop());
    const agent = await startAgent(t, ['--endpoint', sink.endpoint, '--port', '1', '--stats-interval', '1', '--no-self-metrics']);
    await sleep(2500);
    const end = await agent.stop('SIGINT');
    assert.equal(end.code, 0, end.stderr);
    assert.deepEqual(sink.metrics, []);
  });
});

/** Runs `headertap run` in a private mount namespace where `setup` changed /sys/kernel first. */
function inMountNamespace(setup: string, args: string[]) {
  const headertap = path.join(__dirname, '..', '..', '..', 'bin', 'headertap');
  return run('/usr/bin/unshare', ['-m', '--propagation', 'private', 'sh', '-ec', `${setup}\nexec "$0" "$@"`, process.execPath, headertap, 'run', ...args], {
    timeoutMs: 30000,
  });
}

function assertOneLine(r: { code: number | null; stderr: string }, re: RegExp): void {
  assert.equal(r.code, 2, `exit 2; stderr:\n${r.stderr}`);
  const lines = r.stderr.trimEnd().split('\n');
  assert.equal(lines.length, 1, `one line:\n${r.stderr}`);
  assert.match(lines[0], re);
}

describe('bad environment, for real (private mount namespaces)', () => {
  it('no BTF: one line naming it and the fix, exit 2', async (t) => {
    if (!requireEbpf(t) || !requireCommand(t, '/usr/bin/unshare')) return;
    const r = await inMountNamespace('mount -t tmpfs none /sys/kernel', ['--port', '1']);
    assertOneLine(r, /^headertap: this kernel has no BTF \(\/sys\/kernel\/btf\/vmlinux is missing\); headertap needs a kernel built with CONFIG_DEBUG_INFO_BTF=y/);
  });

  it('tracefs cannot be mounted: one line naming it and the fix, exit 2', async (t) => {
    if (!requireEbpf(t) || !requireCommand(t, '/usr/bin/unshare')) return;
    // Keep BTF, hide tracefs (and debugfs) and the place to mount it.
    const setup = [
      'd=$(mktemp -d)',
      'mount --bind /sys/kernel/btf "$d"',
      'mount -t tmpfs none /sys/kernel',
      'mkdir /sys/kernel/btf',
      'mount --move "$d" /sys/kernel/btf',
    ].join('\n');
    const r = await inMountNamespace(setup, ['--port', '1']);
    assertOneLine(r, /^headertap: cannot mount tracefs at \/sys\/kernel\/tracing: No such file or directory; mount it with `mount -t tracefs tracefs \/sys\/kernel\/tracing`/);
  });
});
