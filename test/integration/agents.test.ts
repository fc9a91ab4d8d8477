/**
 * Two headertap agents on one host, both exporting to the same collector
 * (grpcio, its own process): neither records the other's OTLP exports, at
 * either end, whatever the filters. Without that, each export of one agent
 * becomes records the other exports, which the first records in turn: a loop
 * that never ends (5 requests became 372 records). Each layer is tested on
 * its own: the kernel's (the map of agents' sockets shared through bpffs,
 * with its lifetime as agents come, go and crash) with filters that show
 * only this test's ports, and the user-space rule with an agent that has no
 * bpffs to share.
 */
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { describe, it } from 'node:test';
import type { FlatRecord } from '../../src/common/flat-record';
import { requireGrpcio, startGrpcioSink } from '../helpers/grpcio-sink';
import { background, freePort, HEADERTAP, requireCommand, requireEbpf, run, startAgent, waitForPort, type Agent } from '../helpers/integration';

/** A node HTTP server (so --comm node sees it) answering everything. */
const NODE_SERVER = `require('http').createServer((req, res) => res.end('ok')).listen(Number(process.argv[1]), '127.0.0.1', () => console.log('up'));`;
/** 5 requests, one connection each, from a node client. */
const NODE_CLIENT = `
const http = require('http');
(async () => {
  for (let i = 0; i < 5; i++) {
    await new Promise((resolve, reject) => http.get({ host: '127.0.0.1', port: Number(process.argv[1]), path: '/two/' + i, agent: false }, (res) => { res.resume(); res.on('end', resolve); }).on('error', reject));
  }
})();
`;

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

function value(r: FlatRecord, key: string): unknown {
  return r.attributes[key] ?? r.resource[key];
}

/**
 * Records about the agents' exports, at either end: of an agent's process or
 * the collector's, or on the collector's port. (Other programs' OTLP
 * exports, e.g. tests of other pipelines on a shared host, are not this
 * test's business.)
 */
function exportRecords(records: FlatRecord[], pids: number[], collectorPort: number): FlatRecord[] {
  return records.filter(
    (r) =>
      pids.includes(Number(value(r, 'process.pid'))) ||
      value(r, 'network.peer.port') === collectorPort ||
      value(r, 'network.local.port') === collectorPort,
  );
}

/** Where the loaders share the map of agents' sockets (bpf/loader.c HT_PIN_SELF_ENDPOINTS). */
const PIN = '/sys/fs/bpf/headertap/self_endpoints_v1';
const BPFTOOL = existsSync('/usr/sbin/bpftool') ? '/usr/sbin/bpftool' : 'bpftool';

/** The kernel's id of the map pinned at PIN (a new map, a new id). */
function pinnedMapId(): number {
  const out = JSON.parse(execFileSync(BPFTOOL, ['-j', 'map', 'show', 'pinned', PIN], { encoding: 'utf8' })) as { id: number };
  return out.id;
}

function loaderPid(agent: Agent): number {
  return Number(/loader pid (\d+)/.exec(agent.stderr())![1]);
}

/** Resolves once the process is gone (its file descriptors, and the locks on them, with it). */
async function gone(pid: number): Promise<void> {
  const deadline = Date.now() + 20000;
  for (;;) {
    try {
      process.kill(pid, 0);
    } catch {
      return;
    }
    if (Date.now() > deadline) throw new Error(`process ${pid} still there`);
    await sleep(50);
  }
}

async function waitForStats(agent: Agent, count: number): Promise<void> {
  const deadline = Date.now() + 20000;
  while ((agent.stderr().match(/^headertap stats: /gm) ?? []).length < count) {
    if (Date.now() > deadline) throw new Error(`no stats lines:\n${agent.stderr()}`);
    await sleep(100);
  }
}

