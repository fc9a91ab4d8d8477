/**
 * What runs inside each kernel of the matrix (test/kernels/run.ts boots it):
 * one headertap agent exporting OTLP/gRPC to a real receiver in this
 * process, and four kinds of traffic on 127.0.0.1, each checked on the
 * decoded records of both ends:
 *   - plain HTTP/1.1: curl -> a node http server (syscall tracepoints)
 *   - TLS through libssl: curl https -> a node https server (uprobes on
 *     libssl.so for curl, on the OpenSSL inside /usr/bin/node for the server)
 *   - node's built-in TLS: a node https client -> the same server
 *   - HTTP/2 over TLS (h2 by ALPN): a node http2 client -> a node http2 server
 *   - Go's crypto/tls (HT_GUEST_GO_BIN, built by run.ts): a Go HTTPS server
 *     started before the agent and a Go client of the same file (HTTP/1.1)
 * Prints `# ht-kernel ready_ms N` (agent start to its ready line),
 * `# ht-kernel features ...` (from the ready line) and `# ht-kernel verified
 * N instructions` (the loader's --verifier-stats) for run.ts. When the agent
 * does not start, runs it again with --verbose and prints libbpf's output
 * (the verifier log). Not covered here: nginx, python, gRPC and the other
 * integration tests' cases, which run on the host's kernel.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { it, type TestContext } from 'node:test';
import type { FlatRecord } from '../../src/common/flat-record';
import { capture, headers } from '../helpers/capture';
import { HEADERTAP, attr, background, byPid, freePort, makeCertificate, run, verifierStats, waitUntil } from '../helpers/integration';

/** Three servers in one process; prints their ports as JSON once listening. */
const SERVERS = `
const fs = require('fs'), http = require('http'), https = require('https'), http2 = require('http2');
const [cert, key] = process.argv.slice(1).map((f) => fs.readFileSync(f));
const handler = (req, res) => {
  res.setHeader('x-kernel-server', String(req.headers['x-kernel-test'] ?? ''));
  res.end('hi ' + req.url);
};
const servers = [http.createServer(handler), https.createServer({ cert, key }, handler), http2.createSecureServer({ cert, key }, handler)];
Promise.all(servers.map((s) => new Promise((r) => s.listen(0, '127.0.0.1', r)))).then(() =>
  console.log(JSON.stringify(servers.map((s) => s.address().port))));
`;

/** node's own TLS (https.get), then HTTP/2 over TLS, one after the other. */
const CLIENT = `
const https = require('https'), http2 = require('http2');
const [tlsPort, h2Port] = process.argv.slice(1).map(Number);
https.get({ host: '127.0.0.1', port: tlsPort, path: '/node-tls?k=1', rejectUnauthorized: false, headers: { 'x-kernel-test': 'node-tls' } }, (res) => {
  res.resume();
  res.on('end', () => {
    if (res.statusCode !== 200) process.exit(1);
    const c = http2.connect('https://127.0.0.1:' + h2Port, { rejectUnauthorized: false });
    const r = c.request({ ':path': '/h2?k=1', 'x-kernel-test': 'h2' });
    r.on('response', (h) => { if (h[':status'] !== 200) process.exit(2); });
    r.resume();
    r.on('end', () => c.close());
  });
});
`;

/** A background child killed when the test ends; resolves with its first stdout line. */
function startServers(t: TestContext, cert: string, key: string): Promise<{ pid: number; ports: number[] }> {
  const child = spawn(process.execPath, ['-e', SERVERS, cert, key], { stdio: ['ignore', 'pipe', 'inherit'] });
  t.after(() => child.kill('SIGKILL'));
  return new Promise((resolve, reject) => {
    let out = '';
    child.stdout.on('data', (c: Buffer) => {
      out += c.toString();
      if (out.includes('\n')) resolve({ pid: child.pid!, ports: JSON.parse(out) as number[] });
    });
    child.once('exit', (code) => reject(new Error(`the servers exited (${code}) before listening`)));
  });
}

/** The agent again with --verbose, briefly, to show why it cannot load (libbpf's log, the verifier's). */
async function verboseStart(): Promise<string> {
  const r = await run(process.execPath, [HEADERTAP, 'run', '--verbose', '--endpoint', 'http://127.0.0.1:9', '--port', '9'], { timeoutMs: 120000 });
  return r.stderr;
}

interface Case {
  name: string;
  path: string;
  scheme: 'http' | 'https';
  version: '1.1' | '2';
  clientPid: number;
}

