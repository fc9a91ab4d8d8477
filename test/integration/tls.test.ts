/**
 * HTTPS with real eBPF: uprobes on the system libssl (curl, nginx, python)
 * and on the OpenSSL built into node, joined to their sockets, exported over
 * OTLP/gRPC to a real receiver and decoded. Every capture also checks that
 * the agent's parser never saw a byte it had to resync on, so ciphertext
 * cannot have reached it; one test runs with --no-tls and expects nothing.
 *
 * Not covered here: TLS libraries other than OpenSSL (not supported; see
 * README).
 */
import assert from 'node:assert/strict';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync } from 'node:fs';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { gunzipSync } from 'node:zlib';
import type { FlatRecord } from '../../src/common/flat-record';
import { decodeLogsRequest } from '../../src/receiver/decode';
import { capture, headers } from '../helpers/capture';
import {
  PYTHON,
  attr,
  background,
  byPid,
  freePort,
  gated,
  makeCertificate,
  requireEbpf,
  run,
  startAgent,
  startNginx,
  waitForPort,
  waitUntil,
} from '../helpers/integration';

/** With a second argument 'gate', waits for a line on stdin before the request. */
const NODE_HTTPS_CLIENT = `
const https = require('https');
const [port, gate] = process.argv.slice(1);
const go = () =>
  https.get({ host: '127.0.0.1', port: Number(port), path: '/from-node?via=tls', rejectUnauthorized: false, headers: { 'X-From': 'node-https' } }, (res) => {
    res.resume();
    res.on('end', () => process.exit(res.statusCode === 200 ? 0 : 1));
  });
if (gate === 'gate') process.stdin.once('data', go);
else go();
`;

const NODE_HTTPS_SERVER = `
const https = require('https');
const fs = require('fs');
const [port, cert, key] = process.argv.slice(1);
const server = https.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) }, (req, res) => {
  res.setHeader('X-Node-Server', 'tls');
  res.end('hi ' + req.url);
});
server.listen(Number(port), '127.0.0.1', () => console.log('listening'));
`;

/**
 * Three requests on one keep-alive HTTPS connection (python's ssl:
 * SSL_read_ex/SSL_write_ex). With 'gate', libssl is loaded and the script
 * waits for a line on stdin before connecting.
 */
const PY_HTTPS_KEEPALIVE = `
import http.client, ssl, sys
if sys.argv[2:] == ['gate']:
    sys.stdin.readline()
c = http.client.HTTPSConnection('127.0.0.1', int(sys.argv[1]), context=ssl._create_unverified_context())
for i in range(3):
    c.request('GET', f'/py/{i}', headers={'X-Seq': str(i)})
    r = c.getresponse()
    r.read()
    assert r.status == 200, r.status
c.close()
`;

function https(records: FlatRecord[]): FlatRecord[] {
  return records.filter((r) => attr(r, 'url.scheme') === 'https');
}

