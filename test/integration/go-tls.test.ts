/**
 * HTTPS of Go programs with real eBPF: uprobes on crypto/tls.(*Conn).Write
 * and Read (entry and every return instruction), joined to their sockets
 * by goroutine, exported over OTLP/gRPC to a real receiver and decoded.
 * The programs are built here from the standard library with the system Go
 * (Debian golang-go), and grpc-go from Debian's golang-google-grpc-dev.
 * Every capture also checks that the parser never had to resync, so no
 * ciphertext reached it.
 *
 * Not covered: Go releases other than the installed one; Go < 1.17 and
 * non-amd64 programs are only recognised and reported (unit and component
 * tests), never probed.
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, before, describe, it, type TestContext } from 'node:test';
import type { FlatRecord } from '../../src/common/flat-record';
import { capture, headers } from '../helpers/capture';
import { DEBIAN_GOCODE, GO_GRPC, GO_HTTPS, buildGo, goUnavailable } from '../helpers/go';
import { attr, background, byPid, freePort, gated, makeCertificate, requireEbpf, run, waitUntil } from '../helpers/integration';

/** Skips (reason printed) when Go programs cannot be built; fails instead under HEADERTAP_REQUIRE_EBPF=1. */
function requireGo(t: TestContext): boolean {
  const reason = goUnavailable();
  if (!reason) return true;
  if (process.env.HEADERTAP_REQUIRE_EBPF === '1') throw new Error(reason);
  process.stderr.write(`# SKIP ${t.name}: ${reason}\n`);
  t.skip(reason);
  return false;
}

/** Starts a Go server (before the agent: a long-lived program) and waits until it listens. */
async function goServer(t: TestContext, bin: string, args: string[]): Promise<number> {
  const server = background(t, bin, args);
  await waitUntil(() => server.output().includes('listening'), `${path.basename(bin)} listening`);
  return server.pid!;
}

/** The startup line names `bin` among the Go programs with probes. */
function probedAtStart(stderr: string, bin: string): boolean {
  const line = /^headertap: TLS: .*$/m.exec(stderr)?.[0] ?? '';
  return new RegExp(`Go crypto/tls probes on (.*, )?${bin.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')} \\(go1\\.\\d+`).test(line);
}

function summary(records: FlatRecord[], pid: number): unknown[] {
  return byPid(records, pid).map((r) => [
    attr(r, 'headertap.role'),
    attr(r, 'url.scheme'),
    attr(r, 'network.protocol.version'),
    attr(r, 'url.path'),
    headers(r, 'request', 'x-seq'),
    attr(r, 'http.response.status_code'),
  ]);
}

