/**
 * Real eBPF: trace context from every header format, one OTLP resource per
 * observed workload, the --cgroup filter in the kernel with container.id, and
 * secrets absent from the raw bytes of everything headertap writes.
 *
 * Not covered here: TLS (later issue); the masking rules in detail
 * (test/unit/recording-masker.test.ts, test/unit/redaction.test.ts).
 */
import assert from 'node:assert/strict';
import { createHmac, randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { hostname, tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import type { FlatRecord } from '../../src/common/flat-record';
import { HEADERTAP, PYTHON, attr, background, byPid, cgroupTree, freePort, requireCommand, requireEbpf, run, serverIn, startAgent, startNginx, waitForPort } from '../helpers/integration';
import { resourceLogsOf, startOtlpSink } from '../helpers/otlp-sink';

const NODE_SERVER = `
require('http').createServer((req, res) => {
  res.setHeader('Set-Cookie', 'sid=' + (process.env.COOKIE || 'none') + '; HttpOnly');
  res.end('ok');
}).listen(Number(process.argv[1]), '127.0.0.1');
`;

function spanIds(r: FlatRecord): string {
  return `${r.trace_id ?? '-'} ${r.span_id ?? '-'} ${r.trace_flags ?? '-'}`;
}

describe('trace context from request headers (real eBPF, curl -> nginx)', () => {
  it('traceparent, b3, X-B3-*, uber-trace-id, their precedence, and invalid values', async (t) => {
    if (!requireEbpf(t)) return;
    const nginx = await startNginx(t);
    const sink = await startOtlpSink();
    t.after(() => sink.stop());
    const agent = await startAgent(t, ['--endpoint', sink.endpoint, '--port', String(nginx.port)]);
    const cases: [string, string[], string][] = [
      ['w3c', ['TraceParent: 00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'], '4bf92f3577b34da6a3ce929d0e0e4736 00f067aa0ba902b7 1'],
      ['b3', ['b3: 80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1'], '80f198ee56343ba864fe8b2a57d3eff7 e457b5a2e4d86bd1 1'],
      ['xb3', ['X-B3-TraceId: 463ac35c9f6413ad48485a3953bb6124', 'X-B3-SpanId: a2fb4a1d1a96d312', 'X-B3-Sampled: 0'], '463ac35c9f6413ad48485a3953bb6124 a2fb4a1d1a96d312 0'],
      ['jaeger', ['Uber-Trace-Id: 0af7651916cd43dd8448eb211c80319c:b7ad6b7169203331:0:1'], '0af7651916cd43dd8448eb211c80319c b7ad6b7169203331 1'],
      [
        'all',
        [
          'uber-trace-id: 0af7651916cd43dd8448eb211c80319c:b7ad6b7169203331:0:1',
          'X-B3-TraceId: 463ac35c9f6413ad48485a3953bb6124',
          'X-B3-SpanId: a2fb4a1d1a96d312',
          'b3: 80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1',
          'traceparent: 00-11111111111111111111111111111111-2222222222222222-01',
        ],
        '11111111111111111111111111111111 2222222222222222 1',
      ],
      ['bad-w3c', ['traceparent: 00-zz-yy-01', 'b3: 80f198ee56343ba864fe8b2a57d3eff7-e457b5a2e4d86bd1-1'], '80f198ee56343ba864fe8b2a57d3eff7 e457b5a2e4d86bd1 1'],
      ['oversized', [`traceparent: 01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01-${'a'.repeat(3000)}`], '- - -'],
      ['bad-all', ['traceparent: 00-00000000000000000000000000000000-00f067aa0ba902b7-01', 'b3: nope', 'uber-trace-id: %zz'], '- - -'],
      ['none', [], '- - -'],
    ];
    for (const [name, headers] of cases) {
      const curl = await run('curl', ['-sS', ...headers.flatMap((h) => ['-H', h]), `http://127.0.0.1:${nginx.port}/tc/${name}`]);
      assert.equal(curl.code, 0, curl.stderr);
    }
    await sink.waitFor((rs) => rs.length >= 2 * cases.length, 15000, 'two records per request');
    const end = await agent.stop();
    assert.equal(end.code, 0, end.stderr);
    for (const [name, , expected] of cases) {
      const rs = sink.records().filter((r) => attr(r, 'url.path') === `/tc/${name}`);
      assert.deepEqual(
        rs.map((r) => `${String(attr(r, 'headertap.role'))} ${spanIds(r)}`).sort(),
        [`client ${expected}`, `server ${expected}`],
        name,
      );
    }
    assert.doesNotMatch(end.stderr, /\n\s+at /, 'no stack trace');
  });
});

describe('workload identity (real eBPF)', () => {
  it('two servers with different OTEL_SERVICE_NAME export under two resources with those names', async (t) => {
    if (!requireEbpf(t)) return;
    const [portA, portB] = [await freePort(), await freePort()];
    const a = background(t, process.execPath, ['-e', NODE_SERVER, String(portA)], { ...process.env, OTEL_SERVICE_NAME: 'orders-svc' });
    const b = background(t, process.execPath, ['-e', NODE_SERVER, String(portB)], {
      ...process.env,
      OTEL_RESOURCE_ATTRIBUTES: 'service.name=payments-svc,deployment.environment=test',
    });
    await Promise.all([waitForPort(portA), waitForPort(portB)]);
    const sink = await startOtlpSink();
    t.after(() => sink.stop());
    const agent = await startAgent(t, ['--endpoint', sink.endpoint, '--port', String(portA), '--port', String(portB), '--process-command-line']);
    const c1 = await run('curl', ['-sS', `http://127.0.0.1:${portA}/orders`]);
    const c2 = await run('curl', ['-sS', `http://127.0.0.1:${portB}/payments`]);
    assert.deepEqual([c1.code, c2.code], [0, 0]);
    await sink.waitFor((rs) => rs.length >= 4, 15000, 'client and server records of both calls');
    assert.equal((await agent.stop()).code, 0);

    const resources = sink.batches.flatMap((batch) => resourceLogsOf(batch.raw)).map((rl) => rl.resource);
    const byName = (n: string) => resources.filter((r) => r['service.name'] === n);
    assert.equal(byName('orders-svc').length >= 1 && byName('payments-svc').length >= 1, true, JSON.stringify(resources));
    assert.equal(byName('orders-svc')[0]['process.pid'], a.pid);
    assert.equal(byName('payments-svc')[0]['process.pid'], b.pid);
    assert.equal(byName('payments-svc')[0]['deployment.environment'], 'test', "the process's own resource attributes come along");
    assert.equal(byName('orders-svc')[0]['process.executable.name'], 'node');
    assert.match(String(byName('orders-svc')[0]['process.command_line']), /node -e [\s\S]*createServer/);
    assert.equal(typeof byName('orders-svc')[0]['host.name'], 'string');
    // curl names no service: its executable name is its service.name.
    assert.deepEqual(byName('curl').map((r) => r['process.pid']).sort(), [c1.pid, c2.pid].sort());
    assert.equal(resources.filter((r) => r['service.name'] === 'headertap').length, 0, 'no record under the agent');
    for (const r of sink.records()) {
      for (const key of Object.keys(r.resource)) assert.equal(attr(r, key), undefined, `${key} is on the resource, not on the record too`);
    }
  });
});

describe("host.name and headertap's own resource when headertap runs in a container (real eBPF)", () => {
  /** headertap in a UTS namespace of its own, named like a pod (what a DaemonSet pod without hostNetwork gets). */
  const inOwnUts = (t: TestContext): string[] | undefined =>
    requireCommand(t, '/usr/bin/unshare') && requireCommand(t, '/usr/bin/hostname')
      ? ['/usr/bin/unshare', '--uts', '/bin/sh', '-c', '/usr/bin/hostname ht-pod-test && exec "$0" "$@"', process.execPath, HEADERTAP]
      : undefined;

  async function capture(t: TestContext, env: NodeJS.ProcessEnv): Promise<{ records: FlatRecord[]; agentResources: Record<string, unknown>[]; stderr: string }> {
    const command = inOwnUts(t)!;
    const port = await freePort();
    background(t, process.execPath, ['-e', NODE_SERVER, String(port)]);
    await waitForPort(port);
    const sink = await startOtlpSink();
    t.after(() => sink.stop());
    const agent = await startAgent(t, ['--endpoint', sink.endpoint, '--port', String(port), '--verbose'], env, command);
    const c = await run('curl', ['-sS', '-o', '/dev/null', `http://127.0.0.1:${port}/uts`]);
    assert.equal(c.code, 0, c.stderr);
    await sink.waitFor((rs) => rs.length >= 2, 15000, 'client and server records');
    const end = await agent.stop();
    assert.equal(end.code, 0, end.stderr);
    return { records: sink.records(), agentResources: sink.metrics.filter((m) => m.name.startsWith('headertap.')).map((m) => m.resource), stderr: end.stderr };
  }

  it("names the host (read from the host's UTS namespace), not the container; OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES on its own resource", async (t) => {
    if (!requireEbpf(t) || !inOwnUts(t)) return;
    assert.notEqual(hostname(), 'ht-pod-test');
    const got = await capture(t, { OTEL_SERVICE_NAME: 'ht-node-agent', OTEL_RESOURCE_ATTRIBUTES: 'k8s.node.name=node-test-1,deployment.environment.name=test' });
    assert.match(got.stderr, /host\.name \S+ \(from host-uts\)/);
    for (const r of got.records) assert.equal(r.resource['host.name'], hostname(), `${String(r.resource['service.name'])}: the host's name`);
    assert.ok(got.agentResources.length > 0, 'self-metrics arrived');
    for (const res of got.agentResources) {
      assert.equal(res['service.name'], 'ht-node-agent');
      assert.equal(res['k8s.node.name'], 'node-test-1');
      assert.equal(res['deployment.environment.name'], 'test');
      assert.equal(res['host.name'], hostname());
    }
  });

  it('without a way into the host UTS namespace (no nsenter): K8S_NODE_NAME; without that either, the container name and a warning', async (t) => {
    if (!requireEbpf(t) || !inOwnUts(t)) return;
    const noNsenter = { PATH: '/nonexistent' };
    const node = await capture(t, { ...noNsenter, K8S_NODE_NAME: 'node-test-2' });
    for (const r of node.records) assert.equal(r.resource['host.name'], 'node-test-2');
    for (const res of node.agentResources) assert.equal(res['host.name'], 'node-test-2');
    const none = await capture(t, noNsenter);
    for (const r of none.records) assert.equal(r.resource['host.name'], 'ht-pod-test');
    assert.match(none.stderr, /warning: host\.name is this container's hostname \(ht-pod-test\)/);
  });
});

/** One Docker-named scope below a test cgroup. */
function testCgroup(t: TestContext): { parent: string; scope: string; containerId: string } | undefined {
  const containerId = randomBytes(32).toString('hex');
  const tree = cgroupTree(t, [`docker-${containerId}.scope`]);
  return tree && { parent: tree.parent, scope: tree.leaves[0], containerId };
}

describe('--cgroup (real eBPF, a cgroup the test creates)', () => {
  it('captures only processes below the cgroup, with container.id from its path', async (t) => {
    if (!requireEbpf(t)) return;
    const cg = testCgroup(t);
    if (!cg) return;
    const [inside, outside] = [await freePort(), await freePort()];
    const srvIn = serverIn(t, cg.scope, inside);
    const srvOut = background(t, PYTHON, ['-m', 'http.server', String(outside), '--bind', '127.0.0.1']);
    await Promise.all([waitForPort(inside), waitForPort(outside)]);
    assert.ok(readFileSync(path.join(cg.scope, 'cgroup.procs'), 'utf8').split('\n').includes(String(srvIn.pid)), 'server is in the cgroup');

    const sink = await startOtlpSink();
    t.after(() => sink.stop());
    // The parent directory: its subtree holds the scope.
    const agent = await startAgent(t, ['--endpoint', sink.endpoint, '--cgroup', cg.parent, '--port', String(inside), '--port', String(outside)]);
    assert.match(agent.stderr(), new RegExp(`filters: .*cgroup ${cg.parent}`));
    for (const port of [inside, outside, inside]) {
      const c = await run('curl', ['-sS', '-o', '/dev/null', `http://127.0.0.1:${port}/cg`]);
      assert.equal(c.code, 0, c.stderr);
    }
    await sink.waitFor((rs) => rs.length >= 2, 15000, 'the two records of the server in the cgroup');
    const outsider = await run('curl', ['-sS', '-o', '/dev/null', `http://127.0.0.1:${outside}/cg-last`]);
    assert.equal(outsider.code, 0);
    const end = await agent.stop();
    assert.equal(end.code, 0, end.stderr);
    const records = sink.records();
    assert.deepEqual(
      records.map((r) => `${String(r.resource['process.pid'])} ${String(attr(r, 'headertap.role'))} ${String(attr(r, 'server.port'))}`),
      [`${srvIn.pid} server ${inside}`, `${srvIn.pid} server ${inside}`],
      'nothing from curl (outside) nor from the other server',
    );
    assert.equal(byPid(records, srvOut.pid!).length, 0);
    for (const r of records) {
      assert.equal(r.resource['container.id'], cg.containerId);
      assert.equal(attr(r, 'container.id'), undefined, 'on the resource only');
    }
  });

  it('a path relative to the cgroup2 mount, as /proc/PID/cgroup shows it, works too', async (t) => {
    if (!requireEbpf(t)) return;
    const cg = testCgroup(t);
    if (!cg) return;
    const sink = await startOtlpSink();
    t.after(() => sink.stop());
    const rel = `/${path.basename(cg.parent)}`;
    const agent = await startAgent(t, ['--endpoint', sink.endpoint, '--cgroup', rel]);
    assert.match(agent.stderr(), new RegExp(`filters: cgroup ${cg.parent}`));
    assert.equal((await agent.stop()).code, 0);
  });
});

describe('Kubernetes pods (real eBPF, cgroups named as the kubelet names them)', () => {
  it('k8s.pod.uid and container.id on the resource of a server in a pod cgroup, systemd and cgroupfs drivers', async (t) => {
    if (!requireEbpf(t)) return;
    const uuid = (): string => {
      const h = randomBytes(16).toString('hex');
      return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
    };
    const pods = [
      { driver: 'systemd', uid: uuid(), containerId: randomBytes(32).toString('hex') },
      { driver: 'cgroupfs', uid: uuid(), containerId: randomBytes(32).toString('hex') },
    ];
    const [systemd, cgroupfs] = pods;
    const u = systemd.uid.replace(/-/g, '_');
    const tree = cgroupTree(t, [
      `kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${u}.slice/cri-containerd-${systemd.containerId}.scope`,
      `kubepods/burstable/pod${cgroupfs.uid}/${cgroupfs.containerId}`,
    ]);
    if (!tree) return;
    const ports = [await freePort(), await freePort()];
    const servers = tree.leaves.map((dir, i) => serverIn(t, dir, ports[i]));
    await Promise.all(ports.map((p) => waitForPort(p)));
    const sink = await startOtlpSink();
    t.after(() => sink.stop());
    const agent = await startAgent(t, ['--endpoint', sink.endpoint, ...ports.flatMap((p) => ['--port', String(p)])]);
    for (const port of ports) {
      const c = await run('curl', ['-sS', '-o', '/dev/null', `http://127.0.0.1:${port}/pod`]);
      assert.equal(c.code, 0, c.stderr);
    }
    await sink.waitFor((rs) => rs.length >= 4, 15000, 'client and server records of both calls');
    assert.equal((await agent.stop()).code, 0);

    for (const [i, pod] of pods.entries()) {
      const server = byPid(sink.records(), servers[i].pid!);
      assert.equal(server.length, 1, `one record of the ${pod.driver} server`);
      assert.equal(server[0].resource['k8s.pod.uid'], pod.uid, `${pod.driver}: the pod UID, dashes restored`);
      assert.equal(server[0].resource['container.id'], pod.containerId, pod.driver);
    }
    // curl runs in no pod: its resource says so by having neither.
    for (const r of sink.records().filter((x) => attr(x, 'headertap.role') === 'client')) {
      assert.equal(r.resource['k8s.pod.uid'], undefined);
      assert.equal(r.resource['container.id'], undefined);
    }
  });
});

const SECRET = {
  auth: 'AUTH-S3CRET-1a2b',
  cookie: 'COOKIE-S3CRET-3c4d',
  query: 'QUERY-S3CRET-5e6f',
  session: 'SESSION-S3CRET-7a8b',
  referer: 'REFERER-S3CRET-9c0d',
  proxy: 'PROXY-S3CRET-e1f2',
  setCookie: 'SETCOOKIE-S3CRET-a3b4',
  basic: 'BASIC-S3CRET-c5d6',
  key: 'HASHKEY-S3CRET-0123456789',
};

/** An absolute-form request with credentials in the URL, the way a proxy client sends it. */
const PY_PROXY_FORM = `
import socket, sys
s = socket.create_connection(('127.0.0.1', int(sys.argv[1])))
s.sendall(b'GET http://puser:${SECRET.proxy}@127.0.0.1:' + sys.argv[1].encode() + b'/proxied?x=1 HTTP/1.1\\r\\nHost: 127.0.0.1\\r\\nConnection: close\\r\\n\\r\\n')
while s.recv(65536):
    pass
`;

function assertNoSecret(what: string, bytes: Buffer | string): void {
  const text = Buffer.isBuffer(bytes) ? bytes.toString('latin1') : bytes;
  for (const [name, s] of Object.entries(SECRET)) assert.ok(!text.includes(s), `${what} holds the ${name} secret`);
  // base64 of user:password (curl -u) must not survive either
  assert.ok(!text.includes(Buffer.from(`bob:${SECRET.basic}`).toString('base64')), `${what} holds the basic-auth credentials`);
}

describe('secrets never appear in anything headertap writes (real eBPF)', () => {
  it('records over OTLP, --console, --verbose logs, --record, and the receiver printing a replay', async (t) => {
    if (!requireEbpf(t)) return;
    const dir = mkdtempSync(path.join(tmpdir(), 'ht-secrets-'));
    const keyFile = path.join(dir, 'hash.key');
    writeFileSync(keyFile, `${SECRET.key}\n`, { mode: 0o600 });
    const recording = path.join(dir, 'capture.htrec');
    const port = await freePort();
    background(t, process.execPath, ['-e', NODE_SERVER, String(port)], { ...process.env, COOKIE: SECRET.setCookie });
    await waitForPort(port);
    const sink = await startOtlpSink();
    t.after(() => sink.stop());
    const agent = await startAgent(t, [
      '--endpoint', sink.endpoint,
      '--port', String(port),
      '--console',
      '--verbose',
      '--record', recording,
      '--hash-headers', 'x-session',
      '--hash-key-file', keyFile,
      '--process-command-line',
    ]);
    const curl = await run('curl', [
      '-sS',
      '-H', `Authorization: Bearer ${SECRET.auth}`,
      '-H', `Cookie: sid=${SECRET.cookie}`,
      '-H', `X-Session: ${SECRET.session}`,
      '-H', `Referer: http://app.test/page?reset_token=${SECRET.referer}`,
      `http://127.0.0.1:${port}/login?user=bob&access_token=${SECRET.query}`,
    ]);
    assert.equal(curl.code, 0, curl.stderr);
    const basic = await run('curl', ['-sS', '-u', `bob:${SECRET.basic}`, `http://127.0.0.1:${port}/basic`]);
    assert.equal(basic.code, 0, basic.stderr);
    const proxy = await run(PYTHON, ['-c', PY_PROXY_FORM, String(port)]);
    assert.equal(proxy.code, 0, proxy.stderr);
    await sink.waitFor((rs) => rs.length >= 6, 15000, 'client and server records of the three calls');
    const end = await agent.stop();
    assert.equal(end.code, 0, end.stderr);

    // The records are useful: secrets replaced, not the records dropped.
    const login = sink.records().filter((r) => attr(r, 'url.path') === '/login');
    assert.equal(login.length, 2);
    const expectedHash = `sha256:${createHmac('sha256', SECRET.key).update(SECRET.session).digest('hex').slice(0, 16)}`;
    for (const r of login) {
      assert.deepEqual(attr(r, 'http.request.header.authorization'), ['[REDACTED]']);
      assert.deepEqual(attr(r, 'http.request.header.cookie'), ['[REDACTED]']);
      assert.deepEqual(attr(r, 'http.request.header.x-session'), [expectedHash], 'same key and value: the same hash on both sides');
      assert.equal(attr(r, 'url.query'), 'user=bob&access_token=[REDACTED]');
      assert.deepEqual(attr(r, 'http.request.header.referer'), ['http://app.test/page?reset_token=[REDACTED]']);
      assert.deepEqual(attr(r, 'http.response.header.set-cookie'), ['[REDACTED]']);
    }
    const proxied = sink.records().filter((r) => attr(r, 'url.path') === '/proxied');
    assert.equal(proxied.length, 2);

    const leaking = sink.records().filter((r) => Object.values(SECRET).some((s) => JSON.stringify(r).includes(s)));
    assert.deepEqual(leaking, [], 'no record holds a secret');
    assertNoSecret('the OTLP export (raw protobuf bytes)', Buffer.concat(sink.batches.map((b) => b.raw)));
    assertNoSecret('--console output', end.stdout);
    assert.ok(end.stdout.includes('/login'), '--console printed the records');
    assertNoSecret('stderr (--verbose)', end.stderr);
    const recorded = readFileSync(recording);
    assert.ok(recorded.includes('/login?user=bob&access_token='), 'the recording has the capture');
    assertNoSecret('the --record file', recorded);

    // Replaying the recording into the embedded receiver, which prints what it receives.
    const replay = await run(process.execPath, [HEADERTAP, 'run', '--replay', recording, '--embedded-receiver', '--endpoint', `http://127.0.0.1:${await freePort()}`, '--format', 'pretty', '--verbose']);
    assert.equal(replay.code, 0, replay.stderr);
    assert.match(replay.stdout, /GET \/login -> 200/);
    assert.match(replay.stdout, /GET \/proxied -> 200/);
    assertNoSecret('the receiver output of a replay', replay.stdout + replay.stderr);
  });
});
