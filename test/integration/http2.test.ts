/**
 * Real eBPF, HTTP/2 over cleartext (h2c) on loopback: nghttp and Node's
 * http2 client against a Node http2 server, gRPC with @grpc/grpc-js (its
 * channels to 127.0.0.1 are h2c), and an agent that starts while an HTTP/2
 * connection is already open. Each test decodes what a real OTLP/gRPC
 * receiver got, while the agent's own OTLP/gRPC export (HTTP/2 too) runs.
 *
 * Not covered here: h2 over TLS (needs the TLS capture of issue 4).
 */
import assert from 'node:assert/strict';
import { describe, it, type TestContext } from 'node:test';
import type { FlatRecord } from '../../src/common/flat-record';
import { PYTHON, attr, background, byPid, freePort, requireCommand, requireEbpf, requirePythonModule, run, startAgent, waitForPort, type Agent } from '../helpers/integration';
import { startOtlpSink, type OtlpSink } from '../helpers/otlp-sink';

const GRPC_JS = require.resolve('@grpc/grpc-js');

interface Capture {
  sink: OtlpSink;
  agent: Agent;
  /** Stops the agent (SIGINT): exit 0, the summary line; returns every record and the summary. */
  finish(opts?: { cleanRun?: boolean }): Promise<{ records: FlatRecord[]; summary: string }>;
}

async function capture(t: TestContext, args: string[], env: NodeJS.ProcessEnv = {}): Promise<Capture> {
  const sink = await startOtlpSink('grpc');
  t.after(() => sink.stop());
  const agent = await startAgent(t, ['--endpoint', sink.endpoint, ...args], env);
  return {
    sink,
    agent,
    async finish({ cleanRun = true } = {}) {
      const end = await agent.stop('SIGINT');
      assert.equal(end.code, 0, `agent exit status; stderr:\n${end.stderr}`);
      const summary = /^headertap stopped: (.*)$/m.exec(end.stderr)?.[1] ?? '';
      assert.ok(summary, `summary line; stderr:\n${end.stderr}`);
      if (cleanRun) assert.match(summary, /lost 0, truncated \d+, unreadable 0; parser resyncs 0, orphan responses 0/);
      assert.doesNotMatch(end.stderr, /\n\s+at /, 'no stack trace');
      return { records: sink.records(), summary };
    },
  };
}

function ports(...p: number[]): string[] {
  return p.flatMap((n) => ['--port', String(n)]);
}

/** A node -e server on a free port of 127.0.0.1 (the port is its last argument), once it accepts connections. */
async function nodeServer(t: TestContext, script: string, ...args: string[]): Promise<{ port: number; pid: number }> {
  const port = await freePort();
  const child = background(t, process.execPath, ['-e', script, ...args, String(port)]);
  await waitForPort(port);
  return { port, pid: child.pid! };
}

function header(r: FlatRecord, side: 'request' | 'response', name: string): unknown {
  return r.attributes[`http.${side}.header.${name}`];
}

/** An h2c server: echoes x-custom, 404 for /missing, a fresh header per path and a repeated one. */
const NODE_H2_SERVER = `
const http2 = require('http2');
const server = http2.createServer((req, res) => {
  res.setHeader('x-h2-server', 'yes');
  res.setHeader('x-echo', String(req.headers['x-custom'] ?? ''));
  res.setHeader('x-reply-' + req.url.replace(/[^a-z0-9]/g, ''), 'fresh');
  res.statusCode = req.url.startsWith('/missing') ? 404 : 200;
  req.resume();
  req.on('end', () => res.end('hi ' + req.url));
});
server.listen(Number(process.argv[1]), '127.0.0.1', () => console.log('listening'));
`;

