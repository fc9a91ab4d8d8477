/**
 * Real eBPF, real programs, loopback only: each test starts `headertap run`
 * (the loader and its BPF programs) exporting OTLP/gRPC to a real receiver,
 * drives a real client and server, stops the agent with SIGINT (which must
 * flush everything and exit 0), and checks the decoded records.
 *
 * Not covered here: TLS, HTTP/2 (later issues); throughput (test/bench).
 */
import assert from 'node:assert/strict';
import { existsSync } from 'node:fs';
import { release } from 'node:os';
import { describe, it } from 'node:test';
import type { FlatRecord } from '../../src/common/flat-record';
import { capture, headers } from '../helpers/capture';
import {
  PYTHON,
  attr,
  background,
  byPid,
  freePort,
  requireEbpf,
  run,
  startNginx,
  waitForPort,
} from '../helpers/integration';

const NODE_SERVER = `
const http = require('http');
const server = http.createServer((req, res) => {
  res.setHeader('X-Node-Server', 'yes');
  res.end('hi ' + req.url);
});
server.listen(Number(process.argv[1]), process.argv[2], () => console.log('listening'));
`;

const NODE_CLIENT = `
const http = require('http');
http.get({ host: '127.0.0.1', port: Number(process.argv[1]), path: '/from-node', headers: { 'X-From': 'node-client' } }, (res) => {
  res.resume();
  res.on('end', () => process.exit(res.statusCode === 200 ? 0 : 1));
});
`;

const PY_KEEPALIVE = `
import http.client, sys
c = http.client.HTTPConnection('127.0.0.1', int(sys.argv[1]))
for i in range(3):
    c.request('GET', f'/py/{i}', headers={'X-Seq': str(i)})
    r = c.getresponse()
    r.read()
    assert r.status == 200, r.status
c.close()
`;

/** Writes the request one byte per send() (TCP_NODELAY), then reads the response. */
const PY_BYTEWISE = `
import socket, sys
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
req = b'GET /bytewise?x=1 HTTP/1.1\\r\\nHost: bytes.test\\r\\nX-Slow: one-byte-at-a-time\\r\\nConnection: close\\r\\n\\r\\n'
for b in req:
    s.send(bytes([b]))
data = b''
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
assert data.startswith(b'HTTP/1.1 200'), data[:40]
`;

/** Two requests in one write, then both responses. */
const PY_PIPELINED = `
import socket, sys
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
s.sendall(b'GET /pipe/1 HTTP/1.1\\r\\nHost: p\\r\\nX-N: 1\\r\\n\\r\\nGET /pipe/2 HTTP/1.1\\r\\nHost: p\\r\\nX-N: 2\\r\\nConnection: close\\r\\n\\r\\n')
data = b''
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
assert data.count(b'HTTP/1.1 200') == 2, data
`;

/** Keep-alive, then a last request with Connection: close, read only after the FIN arrived. */
const PY_LAST_READ_WITH_FIN = `
import socket, sys, time
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
s.sendall(b'GET /first HTTP/1.1\\r\\nHost: f\\r\\n\\r\\n')
first = b''
while b'hello from nginx' not in first:
    first += s.recv(65536)
s.sendall(b'GET /last HTTP/1.1\\r\\nHost: f\\r\\nConnection: close\\r\\n\\r\\n')
time.sleep(0.3)  # the response and the FIN are both queued: one recv() takes them
data = s.recv(65536)
assert data.startswith(b'HTTP/1.1 200'), data[:40]
while s.recv(65536):
    pass
`;

function ready(stderr: string): string {
  return /^headertap ready: .*$/m.exec(stderr)?.[0] ?? assert.fail(`no ready line:\n${stderr}`);
}

