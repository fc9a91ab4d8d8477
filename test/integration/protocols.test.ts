/**
 * Real eBPF, real programs, loopback only: what each side of a connection
 * actually speaks. A WebSocket upgrade ends HTTP on its connection (frames
 * that look like HTTP are not parsed); an HTTP/1.0 server answering a 1.1
 * request is recorded with both versions.
 *
 * Not covered here: h2c upgrades (http2.test.ts), CONNECT tunnels (unit tests
 * in test/unit/tunnel.test.ts; no proxy is installed for them).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { capture, headers } from '../helpers/capture';
import { PYTHON, attr, background, byPid, freePort, requireEbpf, run, waitForPort } from '../helpers/integration';

/** HTTP bytes a WebSocket message carries below; they must never become records. */
const FAKE_REQUEST = 'GET /x HTTP/1.1\\r\\nHost: fake.test\\r\\nX-Fake: yes\\r\\n\\r\\n';
const FAKE_RESPONSE = 'HTTP/1.1 200 OK\\r\\nX-Fake: yes\\r\\nContent-Length: 0\\r\\n\\r\\n';

/**
 * A WebSocket server (RFC 6455, text frames, one client at a time): answers
 * the upgrade with 101, then answers each client message with an unmasked
 * frame holding an HTTP response, until the client's close frame.
 */
const PY_WS_SERVER = `
import base64, hashlib, socket, sys
srv = socket.socket()
srv.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
srv.bind(('127.0.0.1', int(sys.argv[1])))
srv.listen(8)
def recv_exact(c, n):
    b = b''
    while len(b) < n:
        chunk = c.recv(n - len(b))
        if not chunk:
            raise EOFError
        b += chunk
    return b
while True:
    c, _ = srv.accept()
    req = b''
    while b'\\r\\n\\r\\n' not in req:
        chunk = c.recv(4096)
        if not chunk:
            break
        req += chunk
    if not req.endswith(b'\\r\\n\\r\\n'):
        c.close()  # a port probe, not a client
        continue
    key = [l.split(b':', 1)[1].strip() for l in req.split(b'\\r\\n') if l.lower().startswith(b'sec-websocket-key:')][0]
    accept = base64.b64encode(hashlib.sha1(key + b'258EAFA5-E914-47DA-95CA-C5AB0DC85B11').digest())
    c.sendall(b'HTTP/1.1 101 Switching Protocols\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\nSec-WebSocket-Accept: ' + accept + b'\\r\\n\\r\\n')
    try:
        while True:
            b0, b1 = recv_exact(c, 2)
            n = b1 & 0x7f
            if n == 126:
                n = int.from_bytes(recv_exact(c, 2), 'big')
            mask = recv_exact(c, 4)
            payload = bytes(x ^ mask[i % 4] for i, x in enumerate(recv_exact(c, n)))
            if b0 & 0x0f == 8:
                c.sendall(b'\\x88\\x00')
                break
            reply = b'${FAKE_RESPONSE}'
            c.sendall(bytes([0x81, len(reply)]) + reply)
    except EOFError:
        pass
    c.close()
`;

/** A WebSocket client whose frames use the mask key 0: their payload (an HTTP request) crosses the wire in clear. */
const PY_WS_CLIENT = `
import base64, os, socket, sys
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
key = base64.b64encode(os.urandom(16))
s.sendall(b'GET /chat HTTP/1.1\\r\\nHost: ws.test\\r\\nUpgrade: websocket\\r\\nConnection: Upgrade\\r\\nSec-WebSocket-Key: ' + key + b'\\r\\nSec-WebSocket-Version: 13\\r\\n\\r\\n')
head = b''
while b'\\r\\n\\r\\n' not in head:
    head += s.recv(1)
assert head.startswith(b'HTTP/1.1 101 '), head
msg = b'${FAKE_REQUEST}'
for i in range(3):
    frame = bytes([0x81, 0x80 | 126]) + len(msg).to_bytes(2, 'big') + b'\\0\\0\\0\\0' + msg if len(msg) > 125 else bytes([0x81, 0x80 | len(msg)]) + b'\\0\\0\\0\\0' + msg
    s.sendall(frame)
    reply = s.recv(4096)
    assert b'HTTP/1.1 200 OK' in reply, reply
s.sendall(b'\\x88\\x80\\0\\0\\0\\0')
s.recv(16)
s.close()
`;

