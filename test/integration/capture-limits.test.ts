/**
 * Real eBPF, real programs, loopback only: what real clients do that simple
 * ones do not. grpcio's C core writes a request in one sendmsg with dozens of
 * iovecs; a vector call may carry up to 1024 (UIO_MAXIOV); a client may
 * half-close (shutdown(SHUT_WR)) before reading its response; a response head
 * may be larger than the 16 KiB a call used to be cut at.
 *
 * Not covered here: TLS (tls.test.ts), HTTP/2 in general (http2.test.ts).
 */
import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import type { FlatRecord } from '../../src/common/flat-record';
import type { Role } from '../../src/http';
import { capture, headers, type Capture } from '../helpers/capture';
import { PYTHON, attr, background, byPid, freePort, requireEbpf, requirePythonModule, run, saveLikeAnEditor, startAgent, startNginx, waitForPort, waitForStderr } from '../helpers/integration';
import { startOtlpSink } from '../helpers/otlp-sink';

const TRACE_ID = '4bf92f3577b34da6a3ce929d0e0e4736';
const TRACEPARENT = `00-${TRACE_ID}-00f067aa0ba902b7-01`;

/** Python for the raw-socket programs below: read until the peer's FIN, `size` bytes per recv() at most. */
const PY_RECV_ALL = `
def recv_all(s, size=65536, data=b''):
    while True:
        chunk = s.recv(size)
        if not chunk:
            return data
        data += chunk
`;

/** A grpcio (C core) server: demo.Echo/Say answers b'hi' with one initial metadata entry. */
const GRPCIO_SERVER = `
import grpc, sys
from concurrent import futures
def say(request, context):
    context.send_initial_metadata((('x-served-by', 'grpcio'),))
    return b'hi'
handler = grpc.method_handlers_generic_handler('demo.Echo', {
    'Say': grpc.unary_unary_rpc_method_handler(say, request_deserializer=None, response_serializer=None)})
server = grpc.server(futures.ThreadPoolExecutor(max_workers=2), handlers=(handler,))
server.add_insecure_port('127.0.0.1:' + sys.argv[1])
server.start()
print('listening', flush=True)
server.wait_for_termination()
`;

/** A grpcio client: three calls on one channel, each with a traceparent and 40 more metadata entries. */
const GRPCIO_CLIENT = `
import grpc, sys
channel = grpc.insecure_channel('127.0.0.1:' + sys.argv[1])
say = channel.unary_unary('/demo.Echo/Say')
for i in range(3):
    md = [('traceparent', sys.argv[2]), ('x-call', str(i))] + [('x-meta-%02d' % k, 'value-%d-%d' % (i, k)) for k in range(40)]
    assert say(b'hello', metadata=md, timeout=10) == b'hi'
channel.close()
`;

/**
 * One request written with sendmsg() in N iovecs (a few bytes each, header
 * lines split across them), the response read with recvmsg_into() into 8-byte
 * buffers; both vector calls far beyond the old 16-entry walk.
 */
const PY_MANY_IOVECS = `${PY_RECV_ALL}
import socket, sys
port, n = int(sys.argv[1]), int(sys.argv[2])
head = b'GET /iov?n=%d HTTP/1.1\\r\\nHost: iov.test\\r\\n' % n
head += b''.join(b'X-Pad-%03d: %s\\r\\n' % (i, b'p' * (i % 7)) for i in range(40))
head += b'X-Last: after-every-iovec\\r\\nConnection: close\\r\\n\\r\\n'
step = -(-len(head) // n)
parts = [head[i:i + step] for i in range(0, len(head), step)]
parts += [b''] * (n - len(parts))  # empty entries count against the walk too
assert len(parts) == n
s = socket.create_connection(('127.0.0.1', port))
sent = s.sendmsg(parts)
assert sent == len(head), (sent, len(head))
bufs = [bytearray(8) for _ in range(256)]
got = s.recvmsg_into(bufs)[0]
data = recv_all(s, data=b''.join(bufs)[:got])
assert data.startswith(b'HTTP/1.1 200'), data[:40]
`;

/** Sends a request, shuts its sending side (FIN), then reads the whole response. */
const PY_HALF_CLOSE = `${PY_RECV_ALL}
import socket, sys, time
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
s.sendall(b'GET /half-closed HTTP/1.1\\r\\nHost: half.test\\r\\nX-Half: closed\\r\\n\\r\\n')
s.shutdown(socket.SHUT_WR)
time.sleep(0.3)  # the response and the server's FIN arrive before the first read
data = recv_all(s)
assert data.startswith(b'HTTP/1.') and b' 200 ' in data[:20], data[:40]
s.close()
`;