function check(records: FlatRecord[], c: Case, serverPid: number): void {
  const mine = records.filter((r) => attr(r, 'url.path') === c.path);
  const client = byPid(mine, c.clientPid);
  const server = byPid(mine, serverPid);
  assert.equal(client.length, 1, `${c.name}: one client record (got ${client.length})`);
  assert.equal(server.length, 1, `${c.name}: one server record (got ${server.length})`);
  for (const [r, role] of [
    [client[0], 'client'],
    [server[0], 'server'],
  ] as const) {
    assert.equal(attr(r, 'headertap.role'), role, c.name);
    assert.equal(r.body, `GET ${c.path} -> 200`, c.name);
    assert.equal(attr(r, 'url.scheme'), c.scheme, `${c.name} ${role}: url.scheme`);
    assert.equal(attr(r, 'url.query'), 'k=1', `${c.name} ${role}: url.query`);
    assert.equal(attr(r, 'network.protocol.version'), c.version, `${c.name} ${role}: network.protocol.version`);
    assert.equal(attr(r, 'http.response.status_code'), 200, c.name);
    assert.deepEqual(headers(r, 'request', 'x-kernel-test'), [c.name], `${c.name} ${role}: request header`);
    assert.deepEqual(headers(r, 'response', 'x-kernel-server'), [c.name], `${c.name} ${role}: response header`);
  }
  assert.equal(attr(client[0], 'network.local.port'), attr(server[0], 'network.peer.port'), `${c.name}: one connection`);
}

/** Go's two requests on one keep-alive connection, seen from both ends through the crypto/tls probes. */
function checkGo(records: FlatRecord[], clientPid: number, serverPid: number, port: number): void {
  const mine = records.filter((r) => attr(r, 'url.path') === '/go-tls');
  for (const [pid, role] of [
    [clientPid, 'client'],
    [serverPid, 'server'],
  ] as const) {
    const rs = byPid(mine, pid);
    assert.equal(rs.length, 2, `go ${role}: two records (got ${rs.length})`);
    rs.forEach((r, i) => {
      assert.equal(attr(r, 'headertap.role'), role);
      assert.equal(r.body, 'GET /go-tls -> 200', `go ${role}`);
      assert.equal(attr(r, 'url.scheme'), 'https', `go ${role}: url.scheme`);
      assert.equal(attr(r, 'server.port'), port, `go ${role}: server.port`);
      assert.deepEqual(headers(r, 'request', 'x-from'), ['go-client'], `go ${role}: request header`);
      assert.deepEqual(headers(r, 'request', 'x-seq'), [String(i)], `go ${role}: in order`);
      assert.deepEqual(headers(r, 'response', 'x-go-server'), ['HTTP/1.1'], `go ${role}: response header`);
    });
  }
}