/** python's http.server speaking HTTP/1.0 (protocol_version, its default, said explicitly): its status lines read HTTP/1.0. */
const PY_HTTP10_SERVER = `
import http.server, sys
class H(http.server.BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.0'
    def do_GET(self):
        body = b'old server\\n'
        self.send_response(200)
        self.send_header('X-Py-Server', 'http1.0')
        self.send_header('Content-Length', str(len(body)))
        self.end_headers()
        self.wfile.write(body)
    def log_message(self, *args):
        pass
http.server.HTTPServer(('127.0.0.1', int(sys.argv[1])), H).serve_forever()
`;

describe('network.protocol.version per side (real eBPF)', () => {
  it('curl (HTTP/1.1) against an HTTP/1.0 server: the request line\'s 1.1 and the status line\'s 1.0 on both records; curl -0: 1.0 only', async (t) => {
    if (!requireEbpf(t)) return;
    const port = await freePort();
    const server = background(t, PYTHON, ['-c', PY_HTTP10_SERVER, String(port)]);
    await waitForPort(port);
    const cap = await capture(t, [port]);
    const v11 = await run('curl', ['-sS', '-o', '/dev/null', '-H', 'X-Case: v11', `http://127.0.0.1:${port}/v11`]);
    assert.equal(v11.code, 0, v11.stderr);
    const v10 = await run('curl', ['-sS', '-0', '-o', '/dev/null', '-H', 'X-Case: v10', `http://127.0.0.1:${port}/v10`]);
    assert.equal(v10.code, 0, v10.stderr);
    await cap.sink.waitFor((rs) => rs.length >= 4, 15000, 'client and server records of both requests');
    const records = await cap.finish();
    for (const [pid, role] of [
      [v11.pid, 'client'],
      [server.pid!, 'server'],
    ] as const) {
      const mine = byPid(records, pid).filter((r) => r.body === 'GET /v11 -> 200');
      assert.equal(mine.length, 1, `${role}: one record of the 1.1 request`);
      assert.equal(attr(mine[0], 'network.protocol.version'), '1.1', `${role}: what the client sent`);
      assert.equal(attr(mine[0], 'headertap.response.protocol_version'), '1.0', `${role}: what the server sent`);
      assert.deepEqual(headers(mine[0], 'response', 'x-py-server'), ['http1.0']);
    }
    for (const pid of [v10.pid, server.pid!]) {
      const mine = byPid(records, pid).filter((r) => r.body === 'GET /v10 -> 200');
      assert.equal(mine.length, 1);
      assert.equal(attr(mine[0], 'network.protocol.version'), '1.0');
      assert.equal(attr(mine[0], 'headertap.response.protocol_version'), undefined, 'same version both ways: said once');
    }
  });
});

describe('protocol switches (real eBPF)', () => {
  it('a WebSocket whose zero-masked frames carry HTTP text: only the upgrade exchange, on both sides', async (t) => {
    if (!requireEbpf(t)) return;
    const port = await freePort();
    const server = background(t, PYTHON, ['-c', PY_WS_SERVER, String(port)]);
    await waitForPort(port);
    const cap = await capture(t, [port]);
    const client = await run(PYTHON, ['-c', PY_WS_CLIENT, String(port)]);
    assert.equal(client.code, 0, client.stderr);
    await cap.sink.waitFor((rs) => rs.length >= 2, 15000, 'client and server records');
    const records = await cap.finish();
    assert.equal(records.length, 2, `exactly the two upgrade records: ${records.map((r) => r.body).join(', ')}`);
    for (const [pid, role] of [
      [client.pid, 'client'],
      [server.pid!, 'server'],
    ] as const) {
      const mine = byPid(records, pid);
      assert.equal(mine.length, 1, `one ${role} record`);
      assert.equal(mine[0].body, 'GET /chat -> 101');
      assert.equal(attr(mine[0], 'headertap.role'), role);
      assert.deepEqual(headers(mine[0], 'request', 'upgrade'), ['websocket']);
      assert.equal(headers(mine[0], 'request', 'x-fake'), undefined);
    }
    // Per side: 3 frames out, 3 back, the close frames; both processes count theirs.
    const m = /tunnels (\d+) \(bytes ignored (\d+)\)/.exec(cap.stderr());
    assert.ok(m, cap.stderr());
    assert.equal(Number(m[1]), 2, 'both ends of the connection left HTTP');
    assert.ok(Number(m[2]) >= 2 * 3 * (FAKE_REQUEST.length - 8), `bytes ignored: ${m[2]}`);
    assert.match(cap.stderr(), /exchanges 2 \(/);
  });
});
