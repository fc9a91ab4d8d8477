/**
 * Real eBPF: in-kernel filters, the OTLP/HTTP exporter chosen by flag or
 * environment, and headertap never recording its own export traffic.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { attr, background, byPid, freePort, requireEbpf, run, startAgent, startNginx, waitForPort } from '../helpers/integration';
import { startOtlpSink } from '../helpers/otlp-sink';

const NODE_SERVER = `
require('http').createServer((q, s) => s.end('node')).listen(Number(process.argv[1]), '127.0.0.1');
`;

describe('filters: applied in the kernel', () => {
  it('--pid keeps only that process; --comm only processes with that name', async (t) => {
    if (!requireEbpf(t)) return;
    const nginx = await startNginx(t);
    const nodePort = await freePort();
    const nodeServer = background(t, process.execPath, ['-e', NODE_SERVER, String(nodePort)]);
    await waitForPort(nodePort);
    const traffic = async () => {
      const a = await run('curl', ['-sS', `http://127.0.0.1:${nginx.port}/to-nginx`]);
      const b = await run('curl', ['-sS', `http://127.0.0.1:${nodePort}/to-node`]);
      assert.equal(a.code, 0, a.stderr);
      assert.equal(b.code, 0, b.stderr);
      return [a.pid, b.pid];
    };

    // --pid: only the node server's side of its connection.
    {
      const sink = await startOtlpSink();
      t.after(() => sink.stop());
      const agent = await startAgent(t, ['--endpoint', sink.endpoint, '--pid', String(nodeServer.pid)]);
      await traffic();
      await sink.waitFor((rs) => rs.length >= 1, 15000, 'the node server record');
      const end = await agent.stop();
      assert.equal(end.code, 0, end.stderr);
      const records = sink.records();
      assert.deepEqual(
        records.map((r) => `${String(r.resource['process.pid'])} ${String(attr(r, 'headertap.role'))} ${String(attr(r, 'url.path'))}`),
        [`${nodeServer.pid} server /to-node`],
        'nothing from curl or nginx',
      );
    }

    // --comm curl: both curl clients, neither server.
    {
      const sink = await startOtlpSink();
      t.after(() => sink.stop());
      const agent = await startAgent(t, ['--endpoint', sink.endpoint, '--comm', 'curl']);
      const [a, b] = await traffic();
      await sink.waitFor((rs) => rs.length >= 2, 15000, 'the two curl records');
      const end = await agent.stop();
      assert.equal(end.code, 0, end.stderr);
      const records = sink.records();
      assert.equal(records.length, 2, 'nothing from nginx or node');
      assert.deepEqual(
        records.map((r) => r.resource['process.pid']).sort(),
        [a, b].sort(),
      );
      assert.ok(records.every((r) => attr(r, 'headertap.role') === 'client'));
    }
  });
});

describe('export: OTLP/HTTP and own traffic', () => {
  it('--protocol http/protobuf exports to an OTLP/HTTP receiver', async (t) => {
    if (!requireEbpf(t)) return;
    const nginx = await startNginx(t);
    const sink = await startOtlpSink('http');
    t.after(() => sink.stop());
    const agent = await startAgent(t, ['--endpoint', sink.endpoint, '--protocol', 'http/protobuf', '--port', String(nginx.port)]);
    const curl = await run('curl', ['-sS', `http://127.0.0.1:${nginx.port}/over-http`]);
    assert.equal(curl.code, 0);
    await sink.waitFor((rs) => rs.length >= 2, 15000, 'records over OTLP/HTTP');
    assert.equal((await agent.stop()).code, 0);
    assert.ok(sink.batches.every((b) => b.transport === 'http' && b.metadata['content-type'] === 'application/x-protobuf'));
    assert.deepEqual(
      sink.records().map((r) => attr(r, 'url.path')),
      ['/over-http', '/over-http'],
    );
  });

  it('OTEL_EXPORTER_OTLP_PROTOCOL/ENDPOINT/HEADERS configure the export without flags', async (t) => {
    if (!requireEbpf(t)) return;
    const nginx = await startNginx(t);
    const sink = await startOtlpSink('http');
    t.after(() => sink.stop());
    const agent = await startAgent(t, ['--port', String(nginx.port)], {
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
      OTEL_EXPORTER_OTLP_ENDPOINT: sink.endpoint,
      OTEL_EXPORTER_OTLP_HEADERS: 'x-ht-tenant=acme',
    });
    assert.match(agent.stderr(), new RegExp(`exporting OTLP/HTTP \\(protobuf\\) to ${sink.endpoint}/v1/logs`));
    const curl = await run('curl', ['-sS', `http://127.0.0.1:${nginx.port}/via-env`]);
    assert.equal(curl.code, 0);
    await sink.waitFor((rs) => rs.length >= 2, 15000, 'records configured by environment');
    assert.equal((await agent.stop()).code, 0);
    assert.equal(sink.batches[0].metadata['x-ht-tenant'], 'acme');
  });

  it('never records its own exports, not even at the receiving end on this host', async (t) => {
    if (!requireEbpf(t)) return;
    const nginx = await startNginx(t);
    // OTLP/HTTP is HTTP/1.1: if own traffic leaked, the parser would turn it into records.
    // The receiver runs in this test process: the far end of the agent's export connection.
    const sink = await startOtlpSink('http');
    t.after(() => sink.stop());
    const agent = await startAgent(t, ['--endpoint', sink.endpoint, '--protocol', 'http/protobuf']); // no filter at all
    for (let i = 0; i < 3; i++) {
      const curl = await run('curl', ['-sS', `http://127.0.0.1:${nginx.port}/app/${i}`]);
      assert.equal(curl.code, 0);
      // each round's records are exported (POST /v1/logs) while capture is on
      await sink.waitFor((rs) => rs.filter((r) => attr(r, 'url.path') === `/app/${i}`).length >= 2, 15000, `records of round ${i}`);
    }
    const end = await agent.stop();
    assert.equal(end.code, 0, end.stderr);
    const records = sink.records();
    assert.ok(sink.batches.length >= 3, 'several exports happened during capture');
    assert.ok(records.length >= 6, 'capture worked for other processes');
    // This agent's export connection, at either end. (Other OTLP exporters on the host are traffic like any other.)
    const own = records.filter(
      (r) =>
        r.resource['process.pid'] === agent.pid ||
        r.resource['process.pid'] === process.pid ||
        attr(r, 'network.peer.port') === sink.httpPort ||
        attr(r, 'network.local.port') === sink.httpPort,
    );
    assert.deepEqual(own, [], 'no record about headertap exporting');
    assert.equal(byPid(records, process.pid).length, 0);
  });
});