it(`headertap on ${process.env.HT_GUEST_KERNEL ?? 'this kernel'}: plain HTTP, TLS via libssl, node TLS, HTTP/2${process.env.HT_GUEST_GO_BIN ? ', Go TLS' : ''}`, async (t) => {
  process.stdout.write(`# ht-kernel uname ${readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim()}\n`);
  const dir = mkdtempSync(path.join(tmpdir(), 'ht-kernel-'));
  const { cert, key } = makeCertificate(dir);
  const servers = await startServers(t, cert, key);
  const [plainPort, tlsPort, h2Port] = servers.ports;
  // Go: the server before the agent, so the agent probes its file at start; the client runs the same file.
  const goBin = process.env.HT_GUEST_GO_BIN;
  const goPort = goBin ? await freePort() : undefined;
  let goServerPid: number | undefined;
  if (goBin) {
    const server = background(t, goBin, ['server', `127.0.0.1:${goPort}`, cert, key, 'h1']);
    await waitUntil(() => server.output().includes('listening'), 'the Go server listening', 120000);
    goServerPid = server.pid;
  }

  const t0 = Date.now();
  let cap: Awaited<ReturnType<typeof capture>>;
  try {
    cap = await capture(t, goPort ? [...servers.ports, goPort] : servers.ports);
  } catch (err) {
    process.stdout.write(`# the agent did not start; again with --verbose:\n${(await verboseStart()).replace(/^/gm, '# ')}\n`);
    throw err;
  }
  process.stdout.write(`# ht-kernel ready_ms ${Date.now() - t0}\n`);
  const ready = /^headertap ready.*$/m.exec(cap.agent.stderr())![0];
  process.stdout.write(`# ${ready}\n`);
  const kernel = /; kernel (\S+) \(([^)]*)\)$/.exec(ready);
  assert.ok(kernel, `the ready line names the kernel and its features: ${ready}`);
  process.stdout.write(`# ht-kernel features ${kernel[2]}\n`);
  assert.equal(kernel[1], readFileSync('/proc/sys/kernel/osrelease', 'utf8').trim());
  // What the kernel's own config says it has (run.ts reads it from the package).
  for (const want of (process.env.HT_GUEST_EXPECT_FEATURES ?? '').split(',').filter(Boolean)) {
    assert.ok(kernel[2].split('; ').includes(want), `ready line says ${want}: ${ready}`);
  }

  // For comparing kernels: how big the verified programs came out (the kernel rewrites and JITs them).
  const progs = await run('bpftool', ['-j', 'prog', 'show']);
  if (progs.code === 0) {
    const mine = (JSON.parse(progs.stdout) as { name?: string; bytes_xlated?: number; bytes_jited?: number }[]).filter((p) => p.name?.startsWith('ht_'));
    const sum = (k: 'bytes_xlated' | 'bytes_jited') => mine.reduce((n, p) => n + (p[k] ?? 0), 0);
    process.stdout.write(`# ht-kernel programs ${mine.length}, ${sum('bytes_xlated')} bytes translated, ${sum('bytes_jited')} bytes jited\n`);
  }

  const plain = await run('curl', ['-sS', '-H', 'X-Kernel-Test: plain', `http://127.0.0.1:${plainPort}/plain?k=1`]);
  assert.equal(plain.code, 0, plain.stderr);
  const libssl = await run('curl', ['-sSk', '--http1.1', '-H', 'X-Kernel-Test: libssl', `https://127.0.0.1:${tlsPort}/libssl?k=1`]);
  assert.equal(libssl.code, 0, libssl.stderr);
  const node = await run(process.execPath, ['-e', CLIENT, String(tlsPort), String(h2Port)]);
  assert.equal(node.code, 0, node.stderr);
  const go = goBin ? await run(goBin, ['client', `https://127.0.0.1:${goPort}/go-tls?k=1`, '2', 'h1'], { timeoutMs: 120000 }) : undefined;
  if (go) assert.equal(go.code, 0, go.stderr);

  const cases: Case[] = [
    { name: 'plain', path: '/plain', scheme: 'http', version: '1.1', clientPid: plain.pid },
    { name: 'libssl', path: '/libssl', scheme: 'https', version: '1.1', clientPid: libssl.pid },
    { name: 'node-tls', path: '/node-tls', scheme: 'https', version: '1.1', clientPid: node.pid },
    { name: 'h2', path: '/h2', scheme: 'https', version: '2', clientPid: node.pid },
  ];
  // Waits for two records of each case; a timeout names every record received.
  const goRecords = go ? 4 : 0; // two requests, both ends
  await cap.sink.waitFor(
    (rs) => cases.every((c) => rs.filter((r) => attr(r, 'url.path') === c.path).length >= 2) && rs.filter((r) => attr(r, 'url.path') === '/go-tls').length >= goRecords,
    60000,
    `two records per case${go ? ', four of Go' : ''}`,
  );
  // The process identity is read by programs of its own, reached by tail call (bpf/proc.bpf.h):
  // only they mark a process seen, so the curls in the map say they ran on this kernel.
  const seen = await run('bpftool', ['-j', 'map', 'dump', 'name', 'ht_procs_seen']);
  assert.equal(seen.code, 0, seen.stderr);
  const seenPids = (JSON.parse(seen.stdout) as { formatted?: { key: number } }[]).map((e) => e.formatted?.key); // with BTF: decoded
  for (const pid of [plain.pid, libssl.pid]) assert.ok(seenPids.includes(pid), `identity of ${pid} read in the kernel: ${seen.stdout.slice(0, 500)}`);
  const records = await cap.finish();
  try {
    for (const c of cases) check(records, c, servers.pid);
    if (go) {
      checkGo(records, go.pid, goServerPid!, goPort!);
      process.stdout.write(`# ht-kernel go-tls ${goRecords} records, both ends, through the crypto/tls probes\n`);
    }
    assert.equal(records.length, 2 * cases.length + goRecords, 'nothing else was recorded');
  } catch (err) {
    // What was recorded, one line each, and the agent's totals.
    for (const r of records) {
      const a = (k: string) => String(attr(r, k));
      process.stdout.write(
        `# record pid ${String(r.resource['process.pid'])} ${a('headertap.role')} ${String(r.body)} v${a('network.protocol.version')} ${a('url.scheme')} ` +
          `local ${a('network.local.port')} peer ${a('network.peer.port')} at ${r.time} duration ${a('headertap.duration_ns')} truncated ${a('headertap.truncated')}\n`,
      );
    }
    process.stdout.write(`${cap.stderr().replace(/^/gm, '# ')}\n`);
    throw err;
  }
  // What loading costs this kernel's verifier, per program (instructions processed).
  const { total, most } = await verifierStats(300000, 3);
  process.stdout.write(`# ht-kernel verified ${total} instructions; most ${most}\n`);
});