/** python's http.server on argv[1], answering every GET with 200 and an X-Py-Server header. */
const PY_HTTP_SERVER = `
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = b'hello from python\\n'
        self.send_response(200)
        self.send_header('X-Py-Server', 'yes')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()
`;

/**
 * A server that answers with a head of about 40 KiB, written with its body in
 * one call: send(), or with argv[2] 'sendmsg' one sendmsg() of 400-byte iovecs.
 */
const PY_BIG_HEAD_SERVER = `
import socket, sys
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(('127.0.0.1', int(sys.argv[1])))
srv.listen(8)
print('listening', flush=True)
while True:
    c, _ = srv.accept()
    req = b''
    while b'\\r\\n\\r\\n' not in req:
        chunk = c.recv(65536)
        if not chunk:
            break
        req += chunk
    head = b'HTTP/1.1 200 OK\\r\\nX-First: 1\\r\\n'
    head += b''.join(b'X-Big-%03d: %s\\r\\n' % (i, b'b' * 500) for i in range(80))
    head += b'X-Last: end-of-big-head\\r\\nContent-Length: 3\\r\\nConnection: close\\r\\n\\r\\n'
    data = head + b'big'
    if sys.argv[2] == 'sendmsg':
        assert c.sendmsg([data[i:i + 400] for i in range(0, len(data), 400)]) == len(data)
    else:
        c.sendall(data)
    c.close()
`;

/** Reads the whole response with large recv() calls, so the head arrives in as few reads as possible. */
const PY_BIG_HEAD_CLIENT = `${PY_RECV_ALL}
import socket, sys, time
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
s.sendall(b'GET /big-head HTTP/1.1\\r\\nHost: big.test\\r\\n\\r\\n')
time.sleep(0.3)
data = recv_all(s, 1 << 20)
assert data.endswith(b'big') and b'X-Last: end-of-big-head' in data, data[-60:]
`;

/** The one record each of the two processes wrote, with its role checked. */
function oneEach(records: FlatRecord[], clientPid: number, serverPid: number): [FlatRecord, Role][] {
  return (
    [
      [clientPid, 'client'],
      [serverPid, 'server'],
    ] as const
  ).map(([pid, role]) => {
    const mine = byPid(records, pid);
    assert.equal(mine.length, 1, `one ${role} record`);
    assert.equal(attr(mine[0], 'headertap.role'), role);
    return [mine[0], role];
  });
}