describe('capture: HTTPS through OpenSSL uprobes with real eBPF', () => {
  it('curl -k -> nginx: client record from curl and server record from nginx, url.scheme https', async (t) => {
    if (!requireEbpf(t)) return;
    const nginx = await startNginx(t, { tls: true });
    const cap = await capture(t, [nginx.port]);
    assert.match(cap.agent.stderr(), /^headertap: TLS: OpenSSL probes on .*libssl\.so/m);
    const curl = await run('curl', ['-sSk', '-H', 'X-Custom: over-tls', `https://127.0.0.1:${nginx.port}/secure/path?q=1`]);
    assert.equal(curl.code, 0, curl.stderr);
    await cap.sink.waitFor((rs) => rs.length >= 2, 15000, 'client and server records');
    const records = await cap.finish();
    assert.equal(records.length, 2, 'one record per side, nothing from the ciphertext');
    const client = byPid(records, curl.pid)[0];
    const server = records.find((r) => attr(r, 'headertap.role') === 'server');
    assert.ok(client && server, 'a client record from curl and a server record from nginx');
    assert.equal(server.resource['process.executable.name'], 'nginx');
    for (const r of [client, server]) {
      assert.equal(attr(r, 'url.scheme'), 'https');
      assert.equal(attr(r, 'url.path'), '/secure/path');
      assert.equal(attr(r, 'url.query'), 'q=1');
      assert.equal(attr(r, 'http.response.status_code'), 200);
      assert.deepEqual(headers(r, 'request', 'x-custom'), ['over-tls']);
      assert.deepEqual(headers(r, 'response', 'x-served-by'), ['nginx-test']);
      assert.equal(attr(r, 'server.port'), nginx.port);
      assert.equal(attr(r, 'network.type'), 'ipv4');
    }
    // Both ends name the same TCP connection.
    assert.equal(attr(client, 'network.peer.port'), nginx.port);
    assert.equal(attr(server, 'network.local.port'), nginx.port);
    assert.equal(attr(client, 'network.local.port'), attr(server, 'network.peer.port'));
    assert.match(cap.stderr(), /tls sessions 2, ciphertext connections 2/);
  });

  it('python HTTPSConnection keep-alive: 3 requests -> 3 client records in order (SSL_*_ex)', async (t) => {
    if (!requireEbpf(t)) return;
    const nginx = await startNginx(t, { tls: true });
    const cap = await capture(t, [nginx.port]);
    const py = await run(PYTHON, ['-c', PY_HTTPS_KEEPALIVE, String(nginx.port)]);
    assert.equal(py.code, 0, py.stderr);
    await cap.sink.waitFor((rs) => rs.length >= 6, 15000, '3 client and 3 server records');
    const records = await cap.finish();
    const mine = byPid(records, py.pid);
    assert.deepEqual(
      mine.map((r) => [attr(r, 'url.path'), headers(r, 'request', 'x-seq'), attr(r, 'url.scheme'), attr(r, 'headertap.role')]),
      [
        ['/py/0', ['0'], 'https', 'client'],
        ['/py/1', ['1'], 'https', 'client'],
        ['/py/2', ['2'], 'https', 'client'],
      ],
    );
    // One TCP connection: every record has the same client port.
    assert.equal(new Set(mine.map((r) => attr(r, 'network.local.port'))).size, 1);
    assert.equal(https(records).length, 6);
  });

  it("node https client -> nginx: node's built-in OpenSSL with memory BIOs, joined to the right socket", async (t) => {
    if (!requireEbpf(t)) return;
    const nginx = await startNginx(t, { tls: true });
    const cap = await capture(t, [nginx.port]);
    const node = await run(process.execPath, ['-e', NODE_HTTPS_CLIENT, String(nginx.port)]);
    assert.equal(node.code, 0, node.stderr);
    await cap.sink.waitFor((rs) => byPid(rs, node.pid).length >= 1 && rs.length >= 2, 15000, 'node client record');
    const records = await cap.finish();
    const client = byPid(records, node.pid);
    assert.equal(client.length, 1);
    const r = client[0];
    assert.equal(attr(r, 'headertap.role'), 'client');
    assert.equal(attr(r, 'url.scheme'), 'https');
    assert.equal(attr(r, 'url.path'), '/from-node');
    assert.deepEqual(headers(r, 'request', 'x-from'), ['node-https']);
    assert.equal(attr(r, 'http.response.status_code'), 200);
    assert.equal(attr(r, 'network.peer.port'), nginx.port);
    const server = records.find((x) => attr(x, 'headertap.role') === 'server')!;
    assert.equal(attr(server, 'network.peer.port'), attr(r, 'network.local.port'));
  });

  it('curl -k -> node https server: the server record from node', async (t) => {
    if (!requireEbpf(t)) return;
    const port = await freePort();
    const dir = mkdtempSync(path.join(tmpdir(), 'ht-node-tls-'));
    const { cert, key } = makeCertificate(dir);
    const server = background(t, process.execPath, ['-e', NODE_HTTPS_SERVER, String(port), cert, key]);
    await waitForPort(port);
    const cap = await capture(t, [port]);
    const curl = await run('curl', ['-sSk', '-H', 'X-Custom: to-node', `https://127.0.0.1:${port}/node-srv`]);
    assert.equal(curl.code, 0, curl.stderr);
    await cap.sink.waitFor((rs) => byPid(rs, server.pid!).length >= 1, 15000, 'node server record');
    const records = await cap.finish();
    const r = byPid(records, server.pid!)[0];
    assert.equal(attr(r, 'headertap.role'), 'server');
    assert.equal(attr(r, 'url.scheme'), 'https');
    assert.equal(attr(r, 'url.path'), '/node-srv');
    assert.deepEqual(headers(r, 'request', 'x-custom'), ['to-node']);
    assert.deepEqual(headers(r, 'response', 'x-node-server'), ['tls']);
    assert.equal(attr(r, 'network.local.port'), port);
    assert.equal(attr(r, 'network.peer.port'), attr(byPid(records, curl.pid)[0], 'network.local.port'));
  });

  it('programs started after the agent: a new program with OpenSSL built in, and a libssl loaded from elsewhere', async (t) => {
    if (!requireEbpf(t)) return;
    const nginx = await startNginx(t, { tls: true });
    // Copies are new files (new inodes) the agent could not have probed at startup.
    const dir = mkdtempSync(path.join(tmpdir(), 'ht-late-'));
    const lateNode = path.join(dir, 'late-node');
    copyFileSync(process.execPath, lateNode);
    const libDir = path.join(dir, 'lib');
    mkdirSync(libDir);
    copyFileSync('/usr/lib/x86_64-linux-gnu/libssl.so.3', path.join(libDir, 'libssl.so.3'));
    const cap = await capture(t, [nginx.port]);
    assert.doesNotMatch(cap.agent.stderr(), new RegExp(`probes on ${lateNode}`));

    // Started now, found at exec; each waits until the agent says it probed the
    // new file (a program that speaks TLS before that is missed: see README).
    const node = gated(t, lateNode, ['-e', NODE_HTTPS_CLIENT, String(nginx.port), 'gate']);
    await waitUntil(() => cap.agent.stderr().includes(`TLS: probes on ${lateNode} (SSL_write`), 'the agent probing the new program');
    const nodeEnd = await node.go();
    assert.equal(nodeEnd.code, 0, nodeEnd.stderr);
    // python links the system libssl by name; LD_LIBRARY_PATH makes it load the copy.
    const py = gated(t, PYTHON, ['-c', PY_HTTPS_KEEPALIVE, String(nginx.port), 'gate'], { LD_LIBRARY_PATH: libDir });
    await waitUntil(() => cap.agent.stderr().includes(`TLS: probes on ${libDir}/libssl.so.3`), 'the agent probing the loaded libssl');
    const pyEnd = await py.go();
    assert.equal(pyEnd.code, 0, pyEnd.stderr);
    await cap.sink.waitFor(
      (rs) => byPid(rs, node.pid).length >= 1 && byPid(rs, py.pid).length >= 3,
      15000,
      'records from both late programs',
    );
    const records = await cap.finish();
    assert.match(cap.stderr(), new RegExp(`TLS: probes on ${lateNode} \\(SSL_write`));
    assert.match(cap.stderr(), new RegExp(`TLS: probes on ${libDir}/libssl\\.so\\.3`));
    assert.deepEqual(
      byPid(records, node.pid).map((r) => [attr(r, 'url.scheme'), attr(r, 'url.path')]),
      [['https', '/from-node']],
    );
    assert.deepEqual(
      byPid(records, py.pid).map((r) => attr(r, 'url.path')),
      ['/py/0', '/py/1', '/py/2'],
    );
  });

  it('with --no-tls no record comes out of HTTPS: the ciphertext is recognised and ignored', async (t) => {
    if (!requireEbpf(t)) return;
    const nginx = await startNginx(t, { tls: true });
    const cap = await capture(t, [nginx.port], ['--no-tls']);
    assert.doesNotMatch(cap.agent.stderr(), /TLS: OpenSSL probes/);
    const curl = await run('curl', ['-sSk', `https://127.0.0.1:${nginx.port}/a`, `https://127.0.0.1:${nginx.port}/b`]);
    assert.equal(curl.code, 0, curl.stderr);
    // Plain HTTP next to it still works: the agent is capturing.
    const plain = await startNginx(t);
    const cap2 = await capture(t, [plain.port], ['--no-tls']);
    await run('curl', ['-sS', `http://127.0.0.1:${plain.port}/plain`]);
    await cap2.sink.waitFor((rs) => rs.length >= 2, 15000, 'plain records');
    await cap2.finish();
    const records = await cap.finish(); // parser resyncs 0: no ciphertext reached the parser
    assert.deepEqual(records, []);
    assert.match(cap.stderr(), /tls sessions 0, ciphertext connections 2/);
  });
});