/** Three requests on one session: the second reuses x-custom from the HPACK table. */
const NODE_H2_CLIENT = `
const http2 = require('http2');
const session = http2.connect('http://127.0.0.1:' + process.argv[1]);
function get(headers, body) {
  return new Promise((resolve, reject) => {
    const req = session.request(headers, { endStream: body === undefined });
    let status;
    req.on('response', (h) => (status = h[':status']));
    req.on('error', reject);
    req.resume();
    req.on('end', () => resolve(status));
    if (body !== undefined) req.end(body);
  });
}
(async () => {
  const a = await get({ ':path': '/first?q=1', 'x-custom': 'node-client' });
  const b = await get({ ':path': '/missing', 'x-custom': 'node-client' });
  const c = await get({ ':method': 'POST', ':path': '/post', 'x-custom': 'posted', 'content-type': 'text/plain' }, 'payload');
  session.close();
  process.exit(a === 200 && b === 404 && c === 200 ? 0 : 1);
})();
`;

/**
 * The server half of an h2c upgrade (RFC 7540 §3.2), byte for byte, since
 * Node's http2 server does not implement it: 101, the server preface
 * (SETTINGS), the response to the upgraded request on stream 1 in the same
 * write, then a SETTINGS ACK for the client's preface.
 */
const H2C_UPGRADE_SERVER = `
const net = require('net');
const frame = (type, flags, stream, payload) => {
  const h = Buffer.alloc(9);
  h.writeUIntBE(payload.length, 0, 3);
  h[3] = type; h[4] = flags; h.writeUInt32BE(stream, 5);
  return Buffer.concat([h, payload]);
};
// :status 200 (static index 8), then x-upgraded: yes as a literal with incremental indexing.
const block = Buffer.concat([Buffer.from([0x88, 0x40, 10]), Buffer.from('x-upgraded'), Buffer.from([3]), Buffer.from('yes')]);
net.createServer((sock) => {
  let head = Buffer.alloc(0);
  let state = 'http1';
  sock.on('data', (d) => {
    if (state === 'http1') {
      head = Buffer.concat([head, d]);
      if (head.indexOf('\\r\\n\\r\\n') < 0) return;
      state = 'h2';
      sock.write(Buffer.concat([
        Buffer.from('HTTP/1.1 101 Switching Protocols\\r\\nConnection: Upgrade\\r\\nUpgrade: h2c\\r\\n\\r\\n'),
        frame(4, 0, 0, Buffer.alloc(0)),
        frame(1, 4, 1, block),
        frame(0, 1, 1, Buffer.from('upgraded')),
      ]));
    } else if (state === 'h2') {
      state = 'acked';
      sock.write(frame(4, 1, 0, Buffer.alloc(0)));
    }
  });
  sock.on('error', () => {});
}).listen(Number(process.argv[1]), '127.0.0.1', () => console.log('listening'));
`;