describe('two agents on one host', () => {
  /**
   * The agents' filters, and whether they see only this test's ports: then
   * the kernel layer alone must have kept the other's exports out (the
   * user-space rule never saw one). With no filter, OTLP exports of other
   * headertap pipelines on a shared host (unit tests) may reach that rule.
   */
  const cases: [string, (serverPort: number, collectorPort: number) => [string[], string[]], boolean][] = [
    ['no filters', () => [[], []], false],
    // Filters that take in the other agent: its process (node) and its export port.
    [
      'filters that match each other',
      (serverPort, collectorPort) => {
        const ports = ['--port', String(collectorPort), '--port', String(serverPort)];
        return [['--comm', 'node', ...ports], ports];
      },
      true,
    ],
  ];
  for (const [name, filters, onlyOurPorts] of cases) {
    it(`${name}: neither records the other's exports, and the app's records arrive once per agent`, async (t) => {
      if (!requireEbpf(t) || !requireGrpcio(t)) return;
      const collector = await startGrpcioSink(t);
      const serverPort = await freePort();
      background(t, process.execPath, ['-e', NODE_SERVER, String(serverPort)]);
      await waitForPort(serverPort);
      const [fa, fb] = filters(serverPort, collector.port);
      // Self-metrics every second: more exports for the other agent to (not) see.
      const common = ['--endpoint', collector.endpoint, '--stats-interval', '1'];
      const a = await startAgent(t, [...common, ...fa]);
      const b = await startAgent(t, [...common, ...fb]);
      const client = await run(process.execPath, ['-e', NODE_CLIENT, String(serverPort)]);
      assert.equal(client.code, 0, client.stderr);
      await collector.waitFor((rs) => rs.filter((r) => String(value(r, 'url.path')).startsWith('/two/')).length >= 20, 20000, 'both sides of 5 requests from each agent');
      // Several export rounds of both agents (records and metrics), each a chance to loop.
      await waitForStats(a, 4);
      await sleep(3000);
      const [ea, eb] = await Promise.all([a.stop(), b.stop()]);
      assert.equal(ea.code, 0, ea.stderr);
      assert.equal(eb.code, 0, eb.stderr);
      const records = collector.records();
      const app = records.filter((r) => String(value(r, 'url.path')).startsWith('/two/'));
      const requests = collector.requests();
      process.stderr.write(
        `# two agents, ${name}: ${requests.length} export requests (${requests.filter(([s]) => s === 'logs').length} logs), ${records.length} records, ${app.length} of the app's 5 requests\n`,
      );
      const loop = exportRecords(records, [a.pid, b.pid, collector.pid], collector.port);
      assert.deepEqual(
        loop.map((r) => `${String(value(r, 'headertap.role'))} pid ${String(value(r, 'process.pid'))} ${String(r.body)}`),
        [],
        'no record about an export',
      );
      assert.equal(app.length, 20, '5 requests, client and server side, once per agent');
      for (const end of [ea, eb]) assert.match(end.stderr, /records exported (\d+), failed 0, dropped 0/);
      // The kernel kept the other agent's exports out (the shared map): user space never saw one to drop.
      if (onlyOurPorts) for (const end of [ea, eb]) assert.doesNotMatch(end.stderr, /agent exports not recorded/);
    });
  }

  it('the shared map lives as long as agents do: the first makes it (replacing one crashed agents left), the next ones reuse it, the last removes it', async (t) => {
    if (!requireEbpf(t) || !requireCommand(t, BPFTOOL)) return;
    const args = ['--endpoint', `http://127.0.0.1:${await freePort()}`, '--port', '1', '--no-self-metrics'];
    // An agent crashes with its loader: the map stays pinned, and stale.
    const crashed = await startAgent(t, args);
    const staleId = pinnedMapId();
    const crashedLoader = loaderPid(crashed);
    process.kill(crashedLoader, 'SIGKILL');
    process.kill(crashed.pid, 'SIGKILL');
    await crashed.stop('SIGKILL');
    await gone(crashedLoader);
    assert.equal(existsSync(PIN), true, 'a crashed loader could not remove it');
    // The next agent, alone, starts from a fresh map; another one joins it.
    const first = await startAgent(t, args);
    const id = pinnedMapId();
    assert.notEqual(id, staleId, 'the stale map was replaced');
    const second = await startAgent(t, args);
    assert.equal(pinnedMapId(), id, "the second agent shares the first one's map");
    assert.equal((await first.stop()).code, 0);
    assert.equal(pinnedMapId(), id, 'kept while an agent still runs');
    assert.equal((await second.stop()).code, 0);
    assert.equal(existsSync(PIN), false, 'removed by the last agent');
  });

  it("an agent that cannot share the kernel's marks (no bpffs in its mount namespace): the user-space rule still keeps both from recording the other's exports", async (t) => {
    if (!requireEbpf(t) || !requireGrpcio(t) || !requireCommand(t, '/usr/bin/unshare')) return;
    const collector = await startGrpcioSink(t);
    const serverPort = await freePort();
    background(t, process.execPath, ['-e', NODE_SERVER, String(serverPort)]);
    await waitForPort(serverPort);
    // Every export connection must open after both agents run, so that each sees the other's user
    // agent (on a connection joined later HPACK hides it; only the kernel layer covers that): self-metrics
    // only at exit, and only this test's ports, so that no other traffic on the host makes an early export.
    const common = ['--endpoint', collector.endpoint, '--stats-interval', '0', '--port', String(serverPort), '--port', String(collector.port)];
    const a = await startAgent(t, common);
    // /sys/fs hidden in b's mount namespace: no bpffs to share, b's map of own sockets stays private.
    const unshared = ['/usr/bin/unshare', '-m', '--propagation', 'private', 'sh', '-ec', 'mount -t tmpfs none /sys/fs; exec "$0" "$@"', process.execPath, HEADERTAP];
    const b = await startAgent(t, common, {}, unshared);
    const client = await run(process.execPath, ['-e', NODE_CLIENT, String(serverPort)]);
    assert.equal(client.code, 0, client.stderr);
    await collector.waitFor((rs) => rs.filter((r) => String(value(r, 'url.path')).startsWith('/two/')).length >= 20, 20000, 'both sides of 5 requests from each agent');
    await sleep(2000);
    const [ea, eb] = await Promise.all([a.stop(), b.stop()]);
    assert.equal(ea.code, 0, ea.stderr);
    assert.equal(eb.code, 0, eb.stderr);
    assert.match(eb.stderr, /no bpffs at \/sys\/fs\/bpf \(No such file or directory\): other headertap agents on this host cannot see this one's sockets in the kernel/);
    const records = collector.records();
    const app = records.filter((r) => String(value(r, 'url.path')).startsWith('/two/'));
    process.stderr.write(`# two agents, one without bpffs: ${collector.requests().length} export requests, ${records.length} records, ${app.length} of the app's\n`);
    const loop = exportRecords(records, [a.pid, b.pid, collector.pid], collector.port);
    assert.deepEqual(loop.map((r) => `${String(value(r, 'headertap.role'))} pid ${String(value(r, 'process.pid'))} ${String(r.body)}`), []);
    assert.equal(app.length, 20);
    // Each saw the other's exports, at the sending and the receiving end, and dropped them.
    for (const end of [ea, eb]) assert.match(end.stderr, /agent exports not recorded [1-9]\d*/);
  });
});