describe('capture: HTTPS of Go programs (crypto/tls uprobes) with real eBPF', () => {
  let dir = '';
  let goBin = '';
  let goStripped = '';
  let cert = '';
  let key = '';

  before(() => {
    if (goUnavailable()) return;
    dir = mkdtempSync(path.join(tmpdir(), 'ht-gotls-'));
    goBin = buildGo(dir, 'gohttps', GO_HTTPS);
    goStripped = buildGo(dir, 'gohttps-stripped', GO_HTTPS, { stripped: true });
    ({ cert, key } = makeCertificate(dir));
  });
  after(() => {
    if (dir) rmSync(dir, { recursive: true, force: true });
  });

  it('HTTP/1.1: a Go server running before the agent, and a Go client that is a new program started after it', async (t) => {
    if (!requireEbpf(t) || !requireGo(t)) return;
    const port = await freePort();
    const serverPid = await goServer(t, goBin, ['server', `127.0.0.1:${port}`, cert, key, 'h1']);
    // A copy is a new file (new inode) the agent cannot have probed at startup.
    const clientBin = path.join(dir, `go-late-client-${port}`);
    copyFileSync(goBin, clientBin);
    const cap = await capture(t, [port]);
    assert.ok(probedAtStart(cap.agent.stderr(), goBin), cap.agent.stderr());
    assert.doesNotMatch(cap.agent.stderr(), new RegExp(clientBin));

    const client = gated(t, clientBin, ['client', `https://127.0.0.1:${port}/go/h1?x=1`, '3', 'h1', 'gate']);
    await waitUntil(() => cap.agent.stderr().includes(`TLS: probes on Go program ${clientBin} (go1.`), 'the agent probing the new Go program');
    const end = await client.go();
    assert.equal(end.code, 0, end.stderr);
    await cap.sink.waitFor((rs) => rs.length >= 6, 15000, '3 client and 3 server records');
    const records = await cap.finish();
    assert.equal(records.length, 6, 'one record per side per request, nothing from the ciphertext');
    for (const [pid, role] of [
      [client.pid, 'client'],
      [serverPid, 'server'],
    ] as const) {
      assert.deepEqual(summary(records, pid), [0, 1, 2].map((i) => [role, 'https', '1.1', '/go/h1', [String(i)], 200]));
      for (const r of byPid(records, pid)) {
        assert.equal(attr(r, 'url.query'), 'x=1');
        assert.deepEqual(headers(r, 'request', 'x-from'), ['go-client']);
        assert.deepEqual(headers(r, 'response', 'x-go-server'), ['HTTP/1.1']);
        assert.equal(attr(r, 'server.port'), port);
        assert.equal(attr(r, 'network.type'), 'ipv4');
      }
    }
    // Joined to the right socket: both ends name the same TCP connection (keep-alive: one).
    const c = byPid(records, client.pid);
    const s = byPid(records, serverPid);
    assert.equal(new Set(c.map((r) => attr(r, 'network.local.port'))).size, 1);
    assert.equal(attr(c[0], 'network.peer.port'), port);
    assert.equal(attr(s[0], 'network.local.port'), port);
    assert.equal(attr(s[0], 'network.peer.port'), attr(c[0], 'network.local.port'));
    assert.match(cap.stderr(), /ciphertext connections 0/, 'the handshake never reached the parser as plain data');
  });

  it('HTTP/2 (h2 by ALPN): a stripped Go server and a Go client, headers from HPACK', async (t) => {
    if (!requireEbpf(t) || !requireGo(t)) return;
    const port = await freePort();
    const serverPid = await goServer(t, goStripped, ['server', `127.0.0.1:${port}`, cert, key, 'h2']);
    const cap = await capture(t, [port]);
    assert.ok(probedAtStart(cap.agent.stderr(), goStripped), cap.agent.stderr());
    const client = gated(t, goBin, ['client', `https://127.0.0.1:${port}/go/h2`, '2', 'h2', 'gate']);
    await waitUntil(() => cap.agent.stderr().includes(`TLS: probes on Go program ${goBin} (go1.`), 'the agent probing the Go client');
    const end = await client.go();
    assert.equal(end.code, 0, end.stderr);
    await cap.sink.waitFor((rs) => rs.length >= 4, 15000, '2 client and 2 server records');
    const records = await cap.finish();
    assert.equal(records.length, 4);
    for (const [pid, role] of [
      [client.pid, 'client'],
      [serverPid, 'server'],
    ] as const) {
      assert.deepEqual(summary(records, pid), [0, 1].map((i) => [role, 'https', '2', '/go/h2', [String(i)], 200]));
      for (const r of byPid(records, pid)) {
        assert.deepEqual(headers(r, 'response', 'x-go-server'), ['HTTP/2.0']);
        assert.equal(attr(r, 'user_agent.original'), 'Go-http-client/2.0');
      }
    }
    assert.equal(attr(byPid(records, serverPid)[0], 'network.peer.port'), attr(byPid(records, client.pid)[0], 'network.local.port'));
  });

  it('curl --http2 -> stripped Go server: the server record from Go, the client record from OpenSSL', async (t) => {
    if (!requireEbpf(t) || !requireGo(t)) return;
    const port = await freePort();
    const serverPid = await goServer(t, goStripped, ['server', `127.0.0.1:${port}`, cert, key, 'h2']);
    const cap = await capture(t, [port]);
    const curl = await run('curl', ['-sSk', '--http2', '-H', 'X-Custom: curl-to-go', `https://127.0.0.1:${port}/from-curl`]);
    assert.equal(curl.code, 0, curl.stderr);
    await cap.sink.waitFor((rs) => rs.length >= 2, 15000, 'client and server records');
    const records = await cap.finish();
    const server = byPid(records, serverPid);
    assert.equal(server.length, 1);
    assert.equal(attr(server[0], 'headertap.role'), 'server');
    assert.equal(attr(server[0], 'network.protocol.version'), '2');
    assert.deepEqual(headers(server[0], 'request', 'x-custom'), ['curl-to-go']);
    assert.equal(byPid(records, curl.pid).length, 1);
  });

  it('gRPC: grpc-go over TLS, client and server, rpc attributes and metadata', async (t) => {
    if (!requireEbpf(t) || !requireGo(t)) return;
    let grpcBin: string;
    try {
      grpcBin = buildGo(dir, 'gogrpc', GO_GRPC, { gopath: [DEBIAN_GOCODE] });
    } catch (err) {
      const reason = `grpc-go cannot be built offline (Debian golang-google-grpc-dev): ${(err as Error).message.split('\n').slice(0, 2).join(' ')}`;
      if (process.env.HEADERTAP_REQUIRE_EBPF === '1') throw new Error(reason);
      process.stderr.write(`# SKIP ${t.name}: ${reason}\n`);
      t.skip(reason);
      return;
    }
    const port = await freePort();
    const serverPid = await goServer(t, grpcBin, ['server', `127.0.0.1:${port}`, cert, key]);
    const cap = await capture(t, [port]);
    // The same file as the server: already probed.
    const client = await run(grpcBin, ['client', `127.0.0.1:${port}`, '2']);
    assert.equal(client.code, 0, client.stderr);
    await cap.sink.waitFor((rs) => rs.length >= 6, 15000, '3 gRPC records per side');
    const records = await cap.finish();
    for (const [pid, role] of [
      [client.pid, 'client'],
      [serverPid, 'server'],
    ] as const) {
      const mine = byPid(records, pid);
      assert.equal(mine.length, 3, `${role}: 3 calls`);
      for (const r of mine) {
        assert.equal(attr(r, 'headertap.role'), role);
        assert.equal(attr(r, 'url.scheme'), 'https');
        assert.equal(attr(r, 'network.protocol.version'), '2');
        assert.equal(attr(r, 'url.path'), '/grpc.health.v1.Health/Check');
        assert.equal(attr(r, 'rpc.system.name'), 'grpc');
        assert.deepEqual(headers(r, 'request', 'x-from'), ['go-grpc']);
        assert.deepEqual(headers(r, 'request', 'content-type'), ['application/grpc']);
      }
      assert.deepEqual(mine.map((r) => attr(r, 'rpc.method')), ['grpc.health.v1.Health/Check', 'grpc.health.v1.Health/Check', 'grpc.health.v1.Health/Check']);
      assert.deepEqual(mine.map((r) => attr(r, 'rpc.status_code')), ['OK', 'OK', 'NOT_FOUND'], 'grpc-status from the trailers');
    }
  });
});