const NODE_H2_TLS_CLIENT = `
const http2 = require('http2');
const c = http2.connect('https://127.0.0.1:' + process.argv[1], { rejectUnauthorized: false });
let done = 0;
for (const p of ['/h2/a', '/h2/b']) {
  const r = c.request({ ':path': p, 'x-from': 'node-h2-tls' });
  r.resume();
  r.on('end', () => { if (++done === 2) c.close(); });
}
`;

describe('capture: HTTP/2 over TLS (h2 by ALPN) with real eBPF', () => {
  it('curl --http2 -k -> nginx http2: both sides, network.protocol.version 2, url.scheme https', async (t) => {
    if (!requireEbpf(t)) return;
    const nginx = await startNginx(t, { tls: true, http2: true });
    const cap = await capture(t, [nginx.port]);
    const curl = await run('curl', ['-sSk', '--http2', '-H', 'X-Custom: h2-over-tls', `https://127.0.0.1:${nginx.port}/h2/path?x=1`]);
    assert.equal(curl.code, 0, curl.stderr);
    await cap.sink.waitFor((rs) => rs.length >= 2, 15000, 'client and server records');
    const records = await cap.finish();
    assert.equal(records.length, 2);
    assert.match(cap.stderr(), /http\/2 connections 2, records with unknown HPACK state 0/);
    const client = byPid(records, curl.pid)[0];
    const server = records.find((r) => attr(r, 'headertap.role') === 'server')!;
    assert.ok(client && server);
    for (const r of [client, server]) {
      assert.equal(attr(r, 'network.protocol.version'), '2');
      assert.equal(attr(r, 'url.scheme'), 'https');
      assert.equal(attr(r, 'url.path'), '/h2/path');
      assert.equal(attr(r, 'url.query'), 'x=1');
      assert.equal(attr(r, 'http.request.method'), 'GET');
      assert.equal(attr(r, 'http.response.status_code'), 200);
      assert.deepEqual(headers(r, 'request', 'x-custom'), ['h2-over-tls']);
      assert.deepEqual(headers(r, 'response', 'x-served-by'), ['nginx-test']);
    }
    assert.equal(attr(client, 'network.local.port'), attr(server, 'network.peer.port'));
  });

  it('node http2.connect over TLS -> nginx: two streams, two client records', async (t) => {
    if (!requireEbpf(t)) return;
    const nginx = await startNginx(t, { tls: true, http2: true });
    const cap = await capture(t, [nginx.port]);
    const node = await run(process.execPath, ['-e', NODE_H2_TLS_CLIENT, String(nginx.port)]);
    assert.equal(node.code, 0, node.stderr);
    await cap.sink.waitFor((rs) => byPid(rs, node.pid).length >= 2, 15000, 'two node client records');
    const records = await cap.finish();
    const mine = byPid(records, node.pid);
    assert.deepEqual(mine.map((r) => attr(r, 'url.path')).sort(), ['/h2/a', '/h2/b']);
    for (const r of mine) {
      assert.equal(attr(r, 'network.protocol.version'), '2');
      assert.equal(attr(r, 'url.scheme'), 'https');
      assert.deepEqual(headers(r, 'request', 'x-from'), ['node-h2-tls']);
      assert.equal(attr(r, 'network.peer.port'), nginx.port);
    }
  });
});