describe('HTTP/2 over cleartext with real eBPF', () => {
  it('nghttp -> node http2 server: custom headers and status, client and server records', async (t) => {
    if (!requireEbpf(t) || !requireCommand(t, '/usr/bin/nghttp')) return;
    const { port, pid: serverPid } = await nodeServer(t, NODE_H2_SERVER);
    const cap = await capture(t, ports(port));
    const ng = await run('nghttp', ['-n', '-H', 'x-custom: from-nghttp', '-H', 'traceparent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', `http://127.0.0.1:${port}/ng/path?x=1`]);
    assert.equal(ng.code, 0, ng.stderr);
    await cap.sink.waitFor((rs) => byPid(rs, ng.pid).length >= 1 && byPid(rs, serverPid).length >= 1, 15000, 'nghttp and server records');
    const { records, summary } = await cap.finish();
    assert.match(summary, /http\/2 connections \d+, records with unknown HPACK state 0/);
    const client = byPid(records, ng.pid);
    const srv = byPid(records, serverPid);
    assert.equal(client.length, 1);
    assert.equal(srv.length, 1);
    assert.equal(attr(client[0], 'headertap.role'), 'client');
    assert.equal(client[0].resource['process.executable.name'], 'nghttp');
    assert.equal(attr(srv[0], 'headertap.role'), 'server');
    for (const r of [client[0], srv[0]]) {
      assert.equal(r.body, 'GET /ng/path -> 200');
      assert.equal(attr(r, 'http.request.method'), 'GET');
      assert.equal(attr(r, 'url.path'), '/ng/path');
      assert.equal(attr(r, 'url.query'), 'x=1');
      assert.equal(attr(r, 'url.scheme'), 'http');
      assert.equal(attr(r, 'network.protocol.version'), '2');
      assert.equal(attr(r, 'http.response.status_code'), 200);
      assert.equal(attr(r, 'server.address'), '127.0.0.1');
      assert.equal(attr(r, 'server.port'), port);
      assert.match(String(attr(r, 'user_agent.original')), /^nghttp2\//);
      assert.deepEqual(header(r, 'request', 'x-custom'), ['from-nghttp']);
      assert.deepEqual(header(r, 'response', 'x-h2-server'), ['yes']);
      assert.deepEqual(header(r, 'response', 'x-echo'), ['from-nghttp']);
      assert.equal(header(r, 'request', ':path'), undefined, 'pseudo-headers are not header attributes');
      assert.equal(r.trace_id, '4bf92f3577b34da6a3ce929d0e0e4736');
      assert.equal(attr(r, 'headertap.truncated'), undefined);
      assert.ok((attr(r, 'headertap.duration_ns') as number) > 0);
    }
  });

  it('nghttp --upgrade: an HTTP/1.1 request upgraded to h2c gets its HTTP/2 response, both sides', async (t) => {
    if (!requireEbpf(t) || !requireCommand(t, '/usr/bin/nghttp')) return;
    const { port, pid: serverPid } = await nodeServer(t, H2C_UPGRADE_SERVER);
    const cap = await capture(t, ports(port));
    const ng = await run('nghttp', ['-u', '-n', '-H', 'x-custom: upgrading', `http://127.0.0.1:${port}/up`]);
    assert.equal(ng.code, 0, ng.stderr);
    await cap.sink.waitFor((rs) => byPid(rs, ng.pid).length >= 1 && byPid(rs, serverPid).length >= 1, 15000, 'upgrade records');
    const { records } = await cap.finish();
    for (const r of [...byPid(records, ng.pid), ...byPid(records, serverPid)]) {
      assert.equal(r.body, 'GET /up -> 200');
      assert.equal(attr(r, 'network.protocol.version'), '1.1', 'the request itself was HTTP/1.1');
      assert.deepEqual(header(r, 'request', 'upgrade'), ['h2c']);
      assert.deepEqual(header(r, 'request', 'x-custom'), ['upgrading']);
      assert.deepEqual(header(r, 'response', 'x-upgraded'), ['yes'], 'the answer came as HTTP/2 on stream 1');
      assert.equal(attr(r, 'headertap.truncated'), undefined);
    }
    assert.equal(records.length, 2, 'no record for the 101 itself');
  });

  it('a header block larger than the 16 KiB the kernel copies per call: the fields before the cut, marked truncated', async (t) => {
    if (!requireEbpf(t) || !requireCommand(t, '/usr/bin/nghttp')) return;
    const { port, pid: serverPid } = await nodeServer(t, NODE_H2_SERVER);
    const cap = await capture(t, ports(port));
    const ng = await run('nghttp', ['-n', '-H', 'x-before: 1', '-H', `x-big: ${'v'.repeat(24000)}`, `http://127.0.0.1:${port}/big`]);
    assert.equal(ng.code, 0, ng.stderr);
    await cap.sink.waitFor((rs) => byPid(rs, ng.pid).length >= 1 && byPid(rs, serverPid).length >= 1, 15000, 'records of the big request');
    const { records, summary } = await cap.finish({ cleanRun: false });
    assert.match(summary, /exchanges 2 \(unanswered 0, truncated [1-9]/);
    for (const r of [...byPid(records, ng.pid), ...byPid(records, serverPid)]) {
      assert.equal(attr(r, 'url.path'), '/big');
      assert.equal(attr(r, 'http.response.status_code'), 200);
      assert.deepEqual(header(r, 'request', 'x-before'), ['1']);
      assert.equal(header(r, 'request', 'x-big'), undefined);
      assert.equal(attr(r, 'headertap.truncated'), true);
      // Cut by the copy limit if it came in one call, else over --max-header-bytes (16384).
      assert.match(String(attr(r, 'headertap.truncated_reason')), /^(capture_gap|header_limit)$/);
      assert.deepEqual(header(r, 'response', 'x-h2-server'), ['yes']);
    }
  });

  it('node http2 client -> node http2 server: three streams on one connection, both sides', async (t) => {
    if (!requireEbpf(t)) return;
    const { port, pid: serverPid } = await nodeServer(t, NODE_H2_SERVER);
    const cap = await capture(t, ports(port));
    const client = await run(process.execPath, ['-e', NODE_H2_CLIENT, String(port)]);
    assert.equal(client.code, 0, client.stderr);
    await cap.sink.waitFor((rs) => byPid(rs, client.pid).length >= 3 && byPid(rs, serverPid).length >= 3, 15000, '3 records per side');
    const { records } = await cap.finish();
    for (const [pid, role] of [
      [client.pid, 'client'],
      [serverPid, 'server'],
    ] as const) {
      const mine = byPid(records, pid);
      assert.deepEqual(
        mine.map((r) => `${String(attr(r, 'headertap.role'))} ${r.body} ${r.severity_text}`),
        [`${role} GET /first -> 200 INFO`, `${role} GET /missing -> 404 WARN`, `${role} POST /post -> 200 INFO`],
      );
      assert.deepEqual(
        mine.map((r) => [header(r, 'request', 'x-custom'), header(r, 'response', 'x-echo')]),
        [
          [['node-client'], ['node-client']],
          [['node-client'], ['node-client']], // both from the HPACK dynamic table this time
          [['posted'], ['posted']],
        ],
      );
      assert.deepEqual(header(mine[2], 'request', 'content-type'), ['text/plain']);
      assert.deepEqual(
        mine.map((r) => [attr(r, 'url.full'), attr(r, 'error.type')]),
        role === 'client'
          ? [
              [`http://127.0.0.1:${port}/first?q=1`, undefined],
              [`http://127.0.0.1:${port}/missing`, '404'],
              [`http://127.0.0.1:${port}/post`, undefined],
            ]
          : [
              [undefined, undefined],
              [undefined, undefined], // a 404 is the caller's error
              [undefined, undefined],
            ],
        'url.full on the client side only; error.type for a client 4xx',
      );
      assert.equal(new Set(mine.map((r) => attr(r, 'client.port'))).size, 1, 'one connection');
      assert.ok(mine.every((r) => attr(r, 'headertap.truncated') === undefined));
    }
  });
});

/** Three calls on a generic (protobuf-free) service: unary with metadata, server streaming with trailers, a NOT_FOUND. */
const GRPC_SERVICE = `
const grpc = require(process.argv[1]);
const raw = { requestSerialize: (b) => b, requestDeserialize: (b) => b, responseSerialize: (b) => b, responseDeserialize: (b) => b };
const service = {
  SayHello: { path: '/demo.Greeter/SayHello', requestStream: false, responseStream: false, ...raw },
  ListItems: { path: '/demo.Greeter/ListItems', requestStream: false, responseStream: true, ...raw },
  Lookup: { path: '/demo.Greeter/Lookup', requestStream: false, responseStream: false, ...raw },
};
`;

const GRPC_SERVER = `${GRPC_SERVICE}
const server = new grpc.Server();
server.addService(service, {
  SayHello(call, cb) {
    const md = new grpc.Metadata();
    md.set('x-reply', 'hello-md');
    call.sendMetadata(md);
    cb(null, Buffer.from('hi ' + call.request));
  },
  ListItems(call) {
    for (let i = 0; i < 3; i++) call.write(Buffer.from('item' + i));
    const trailers = new grpc.Metadata();
    trailers.set('x-trailer', 'done');
    call.end(trailers);
  },
  Lookup(call, cb) {
    cb({ code: grpc.status.NOT_FOUND, details: 'no such thing' });
  },
});
server.bindAsync('127.0.0.1:' + process.argv[2], grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) throw err;
  console.log('listening');
});
`;

const GRPC_CLIENT = `${GRPC_SERVICE}
const Client = grpc.makeGenericClientConstructor(service, 'Greeter');
const client = new Client('127.0.0.1:' + process.argv[2], grpc.credentials.createInsecure());
const md = (o) => { const m = new grpc.Metadata(); for (const [k, v] of Object.entries(o)) m.set(k, v); return m; };
client.SayHello(Buffer.from('bob'), md({ 'x-tenant': 'acme', authorization: 'Bearer s3cr3t-value' }), (err, res) => {
  if (err || String(res) !== 'hi bob') process.exit(2);
  const items = [];
  const stream = client.ListItems(Buffer.from('list'), md({ 'x-stream': 'yes' }));
  stream.on('data', (d) => items.push(String(d)));
  stream.on('error', () => process.exit(3));
  stream.on('end', () => {
    if (items.length !== 3) process.exit(4);
    client.Lookup(Buffer.from('nothing'), md({ 'x-lookup': 'missing' }), (err2) => {
      client.close();
      process.exit(err2 && err2.code === grpc.status.NOT_FOUND ? 0 : 5);
    });
  });
});
`;

/** A grpcio (C core) client: SayHello, Lookup (NOT_FOUND) and a method the server does not define (UNIMPLEMENTED), on one channel. */
const GRPCIO_CLIENT = `
import grpc, sys
channel = grpc.insecure_channel('127.0.0.1:' + sys.argv[1])
assert channel.unary_unary('/demo.Greeter/SayHello')(b'py', timeout=10) == b'hi py'
for path, code in (('/demo.Greeter/Lookup', grpc.StatusCode.NOT_FOUND), ('/demo.Greeter/Nope', grpc.StatusCode.UNIMPLEMENTED)):
    try:
        channel.unary_unary(path)(b'x', timeout=10)
        sys.exit('no error from ' + path)
    except grpc.RpcError as e:
        assert e.code() == code, (path, e.code())
channel.close()
`;

describe('gRPC (@grpc/grpc-js, h2c) with real eBPF', () => {
  it('unary and server-streaming calls with metadata, and a NOT_FOUND: rpc.* attributes of semconv 1.45, grpc-status from trailers', async (t) => {
    if (!requireEbpf(t)) return;
    const { port, pid: serverPid } = await nodeServer(t, GRPC_SERVER, GRPC_JS);
    const cap = await capture(t, ports(port));
    const client = await run(process.execPath, ['-e', GRPC_CLIENT, GRPC_JS, String(port)]);
    assert.equal(client.code, 0, `grpc client exit ${client.code}: ${client.stderr}`);
    await cap.sink.waitFor((rs) => byPid(rs, client.pid).length >= 3 && byPid(rs, serverPid).length >= 3, 15000, '3 gRPC records per side');
    const { records } = await cap.finish();
    assert.ok(!JSON.stringify(records).includes('s3cr3t'), 'the authorization metadata is redacted everywhere');
    for (const [pid, role] of [
      [client.pid, 'client'],
      [serverPid, 'server'],
    ] as const) {
      const [hello, list, lookup] = byPid(records, pid);
      for (const r of [hello, list, lookup]) {
        assert.equal(attr(r, 'headertap.role'), role);
        assert.equal(attr(r, 'rpc.system.name'), 'grpc');
        for (const deprecated of ['rpc.system', 'rpc.service', 'rpc.grpc.status_code']) assert.equal(attr(r, deprecated), undefined, `${deprecated} only with rpc/dup`);
        assert.equal(attr(r, 'http.request.method'), 'POST');
        assert.equal(attr(r, 'network.protocol.version'), '2');
        assert.equal(attr(r, 'http.response.status_code'), 200);
        assert.equal(attr(r, 'server.port'), port);
        assert.deepEqual(header(r, 'request', 'content-type'), ['application/grpc']);
        assert.match(String(attr(r, 'user_agent.original')), /^grpc-node-js\//);
        assert.equal(attr(r, 'headertap.truncated'), undefined);
      }
      assert.equal(attr(hello, 'rpc.method'), 'demo.Greeter/SayHello');
      assert.equal(attr(hello, 'url.path'), '/demo.Greeter/SayHello');
      assert.equal(attr(hello, 'rpc.status_code'), 'OK');
      assert.equal(hello.body, 'POST /demo.Greeter/SayHello -> 200 grpc OK');
      assert.deepEqual(header(hello, 'request', 'x-tenant'), ['acme']);
      assert.deepEqual(header(hello, 'request', 'authorization'), ['[REDACTED]']);
      assert.deepEqual(header(hello, 'response', 'x-reply'), ['hello-md']);
      assert.deepEqual(header(hello, 'response', 'grpc-status'), ['0']);

      assert.equal(attr(list, 'rpc.method'), 'demo.Greeter/ListItems');
      assert.equal(attr(list, 'rpc.status_code'), 'OK');
      assert.deepEqual(header(list, 'request', 'x-stream'), ['yes']);
      assert.deepEqual(header(list, 'response', 'x-trailer'), ['done'], 'trailing metadata');

      assert.equal(attr(lookup, 'rpc.method'), 'demo.Greeter/Lookup');
      assert.equal(attr(lookup, 'rpc.status_code'), 'NOT_FOUND');
      assert.deepEqual(header(lookup, 'response', 'grpc-message'), ['no%20such%20thing']);
      assert.deepEqual(header(lookup, 'request', 'x-lookup'), ['missing']);
      assert.equal(lookup.severity_text, role === 'client' ? 'ERROR' : 'WARN');
    }
  });

  it('a grpcio (C core) client, OTEL_SEMCONV_STABILITY_OPT_IN=rpc/dup, --emit-spans: UNIMPLEMENTED is _OTHER, spans named {rpc.method}', async (t) => {
    if (!requireEbpf(t) || !requirePythonModule(t, 'grpc', 'python3-grpcio')) return;
    const { port, pid: serverPid } = await nodeServer(t, GRPC_SERVER, GRPC_JS);
    const cap = await capture(t, [...ports(port), '--emit-spans'], { OTEL_SEMCONV_STABILITY_OPT_IN: 'http,rpc/dup' });
    const client = await run(PYTHON, ['-c', GRPCIO_CLIENT, String(port)]);
    assert.equal(client.code, 0, `grpcio client exit ${client.code}: ${client.stderr}`);
    const done = (rs: FlatRecord[]) => byPid(rs, client.pid).length >= 3 && byPid(rs, serverPid).length >= 3;
    await cap.sink.waitFor(done, 15000, '3 gRPC records per side');
    await cap.sink.waitForSpans((ss) => ss.length >= 6, 15000, 'a span per record');
    const { records } = await cap.finish();
    const spans = cap.sink.spans();
    for (const [pid, role] of [
      [client.pid, 'client'],
      [serverPid, 'server'],
    ] as const) {
      const mine = byPid(records, pid);
      assert.equal(mine.length, 3, `${role}: nothing extra arrived`);
      const byPath = (p: string) => mine.find((r) => attr(r, 'url.path') === p)!;
      const hello = byPath('/demo.Greeter/SayHello');
      const lookup = byPath('/demo.Greeter/Lookup');
      const nope = byPath('/demo.Greeter/Nope');
      for (const r of mine) {
        assert.equal(attr(r, 'headertap.role'), role);
        assert.equal(attr(r, 'rpc.system.name'), 'grpc');
        assert.equal(attr(r, 'rpc.system'), 'grpc', 'rpc/dup: the deprecated name too');
        assert.equal(attr(r, 'rpc.service'), 'demo.Greeter');
        assert.match(String(attr(r, 'user_agent.original')), /^grpc-python\//);
      }
      assert.equal(attr(hello, 'rpc.method'), 'demo.Greeter/SayHello');
      assert.equal(attr(hello, 'rpc.method_original'), undefined);
      assert.equal(attr(hello, 'rpc.status_code'), 'OK');
      assert.equal(attr(hello, 'rpc.grpc.status_code'), 0);
      assert.equal(attr(lookup, 'rpc.method'), 'demo.Greeter/Lookup');
      assert.equal(attr(lookup, 'rpc.status_code'), 'NOT_FOUND');
      assert.equal(attr(lookup, 'rpc.grpc.status_code'), 5);
      assert.equal(attr(nope, 'rpc.method'), '_OTHER', 'a method the server does not know');
      assert.equal(attr(nope, 'rpc.method_original'), 'demo.Greeter/Nope');
      assert.equal(attr(nope, 'rpc.status_code'), 'UNIMPLEMENTED');
      assert.equal(attr(nope, 'rpc.grpc.status_code'), 12);
      assert.equal(nope.severity_text, 'ERROR', 'UNIMPLEMENTED is an error on both sides');
      assert.deepEqual(
        [hello, lookup, nope].map((r) => attr(r, 'error.type')),
        role === 'client' ? [undefined, 'NOT_FOUND', 'UNIMPLEMENTED'] : [undefined, undefined, 'UNIMPLEMENTED'],
        'error.type: any non-OK code for the client, only server errors for the server',
      );
      assert.equal(attr(hello, 'url.full'), role === 'client' ? `http://127.0.0.1:${port}/demo.Greeter/SayHello` : undefined);

      const spanOf = (r: FlatRecord) => spans.filter((s) => s.resource['process.pid'] === pid && s.attributes['url.path'] === attr(r, 'url.path'));
      assert.deepEqual(
        [hello, lookup, nope].map((r) => spanOf(r).map((s) => [s.name, s.kind, s.status.code, s.attributes['error.type']])),
        [hello, lookup, nope].map((r) => [[r === nope ? 'grpc' : attr(r, 'rpc.method'), role.toUpperCase(), attr(r, 'error.type') ? 'ERROR' : 'UNSET', attr(r, 'error.type')]]),
        'one span per record, named {rpc.method} (grpc for _OTHER), failed when the record has an error.type',
      );
    }
  });

  it('never records its own OTLP/gRPC export (HTTP/2), not even at the receiving end, with no filter', async (t) => {
    if (!requireEbpf(t)) return;
    const { port, pid: serverPid } = await nodeServer(t, GRPC_SERVER, GRPC_JS);
    const cap = await capture(t, []); // no filter at all: the export to the sink in this process is HTTP/2 too
    for (let i = 0; i < 3; i++) {
      const client = await run(process.execPath, ['-e', GRPC_CLIENT, GRPC_JS, String(port)]);
      assert.equal(client.code, 0, client.stderr);
      // each round's records are exported while capture is on
      await cap.sink.waitFor((rs) => byPid(rs, client.pid).length >= 3, 15000, `records of round ${i}`);
    }
    const { records } = await cap.finish({ cleanRun: false }); // other programs on the host may be anything
    assert.ok(cap.sink.batches.length >= 3, 'several exports happened during capture');
    assert.ok(byPid(records, serverPid).length >= 9, 'capture worked for the gRPC server');
    // This agent's export connection, at either end. (Other OTLP exporters on the host are traffic like any other.)
    const own = records.filter(
      (r) =>
        r.resource['process.pid'] === cap.agent.pid ||
        r.resource['process.pid'] === process.pid ||
        attr(r, 'network.peer.port') === cap.sink.grpcPort ||
        attr(r, 'network.local.port') === cap.sink.grpcPort,
    );
    assert.deepEqual(own, [], 'no record about headertap exporting');
  });
});

/**
 * Opens one HTTP/2 session, makes two requests (filling the HPACK tables),
 * then waits for SIGUSR2 and makes three more on the same connection. Prints
 * what it sent and received as JSON, one line per request.
 */
const MIDSTREAM_CLIENT = `
const http2 = require('http2');
const session = http2.connect('http://127.0.0.1:' + process.argv[1]);
function get(i) {
  const headers = { ':path': '/r/' + i, 'x-custom': 'same-every-time', ['x-req-' + i]: 'v' + i };
  return new Promise((resolve, reject) => {
    const req = session.request(headers);
    req.on('response', (h) => {
      const received = {};
      for (const [k, v] of Object.entries(h)) received[k] = String(v);
      console.log(JSON.stringify({ i, sent: headers, received }));
    });
    req.on('error', reject);
    req.resume();
    req.on('end', resolve);
  });
}
(async () => {
  await get(0);
  await get(1);
  console.log('joined?');
  await new Promise((resolve) => process.once('SIGUSR2', resolve));
  for (let i = 2; i < 5; i++) await get(i);
  session.close(() => process.exit(0));
})();
`;

describe('HTTP/2 joined mid-connection with real eBPF', () => {
  it('an agent started after the connection: decodable fields only, never a wrong value, hpack_state_unknown', async (t) => {
    if (!requireEbpf(t)) return;
    const { port, pid: serverPid } = await nodeServer(t, NODE_H2_SERVER);
    const client = background(t, process.execPath, ['-e', MIDSTREAM_CLIENT, String(port)]);
    for (let i = 0; !client.output().includes('joined?'); i++) {
      assert.ok(i < 200 && client.exitCode === null, `client did not get ready: ${client.output()}`);
      await new Promise((r) => setTimeout(r, 50));
    }
    const cap = await capture(t, ports(port)); // the connection and its HPACK tables already exist
    const exited = new Promise<number | null>((resolve) => client.once('exit', (code) => resolve(code)));
    process.kill(client.pid!, 'SIGUSR2');
    assert.equal(await exited, 0, client.output());
    await cap.sink.waitFor((rs) => byPid(rs, client.pid!).length >= 3 && byPid(rs, serverPid).length >= 3, 15000, '3 records per side');
    const { records, summary } = await cap.finish({ cleanRun: false });
    assert.match(summary, /parser resyncs 0, orphan responses 0/, 'every frame after the join was read in order');
    assert.match(summary, /records with unknown HPACK state 6/);

    const truth = new Map<string, { sent: Record<string, string>; received: Record<string, string> }>();
    for (const line of client.output().split('\n')) {
      if (line.startsWith('{')) {
        const o = JSON.parse(line) as { i: number; sent: Record<string, string>; received: Record<string, string> };
        truth.set(`/r/${o.i}`, o);
      }
    }
    for (const pid of [client.pid!, serverPid]) {
      const mine = byPid(records, pid);
      assert.deepEqual(
        mine.map((r) => attr(r, 'url.path')),
        ['/r/2', '/r/3', '/r/4'],
      );
      for (const r of mine) {
        const path = String(attr(r, 'url.path'));
        const { sent, received } = truth.get(path)!;
        const i = path.slice(3);
        assert.equal(attr(r, 'headertap.truncated'), true);
        assert.equal(attr(r, 'headertap.truncated_reason'), 'hpack_state_unknown');
        assert.equal(attr(r, 'http.request.method'), 'GET', 'a static-table reference still decodes');
        assert.equal(attr(r, 'http.response.status_code'), 200);
        assert.deepEqual(header(r, 'request', `x-req-${i}`), [`v${i}`], 'a new literal decodes');
        assert.equal(header(r, 'request', 'x-custom'), undefined, 'indexed before the join: missing, not guessed');
        // Every value present is exactly what crossed the wire.
        for (const [key, value] of Object.entries(r.attributes)) {
          const m = /^http\.(request|response)\.header\.(.+)$/.exec(key);
          if (!m) continue;
          const expected = (m[1] === 'request' ? sent : received)[m[2]];
          assert.deepEqual(value, [expected], `${key} on ${path}`);
        }
        if (attr(r, 'server.address') !== '127.0.0.1') assert.fail(`server.address ${String(attr(r, 'server.address'))}`);
      }
    }
  });
});