describe('vector calls with many iovecs (real eBPF)', () => {
  it('grpcio client -> grpcio server, 42 metadata entries per call: every call complete on both sides, with :path and trace id', async (t) => {
    if (!requireEbpf(t) || !requirePythonModule(t, 'grpc', 'python3-grpcio')) return;
    const port = await freePort();
    const server = background(t, PYTHON, ['-c', GRPCIO_SERVER, String(port)]);
    await waitForPort(port);
    const cap = await capture(t, [port]);
    const client = await run(PYTHON, ['-c', GRPCIO_CLIENT, String(port), TRACEPARENT]);
    assert.equal(client.code, 0, client.stderr);
    await cap.sink.waitFor((rs) => byPid(rs, client.pid).length >= 3 && byPid(rs, server.pid!).length >= 3, 15000, '3 grpcio records per side');
    const records = await cap.finish();
    assert.match(cap.stderr(), /records with unknown HPACK state 0/);
    for (const [pid, role] of [
      [client.pid, 'client'],
      [server.pid!, 'server'],
    ] as const) {
      const mine = byPid(records, pid);
      assert.equal(mine.length, 3, `${role}: one record per call`);
      mine.forEach((r, i) => {
        assert.equal(attr(r, 'headertap.role'), role);
        assert.equal(r.body, 'POST /demo.Echo/Say -> 200 grpc OK');
        assert.equal(attr(r, 'url.path'), '/demo.Echo/Say');
        assert.equal(attr(r, 'rpc.method'), 'demo.Echo/Say');
        assert.equal(r.trace_id, TRACE_ID, `${role} call ${i}: trace id from traceparent`);
        assert.deepEqual(headers(r, 'request', 'traceparent'), [TRACEPARENT]);
        assert.deepEqual(headers(r, 'request', 'x-call'), [String(i)]);
        assert.deepEqual(headers(r, 'request', 'x-meta-00'), [`value-${i}-0`]);
        assert.deepEqual(headers(r, 'request', 'x-meta-39'), [`value-${i}-39`]);
        assert.match(String(attr(r, 'user_agent.original')), /^grpc-python\//);
        assert.deepEqual(headers(r, 'response', 'x-served-by'), ['grpcio']);
        assert.equal(attr(r, 'headertap.truncated'), undefined);
      });
    }
  });

  for (const n of [64, 1024]) {
    it(`sendmsg() with ${n} iovecs and recvmsg_into() with 256 buffers: every header on both sides`, async (t) => {
      if (!requireEbpf(t)) return;
      const nginx = await startNginx(t);
      const cap = await capture(t, [nginx.port]);
      const py = await run(PYTHON, ['-c', PY_MANY_IOVECS, String(nginx.port), String(n)]);
      assert.equal(py.code, 0, py.stderr);
      await cap.sink.waitFor((rs) => rs.length >= 2, 15000, 'client and server records');
      const records = await cap.finish();
      assert.match(cap.stderr(), /kernel events \d+, lost 0, truncated 0, unreadable 0/, 'no call was cut');
      const client = byPid(records, py.pid);
      assert.equal(client.length, 1);
      const server = records.find((r) => r !== client[0])!;
      for (const r of [client[0], server]) {
        assert.equal(attr(r, 'url.path'), '/iov');
        assert.equal(attr(r, 'url.query'), `n=${n}`);
        assert.deepEqual(headers(r, 'request', 'x-pad-000'), ['']);
        assert.deepEqual(headers(r, 'request', 'x-pad-039'), ['pppp']);
        assert.deepEqual(headers(r, 'request', 'x-last'), ['after-every-iovec']);
        assert.equal(attr(r, 'http.response.status_code'), 200);
        assert.deepEqual(headers(r, 'response', 'x-served-by'), ['nginx-test']);
        assert.equal(attr(r, 'headertap.truncated'), undefined);
      }
    });
  }
});

describe('half-closed connections (real eBPF)', () => {
  it('shutdown(SHUT_WR) after the request, against nginx: the client record has the response', async (t) => {
    if (!requireEbpf(t)) return;
    const nginx = await startNginx(t);
    const cap = await capture(t, [nginx.port]);
    const py = await run(PYTHON, ['-c', PY_HALF_CLOSE, String(nginx.port)]);
    assert.equal(py.code, 0, py.stderr);
    await cap.sink.waitFor((rs) => rs.length >= 2, 15000, 'client and server records');
    const records = await cap.finish();
    assert.match(cap.stderr(), /exchanges 2 \(unanswered 0,/);
    const client = byPid(records, py.pid);
    assert.equal(client.length, 1);
    assert.equal(attr(client[0], 'headertap.role'), 'client');
    assert.equal(attr(client[0], 'http.response.status_code'), 200);
    assert.deepEqual(headers(client[0], 'request', 'x-half'), ['closed']);
    assert.deepEqual(headers(client[0], 'response', 'x-served-by'), ['nginx-test']);
    assert.equal(client[0].body, 'GET /half-closed -> 200');
  });

  it('shutdown(SHUT_WR) after the request, against python http.server: both records have the response', async (t) => {
    if (!requireEbpf(t)) return;
    const port = await freePort();
    const server = background(t, PYTHON, ['-c', PY_HTTP_SERVER, String(port)]);
    await waitForPort(port);
    const cap = await capture(t, [port]);
    const py = await run(PYTHON, ['-c', PY_HALF_CLOSE, String(port)]);
    assert.equal(py.code, 0, py.stderr);
    await cap.sink.waitFor((rs) => rs.length >= 2, 15000, 'client and server records');
    const records = await cap.finish();
    assert.match(cap.stderr(), /exchanges 2 \(unanswered 0,/);
    for (const [r] of oneEach(records, py.pid, server.pid!)) {
      assert.equal(r.body, 'GET /half-closed -> 200');
      assert.deepEqual(headers(r, 'response', 'x-py-server'), ['yes']);
    }
  });
});

/** The big-head server (`how`: send or sendmsg) and one client request, captured with --max-header-bytes `max`. */
async function bigHead(t: TestContext, how: string, max: number): Promise<{ cap: Capture; clientPid: number; serverPid: number }> {
  const port = await freePort();
  const server = background(t, PYTHON, ['-c', PY_BIG_HEAD_SERVER, String(port), how]);
  await waitForPort(port);
  const cap = await capture(t, [port], ['--max-header-bytes', String(max)]);
  const py = await run(PYTHON, ['-c', PY_BIG_HEAD_CLIENT, String(port)]);
  assert.equal(py.code, 0, py.stderr);
  await cap.sink.waitFor((rs) => rs.length >= 2, 15000, 'client and server records');
  return { cap, clientPid: py.pid, serverPid: server.pid! };
}

describe('--max-header-bytes sets the kernel copy too (real eBPF)', () => {
  for (const how of ['send', 'sendmsg']) {
    it(`a 40 KiB response head written in one ${how}(): complete with --max-header-bytes 65536`, async (t) => {
      if (!requireEbpf(t)) return;
      const { cap, clientPid, serverPid } = await bigHead(t, how, 65536);
      const records = await cap.finish();
      assert.match(cap.stderr(), /truncated 0\)/, 'no message truncated');
      assert.match(cap.stderr(), /kernel events \d+, lost 0, truncated 0,/, 'no call cut in the kernel');
      for (const [r, role] of oneEach(records, clientPid, serverPid)) {
        assert.equal(attr(r, 'headertap.truncated'), undefined, `${role}: not truncated`);
        assert.deepEqual(headers(r, 'response', 'x-first'), ['1']);
        assert.deepEqual(headers(r, 'response', 'x-big-079'), ['b'.repeat(500)]);
        assert.deepEqual(headers(r, 'response', 'x-last'), ['end-of-big-head']);
      }
    });
  }

  it('raised live in the config file: the kernel copies more from the reload on, no restart', async (t) => {
    if (!requireEbpf(t)) return;
    const port = await freePort();
    background(t, PYTHON, ['-c', PY_BIG_HEAD_SERVER, String(port), 'send']);
    await waitForPort(port);
    const dir = mkdtempSync(path.join(tmpdir(), 'ht-copy-live-'));
    t.after(() => rmSync(dir, { recursive: true, force: true }));
    const config = path.join(dir, 'headertap.yaml');
    writeFileSync(config, `port: ${port}\nmax-header-bytes: 16384\n`);
    const sink = await startOtlpSink('grpc');
    t.after(() => sink.stop());
    const agent = await startAgent(t, ['--endpoint', sink.endpoint, '--config', config, '--stats-interval', '0', '--no-self-metrics']);
    await waitForStderr(agent, /^headertap ready/m, 60000);
    const before = await run(PYTHON, ['-c', PY_BIG_HEAD_CLIENT, String(port)]);
    assert.equal(before.code, 0, before.stderr);
    await sink.waitFor((rs) => byPid(rs, before.pid).length === 1, 15000, 'the record before the reload');
    saveLikeAnEditor(config, `port: ${port}\nmax-header-bytes: 65536\n`);
    await waitForStderr(agent, /config reloaded \(file change\).*max-header-bytes changed/);
    const after = await run(PYTHON, ['-c', PY_BIG_HEAD_CLIENT, String(port)]);
    assert.equal(after.code, 0, after.stderr);
    await sink.waitFor((rs) => byPid(rs, after.pid).length === 1, 15000, 'the record after the reload');
    const end = await agent.stop('SIGINT');
    assert.equal(end.code, 0, end.stderr);
    assert.doesNotMatch(end.stderr, /refused|until the loader restarts/);
    const [old] = byPid(sink.records(), before.pid);
    assert.equal(attr(old, 'headertap.truncated'), true, 'at 16 KiB the head is cut');
    assert.equal(headers(old, 'response', 'x-last'), undefined);
    const [now] = byPid(sink.records(), after.pid);
    assert.equal(attr(now, 'headertap.truncated'), undefined, 'after the reload: complete');
    assert.deepEqual(headers(now, 'response', 'x-big-079'), ['b'.repeat(500)]);
    assert.deepEqual(headers(now, 'response', 'x-last'), ['end-of-big-head']);
  });

  it('the same head with --max-header-bytes 20000: the headers before the limit, marked header_limit', async (t) => {
    if (!requireEbpf(t)) return;
    const { cap, clientPid, serverPid } = await bigHead(t, 'send', 20000);
    // Not cap.finish(): the head cut inside is a parser resync, which finish() rules out.
    const end = await cap.agent.stop('SIGINT');
    assert.equal(end.code, 0, end.stderr);
    assert.match(end.stderr, /exchanges 2 \(unanswered 0, truncated 2\)/);
    const records = cap.sink.records();
    for (const [r, role] of oneEach(records, clientPid, serverPid)) {
      assert.equal(attr(r, 'headertap.truncated'), true);
      assert.equal(attr(r, 'headertap.truncated_reason'), 'header_limit', `${role}: the user's limit, not a capture gap`);
      assert.deepEqual(headers(r, 'response', 'x-first'), ['1']);
      assert.deepEqual(headers(r, 'response', 'x-big-030'), ['b'.repeat(500)]);
      assert.equal(headers(r, 'response', 'x-last'), undefined);
      assert.equal(attr(r, 'http.response.status_code'), 200);
    }
  });
});