describe('own traffic over TLS', () => {
  it('never records its own HTTPS exports, neither its TLS writes nor the receiving end on this host', async (t) => {
    if (!requireEbpf(t)) return;
    const nginx = await startNginx(t, { tls: true });
    // An OTLP/HTTP receiver over HTTPS in this test process (node: memory-BIO TLS),
    // the far end of the agent's export connections.
    const dir = mkdtempSync(path.join(tmpdir(), 'ht-otlp-tls-'));
    const { cert, key } = makeCertificate(dir);
    const received: FlatRecord[] = [];
    const server = createHttpsServer({ cert: readFileSync(cert), key: readFileSync(key) }, (req, res) => {
      const body: Buffer[] = [];
      req.on('data', (c: Buffer) => body.push(c));
      req.on('end', () => {
        const raw = Buffer.concat(body);
        const payload = req.headers['content-encoding'] === 'gzip' ? gunzipSync(raw) : raw; // gzip: headertap's default
        if (req.url === '/v1/logs') received.push(...decodeLogsRequest(payload)); // (also its own metrics: /v1/metrics)
        res.writeHead(200, { 'content-type': 'application/x-protobuf' }).end();
      });
    });
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    t.after(() => server.close());
    const port = (server.address() as AddressInfo).port;
    const agent = await startAgent(t, ['--endpoint', `https://127.0.0.1:${port}`, '--protocol', 'http/protobuf'], {
      NODE_EXTRA_CA_CERTS: cert,
    }); // no filter at all
    for (let i = 0; i < 3; i++) {
      const curl = await run('curl', ['-sSk', `https://127.0.0.1:${nginx.port}/app/${i}`]);
      assert.equal(curl.code, 0, curl.stderr);
      await waitUntil(() => received.filter((r) => attr(r, 'url.path') === `/app/${i}`).length >= 2, `records of round ${i}`);
    }
    const end = await agent.stop();
    assert.equal(end.code, 0, end.stderr);
    assert.ok(received.filter((r) => attr(r, 'url.scheme') === 'https').length >= 6, 'HTTPS capture worked for other processes');
    // This agent's export connection, at either end. (Other OTLP exporters on the host are traffic like any other.)
    const own = received.filter(
      (r) =>
        r.resource['process.pid'] === agent.pid ||
        r.resource['process.pid'] === process.pid ||
        attr(r, 'network.peer.port') === port ||
        attr(r, 'network.local.port') === port,
    );
    assert.deepEqual(own, [], 'no record about headertap exporting');
  });
});