describe('capture: HTTP/1.x over TCP with real eBPF', () => {
  it('curl -> nginx: a client record from curl and a server record from nginx', async (t) => {
    if (!requireEbpf(t)) return;
    const nginx = await startNginx(t);
    const cap = await capture(t, [nginx.port]);
    // The ready line names this kernel and what the loader found (test/kernels checks stock kernels against their config).
    const kprobes = existsSync('/sys/bus/event_source/devices/kprobe/type') ? 'yes' : 'no';
    const kernel = ready(cap.agent.stderr()).split('; kernel ')[1];
    assert.equal(kernel, `${release()} (attach: tracepoints, uprobes; kprobes: ${kprobes}; bpf_loop: yes)`);
    const curl = await run('curl', ['-sS', '-H', 'X-Custom: hello', `http://127.0.0.1:${nginx.port}/path/x?q=1&r=2`]);
    assert.equal(curl.code, 0, curl.stderr);
    await cap.sink.waitFor((rs) => rs.length >= 2, 15000, 'client and server records');
    const records = await cap.finish();
    assert.equal(records.length, 2, 'exactly one record per side');

    const client = byPid(records, curl.pid)[0];
    assert.ok(client, 'record from the curl process');
    const server = records.find((r) => r !== client)!;
    assert.equal(attr(client, 'headertap.role'), 'client');
    assert.equal(attr(server, 'headertap.role'), 'server');
    assert.equal(server.resource['process.executable.name'], 'nginx');
    assert.equal(client.resource['process.executable.name'], 'curl');
    for (const r of [client, server]) {
      assert.equal(r.event_name, 'headertap.http.exchange');
      assert.equal(r.body, 'GET /path/x -> 200');
      assert.equal(r.severity_text, 'INFO');
      assert.equal(attr(r, 'http.request.method'), 'GET');
      assert.equal(attr(r, 'url.path'), '/path/x');
      assert.equal(attr(r, 'url.query'), 'q=1&r=2');
      assert.equal(attr(r, 'url.scheme'), 'http');
      assert.equal(attr(r, 'http.response.status_code'), 200);
      assert.equal(attr(r, 'network.protocol.version'), '1.1');
      assert.equal(attr(r, 'network.type'), 'ipv4');
      assert.equal(attr(r, 'server.address'), '127.0.0.1');
      assert.equal(attr(r, 'server.port'), nginx.port);
      assert.match(String(attr(r, 'user_agent.original')), /^curl\//);
      assert.deepEqual(headers(r, 'request', 'x-custom'), ['hello']);
      assert.deepEqual(headers(r, 'response', 'x-served-by'), ['nginx-test']);
      assert.deepEqual(headers(r, 'response', 'cache-control'), ['no-store']);
      assert.ok((attr(r, 'headertap.duration_ns') as number) > 0, 'latency > 0');
      assert.equal(attr(r, 'headertap.truncated'), undefined);
    }
    assert.equal(attr(client, 'url.full'), `http://127.0.0.1:${nginx.port}/path/x?q=1&r=2`);
    assert.equal(attr(server, 'url.full'), undefined, 'url.full is for the client side');
    assert.ok(records.every((r) => attr(r, 'error.type') === undefined), 'a 200 is no error');
    assert.equal(attr(client, 'client.port'), attr(server, 'client.port'), 'both ends agree on the tuple');
    assert.equal(attr(client, 'network.peer.port'), nginx.port);
    // The record's time is the request's first byte, within this test's run.
    const age = Date.now() - Date.parse(client.time);
    assert.ok(age >= 0 && age < 60000, `timestamp ${client.time}`);
  });

  it('curl with 300 headers -> nginx: both records within 128 attributes counting the resource, the rest counted', async (t) => {
    if (!requireEbpf(t)) return;
    const nginx = await startNginx(t);
    const cap = await capture(t, [nginx.port], ['--capture-headers', 'x-tenant,*']);
    const tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const many = Array.from({ length: 300 }, (_, i) => ['-H', `X-H${i}: value-${i}`]).flat();
    const curl = await run('curl', ['-sS', ...many, '-H', `traceparent: ${tp}`, '-H', 'X-Tenant: acme', `http://127.0.0.1:${nginx.port}/many`]);
    assert.equal(curl.code, 0, curl.stderr);
    await cap.sink.waitFor((rs) => rs.length >= 2, 15000, 'client and server records');
    const records = await cap.finish();
    assert.equal(records.length, 2);
    for (const r of records) {
      const count = Object.keys(r.attributes).length + Object.keys(r.resource).length;
      assert.ok(count <= 128, `${count} attributes with the resource's`);
      assert.equal(count, 119, 'the default --max-attributes, used to the full');
      // 305 request headers (curl's Host, User-Agent and Accept, then the 302 given here), and nginx's response headers.
      const kept = (side: string) => Object.keys(r.attributes).filter((k) => k.startsWith(`http.${side}.header.`)).length;
      const dropped = r.dropped_attributes_count ?? 0;
      assert.ok(dropped >= 305 - kept('request') && dropped < 305 - kept('request') + 20, `dropped ${dropped}, kept ${kept('request')}`);
      assert.equal(kept('response'), 0, 'response headers after request ones');
      assert.equal(attr(r, 'headertap.truncated'), true);
      assert.equal(attr(r, 'headertap.truncated_reason'), 'attribute_limit');
      assert.deepEqual(headers(r, 'request', 'x-tenant'), ['acme'], 'the first --capture-headers glob is kept first');
      assert.deepEqual(headers(r, 'request', 'traceparent'), [tp], 'trace context is kept');
      assert.equal(r.trace_id, '4bf92f3577b34da6a3ce929d0e0e4736');
      assert.deepEqual(headers(r, 'request', 'x-h0'), ['value-0']);
      assert.equal(headers(r, 'request', 'x-h299'), undefined);
      assert.equal(attr(r, 'url.path'), '/many');
    }
    // The client record has url.full too, so it keeps one header less: what was kept and dropped adds up the same.
    const headersSeen = (r: FlatRecord) => Object.keys(r.attributes).filter((k) => k.includes('.header.')).length + (r.dropped_attributes_count ?? 0);
    assert.equal(headersSeen(records[0]), headersSeen(records[1]), 'both ends saw the same headers');
    assert.match(cap.stderr(), /over --max-attributes 2 \(attributes left out \d+\)/);
  });

  it('python http.client keep-alive: 3 requests on one connection -> 3 records in order', async (t) => {
    if (!requireEbpf(t)) return;
    const nginx = await startNginx(t);
    const cap = await capture(t, [nginx.port]);
    const py = await run(PYTHON, ['-c', PY_KEEPALIVE, String(nginx.port)]);
    assert.equal(py.code, 0, py.stderr);
    await cap.sink.waitFor((rs) => byPid(rs, py.pid).length >= 3, 15000, '3 python records');
    const records = await cap.finish();
    const mine = byPid(records, py.pid);
    assert.deepEqual(
      mine.map((r) => attr(r, 'url.path')),
      ['/py/0', '/py/1', '/py/2'],
    );
    assert.deepEqual(
      mine.map((r) => headers(r, 'request', 'x-seq')),
      [['0'], ['1'], ['2']],
    );
    assert.equal(new Set(mine.map((r) => attr(r, 'client.port'))).size, 1, 'one connection');
    assert.equal(records.filter((r) => attr(r, 'headertap.role') === 'server').length, 3, 'and 3 from nginx');
  });

  it('node http client and node http server: both sides', async (t) => {
    if (!requireEbpf(t)) return;
    const port = await freePort();
    const server = background(t, process.execPath, ['-e', NODE_SERVER, String(port), '127.0.0.1']);
    await waitForPort(port);
    const cap = await capture(t, [port]);
    const client = await run(process.execPath, ['-e', NODE_CLIENT, String(port)]);
    assert.equal(client.code, 0, client.stderr);
    await cap.sink.waitFor((rs) => rs.length >= 2, 15000, 'node client and server records');
    const records = await cap.finish();
    const c = byPid(records, client.pid);
    const s = byPid(records, server.pid!);
    assert.equal(c.length, 1);
    assert.equal(s.length, 1);
    assert.equal(attr(c[0], 'headertap.role'), 'client');
    assert.equal(attr(s[0], 'headertap.role'), 'server');
    assert.equal(s[0].resource['process.executable.name'], 'node');
    for (const r of [c[0], s[0]]) {
      assert.equal(attr(r, 'url.path'), '/from-node');
      assert.deepEqual(headers(r, 'request', 'x-from'), ['node-client']);
      assert.deepEqual(headers(r, 'response', 'x-node-server'), ['yes']);
    }
  });

  it('IPv6 on [::1]: addresses and network.type ipv6', async (t) => {
    if (!requireEbpf(t)) return;
    const nginx = await startNginx(t);
    const cap = await capture(t, [nginx.port]);
    const curl = await run('curl', ['-sS', '-g', `http://[::1]:${nginx.port}/v6`]);
    assert.equal(curl.code, 0, curl.stderr);
    await cap.sink.waitFor((rs) => rs.length >= 2, 15000, 'IPv6 records');
    const records = await cap.finish();
    for (const r of records) {
      assert.equal(attr(r, 'network.type'), 'ipv6');
      assert.equal(attr(r, 'network.peer.address'), '::1');
      assert.equal(attr(r, 'server.address'), '::1');
      assert.equal(attr(r, 'server.port'), nginx.port);
      assert.equal(attr(r, 'url.path'), '/v6');
      assert.equal(attr(r, 'url.full'), attr(r, 'headertap.role') === 'client' ? `http://[::1]:${nginx.port}/v6` : undefined);
    }
  });

  it('a request written one byte per syscall is reassembled on both sides', async (t) => {
    if (!requireEbpf(t)) return;
    const nginx = await startNginx(t);
    const cap = await capture(t, [nginx.port]);
    const py = await run(PYTHON, ['-c', PY_BYTEWISE, String(nginx.port)]);
    assert.equal(py.code, 0, py.stderr);
    await cap.sink.waitFor((rs) => rs.length >= 2, 15000, 'bytewise records');
    const records = await cap.finish();
    const client = byPid(records, py.pid);
    assert.equal(client.length, 1);
    for (const r of records) {
      assert.equal(attr(r, 'url.path'), '/bytewise');
      assert.equal(attr(r, 'url.query'), 'x=1');
      assert.equal(attr(r, 'server.address'), 'bytes.test');
      assert.deepEqual(headers(r, 'request', 'x-slow'), ['one-byte-at-a-time']);
      assert.equal(attr(r, 'http.response.status_code'), 200);
    }
  });

  it('two pipelined requests in one write give two records per side, in order', async (t) => {
    if (!requireEbpf(t)) return;
    const nginx = await startNginx(t);
    const cap = await capture(t, [nginx.port]);
    const py = await run(PYTHON, ['-c', PY_PIPELINED, String(nginx.port)]);
    assert.equal(py.code, 0, py.stderr);
    await cap.sink.waitFor((rs) => rs.length >= 4, 15000, 'pipelined records');
    const records = await cap.finish();
    const client = byPid(records, py.pid);
    assert.deepEqual(
      client.map((r) => `${String(attr(r, 'url.path'))} ${JSON.stringify(headers(r, 'request', 'x-n'))} ${String(attr(r, 'http.response.status_code'))}`),
      ['/pipe/1 ["1"] 200', '/pipe/2 ["2"] 200'],
    );
    const server = records.filter((r) => attr(r, 'headertap.role') === 'server');
    assert.deepEqual(
      server.map((r) => attr(r, 'url.path')),
      ['/pipe/1', '/pipe/2'],
    );
  });

  it('a read that also consumes the FIN leaves no phantom gap in the stream', async (t) => {
    if (!requireEbpf(t)) return;
    const nginx = await startNginx(t);
    const cap = await capture(t, [nginx.port]);
    const py = await run(PYTHON, ['-c', PY_LAST_READ_WITH_FIN, String(nginx.port)]);
    assert.equal(py.code, 0, py.stderr);
    await cap.sink.waitFor((rs) => byPid(rs, py.pid).length >= 2, 15000, 'both python records');
    const records = await cap.finish(); // asserts parser resyncs 0
    assert.deepEqual(
      byPid(records, py.pid).map((r) => attr(r, 'url.path')),
      ['/first', '/last'],
    );
  });

  it('HTTP/1.0 requests, and a sendfile() body followed by another request', async (t) => {
    if (!requireEbpf(t)) return;
    const nginx = await startNginx(t);
    const cap = await capture(t, [nginx.port]);
    const old = await run('curl', ['-sS', '--http1.0', `http://127.0.0.1:${nginx.port}/old`]);
    assert.equal(old.code, 0, old.stderr);
    // Keep-alive: the 200 KB file goes out by sendfile (never copied), then a second request.
    const two = await run('curl', ['-sS', '-o', '/dev/null', '-o', '/dev/null', `http://127.0.0.1:${nginx.port}/big.bin`, `http://127.0.0.1:${nginx.port}/after`]);
    assert.equal(two.code, 0, two.stderr);
    await cap.sink.waitFor((rs) => rs.length >= 6, 15000, 'HTTP/1.0 and keep-alive records');
    const records = await cap.finish();
    const v10 = byPid(records, old.pid)[0];
    assert.equal(attr(v10, 'network.protocol.version'), '1.0');
    assert.equal(attr(v10, 'http.response.status_code'), 200);
    const ka = byPid(records, two.pid);
    assert.deepEqual(
      ka.map((r) => `${String(attr(r, 'url.path'))} ${String(attr(r, 'http.response.status_code'))}`),
      ['/big.bin 200', '/after 200'],
    );
    assert.deepEqual(headers(ka[0], 'response', 'content-length'), ['200000']);
    const serverAfter = records.filter((r) => attr(r, 'headertap.role') === 'server' && attr(r, 'url.path') === '/after');
    assert.equal(serverAfter.length, 1, 'nginx side found the request after the sendfile() body');
  });
});
