/**
 * Real eBPF, real programs, loopback only: what real clients do that simple
 * ones do not. A client may half-close (shutdown(SHUT_WR)) before reading its
 * response.
 *
 * Not covered here: TLS (tls.test.ts), HTTP/2 in general (http2.test.ts).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { capture, headers } from '../helpers/capture';
import { PYTHON, attr, background, byPid, freePort, requireEbpf, run, startNginx, waitForPort } from '../helpers/integration';

/** Sends a request, shuts its sending side (FIN), then reads the whole response. */
const PY_HALF_CLOSE = `
import socket, sys, time
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
s.sendall(b'GET /half-closed HTTP/1.1\\r\\nHost: half.test\\r\\nX-Half: closed\\r\\n\\r\\n')
s.shutdown(socket.SHUT_WR)
time.sleep(0.3)  # the response and the server's FIN arrive before the first read
data = b''
while True:
    chunk = s.recv(65536)
    if not chunk:
        break
    data += chunk
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
    for (const [pid, role] of [
      [py.pid, 'client'],
      [server.pid!, 'server'],
    ] as const) {
      const r = byPid(records, pid);
      assert.equal(r.length, 1, `one ${role} record`);
      assert.equal(attr(r[0], 'headertap.role'), role);
      assert.equal(r[0].body, 'GET /half-closed -> 200');
      assert.deepEqual(headers(r[0], 'response', 'x-py-server'), ['yes']);
    }
  });
});
