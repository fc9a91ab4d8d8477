/**
 * Real eBPF: changing what is captured while the agent and the traffic keep
 * running (`--config FILE` followed live, SIGHUP). Header globs switched
 * under load, a port filter moved in the kernel, a broken file, SIGHUP
 * without a file change, a redaction rule added, rules per workload. Every
 * record is decoded from the OTLP bytes a real receiver got.
 *
 * Not covered here: how fast a change lands (test/bench/reload.ts measures
 * it; tests assert no timings).
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, it, type TestContext } from 'node:test';
import { LoaderError } from '../../src/common/errors';
import type { FlatRecord } from '../../src/common/flat-record';
import { silentLog } from '../helpers/log';
import { LOADER_PATH } from '../../src/common/paths';
import { LoaderSource, type CaptureFilters, type DataEvent } from '../../src/source';
import { NO_FILTERS } from '../../src/source/filters';
import { headers } from '../helpers/capture';
import { background, cgroupTree, freePort, requireEbpf, run, saveLikeAnEditor as save, serverIn, startAgent, waitForPort, waitForStderr, type Agent } from '../helpers/integration';
import { startOtlpSink, type OtlpSink } from '../helpers/otlp-sink';

const NODE_SERVER = `require('http').createServer((q, s) => s.end('ok')).listen(Number(process.argv[1]), '127.0.0.1');`;

/**
 * Sends GET /r/<seq> with x-seq, x-old and x-new headers, one after the
 * other over keep-alive connections, to the ports in turn, until a line on
 * stdin; then prints how many it sent and exits.
 */
const LOAD_CLIENT = `
const http = require('http');
const ports = process.argv[1].split(',').map(Number);
const agents = ports.map(() => new http.Agent({ keepAlive: true, maxSockets: 1 }));
let seq = 0, stop = false;
process.stdin.on('data', () => (stop = true));
(async () => {
  while (!stop) {
    const i = seq++, k = i % ports.length;
    await new Promise((resolve, reject) => {
      const headers = { 'x-seq': String(i), 'x-old': 'o', 'x-new': 'n' };
      http.get({ host: '127.0.0.1', port: ports[k], path: '/r/' + i, agent: agents[k], headers }, (res) => {
        res.resume();
        res.on('end', resolve);
      }).on('error', reject);
    });
    await new Promise((r) => setTimeout(r, 5));
  }
  process.stdout.write(String(seq));
  process.exit(0);
})();
`;

function tempDir(): string {
  return mkdtempSync(path.join(tmpdir(), 'ht-live-'));
}

async function nodeServer(t: TestContext, env: NodeJS.ProcessEnv = {}): Promise<number> {
  const port = await freePort();
  background(t, process.execPath, ['-e', NODE_SERVER, String(port)], { ...process.env, ...env });
  await waitForPort(port);
  return port;
}

/** The load client, running until stop() (which resolves with the number of requests it completed). */
function loadClient(t: TestContext, ports: number[]): { stop(): Promise<number> } {
  const child = spawn(process.execPath, ['-e', LOAD_CLIENT, ports.join(',')], { stdio: ['pipe', 'pipe', 'inherit'] });
  let out = '';
  child.stdout.on('data', (c: Buffer) => (out += c.toString()));
  const exited = new Promise<void>((r) => child.once('close', () => r()));
  t.after(() => {
    if (child.exitCode === null) child.kill('SIGKILL');
  });
  return {
    async stop() {
      child.stdin.end('stop\n');
      await exited;
      return Number(out);
    },
  };
}

async function liveAgent(t: TestContext, config: string, extra: string[] = [], env: NodeJS.ProcessEnv = {}): Promise<{ agent: Agent; sink: OtlpSink }> {
  const sink = await startOtlpSink('grpc');
  t.after(() => sink.stop());
  const agent = await startAgent(t, ['--endpoint', sink.endpoint, '--config', config, '--stats-interval', '0', ...extra], env);
  return { agent, sink };
}

const seqOf = (r: FlatRecord) => Number((headers(r, 'request', 'x-seq') as string[] | undefined)?.[0] ?? NaN);
const role = (r: FlatRecord) => String(r.attributes['headertap.role']);

async function curl(url: string, hdrs: string[]): Promise<void> {
  const r = await run('curl', ['-sS', '-o', '/dev/null', ...hdrs.flatMap((h) => ['-H', h]), url]);
  assert.equal(r.code, 0, r.stderr);
}

describe('live config: header rules', () => {
  it('switches the capture globs under load: every request recorded once per side, each record wholly old or new', async (t) => {
    if (!requireEbpf(t)) return;
    const port = await nodeServer(t);
    const config = path.join(tempDir(), 'headertap.yaml');
    writeFileSync(config, `port: ${port}\ncapture-headers: [x-seq, x-old]\n`);
    const { agent, sink } = await liveAgent(t, config);
    const client = loadClient(t, [port]);
    const servers = (rs: FlatRecord[]) => rs.filter((r) => role(r) === 'server');
    await sink.waitFor((rs) => servers(rs).length >= 40, 20000, '40 server records under the first rules');
    save(config, `port: ${port}\ncapture-headers: [x-seq, x-new]\n`);
    await waitForStderr(agent, /config reloaded \(file change\) from .*: capture-headers changed; rules \w+ -> \w+/);
    await sink.waitFor((rs) => servers(rs).filter((r) => headers(r, 'request', 'x-new')).length >= 40, 20000, '40 server records under the new rules');
    const sent = await client.stop();
    await sink.waitFor((rs) => rs.length >= 2 * sent, 20000, `${sent} requests on both sides`);
    const end = await agent.stop();
    assert.equal(end.code, 0, end.stderr);

    const records = sink.records();
    assert.equal(records.length, 2 * sent, 'nothing lost, nothing twice');
    for (const side of ['client', 'server']) {
      const mine = records.filter((r) => role(r) === side).sort((a, b) => seqOf(a) - seqOf(b));
      assert.deepEqual(
        mine.map(seqOf),
        Array.from({ length: sent }, (_, i) => i),
        `${side}: every request once`,
      );
      const shapes = mine.map((r) => `${headers(r, 'request', 'x-old') ? 'old' : ''}${headers(r, 'request', 'x-new') ? 'new' : ''}`);
      const switchAt = shapes.indexOf('new');
      assert.ok(switchAt > 0, `${side}: records under both rules`);
      assert.deepEqual(shapes, [...Array(switchAt).fill('old'), ...Array(sent - switchAt).fill('new')], `${side}: one switch, no record half and half`);
    }
    assert.match(end.stderr, /unanswered 0,/);
    assert.match(end.stderr, /rules \w+, config reloads 1, reload failures 0$/m);
  });

  it('keeps the rules in force when the file is broken, says so once, and applies the next good one', async (t) => {
    if (!requireEbpf(t)) return;
    const port = await nodeServer(t);
    const config = path.join(tempDir(), 'headertap.yaml');
    writeFileSync(config, `port: ${port}\ncapture-headers: [x-a]\n`);
    const { agent, sink } = await liveAgent(t, config);
    const digest = /rules (\w+) \(following/.exec(agent.stderr())![1];
    writeFileSync(config, `port: ${port}\ncapture-headers: [x-b\n`); // in place, unfinished
    await waitForStderr(agent, /config reload failed, the rules in force stay \(rules \w+\): --config .* is not valid YAML at line \d+/);
    await curl(`http://127.0.0.1:${port}/while-broken`, ['x-a: 1', 'x-b: 2']);
    save(config, `port: ${port}\ncapture-headers: [x-b]\nmax-header-bytes: 64\n`); // too small: a validation error
    await waitForStderr(agent, /key 'max-header-bytes' '64' is not a valid byte count/);
    save(config, `port: ${port}\ncapture-headers: [x-b]\n`);
    await waitForStderr(agent, /config reloaded \(file change\).*capture-headers changed/);
    await curl(`http://127.0.0.1:${port}/fixed`, ['x-a: 1', 'x-b: 2']);
    const records = await sink.waitFor((rs) => rs.length >= 4, 15000, 'both requests on both sides');
    const end = await agent.stop();
    assert.equal(end.code, 0, end.stderr);
    const shape = (p: string) =>
      records.filter((r) => r.attributes['url.path'] === p).map((r) => [headers(r, 'request', 'x-a'), headers(r, 'request', 'x-b')]);
    assert.deepEqual(shape('/while-broken'), [[['1'], undefined], [['1'], undefined]], 'the old rules held');
    assert.deepEqual(shape('/fixed'), [[undefined, ['2']], [undefined, ['2']]]);
    assert.equal(end.stderr.match(/config reload failed/g)?.length, 2, 'one line per broken version');
    assert.match(end.stderr, new RegExp(`rules ${digest} -> \\w+`));
    assert.match(end.stderr, /config reloads 1, reload failures 2$/m);
  });

  it('reloads on SIGHUP without a file change: a new hash key file is read, an unchanged one changes nothing', async (t) => {
    if (!requireEbpf(t)) return;
    const port = await nodeServer(t);
    const dir = tempDir();
    const config = path.join(dir, 'headertap.yaml');
    const keyFile = path.join(tempDir(), 'hash.key');
    writeFileSync(keyFile, 'first-key-0123456789abcdef\n');
    writeFileSync(config, `port: ${port}\nhash-headers: [x-user]\nhash-key-file: ${keyFile}\n`);
    const { agent, sink } = await liveAgent(t, config);
    await curl(`http://127.0.0.1:${port}/one`, ['x-user: alice']);
    await sink.waitFor((rs) => rs.length >= 2);
    writeFileSync(keyFile, 'second-key-0123456789abcdef\n');
    process.kill(agent.pid, 'SIGHUP');
    await waitForStderr(agent, /config reloaded \(SIGHUP\) from .*: the hash key changed; rules \w+ -> \w+/);
    await curl(`http://127.0.0.1:${port}/two`, ['x-user: alice']);
    process.kill(agent.pid, 'SIGHUP');
    await waitForStderr(agent, /config reloaded \(SIGHUP\) from .*: nothing changed; rules \w+$/m);
    const records = await sink.waitFor((rs) => rs.length >= 4);
    const end = await agent.stop();
    assert.equal(end.code, 0, end.stderr);
    const hashes = (p: string) => [...new Set(records.filter((r) => r.attributes['url.path'] === p).map((r) => String(headers(r, 'request', 'x-user'))))];
    assert.equal(hashes('/one').length, 1);
    assert.equal(hashes('/two').length, 1);
    assert.match(hashes('/one')[0], /^sha256:[0-9a-f]{16}$/);
    assert.notEqual(hashes('/one')[0], hashes('/two')[0], 'the new key from the next exchange on');
    assert.doesNotMatch(JSON.stringify(records), /alice/);
    assert.match(end.stderr, /config reloads 2, reload failures 0$/m);
  });

  it('applies a redaction rule added live from the next exchange, with the defaults held throughout', async (t) => {
    if (!requireEbpf(t)) return;
    const port = await nodeServer(t);
    const config = path.join(tempDir(), 'headertap.yaml');
    writeFileSync(config, `port: ${port}\n`);
    const { agent, sink } = await liveAgent(t, config);
    const hdrs = ['x-card: 4111111111111111', 'authorization: Bearer tok-123'];
    await curl(`http://127.0.0.1:${port}/before`, hdrs);
    await sink.waitFor((rs) => rs.length >= 2);
    save(config, `port: ${port}\nredact-headers: [authorization, proxy-authorization, cookie, set-cookie, x-api-key, "*token*", "*secret*", "*password*", x-card]\n`);
    await waitForStderr(agent, /config reloaded \(file change\).*redact-headers changed/);
    await curl(`http://127.0.0.1:${port}/after`, hdrs);
    const records = await sink.waitFor((rs) => rs.length >= 4);
    const end = await agent.stop();
    assert.equal(end.code, 0, end.stderr);
    const at = (p: string, h: string) => records.filter((r) => r.attributes['url.path'] === p).map((r) => headers(r, 'request', h));
    assert.deepEqual(at('/before', 'x-card'), [['4111111111111111'], ['4111111111111111']]);
    assert.deepEqual(at('/after', 'x-card'), [['[REDACTED]'], ['[REDACTED]']]);
    assert.deepEqual([...at('/before', 'authorization'), ...at('/after', 'authorization')], Array(4).fill(['[REDACTED]']));
    assert.doesNotMatch(JSON.stringify(records), /tok-123/);
  });
});

describe('live config: kernel filters', () => {
  it('the loader replaces the filters in the kernel: only what the set in force wants is sent', async (t) => {
    if (!requireEbpf(t)) return;
    const [a, b] = [await nodeServer(t), await nodeServer(t)];
    const events: DataEvent[] = [];
    let stats = 0;
    const loader = new LoaderSource({ path: LOADER_PATH, filters: { ...NO_FILTERS, ports: [a] }, selfPids: [process.pid], noTls: true, log: silentLog });
    t.after(() => loader.stop());
    await loader.start((ev) => {
      if (ev.kind === 'data') events.push(ev);
      if (ev.kind === 'stats') stats++;
    });
    /** Everything sent before now is in the stream once two more stats frames (one a second, after a ring-buffer read) came. */
    const drained = async () => {
      const until = stats + 2;
      while (stats < until) await new Promise((r) => setTimeout(r, 50));
    };
    const names = new Map([
      [a, 'a'],
      [b, 'b'],
    ]);
    /** Requests to every server; what the kernel sent for them, as "process server" pairs. */
    const round = async (path: string) => {
      const from = events.length;
      for (const port of names.keys()) await curl(`http://127.0.0.1:${port}${path}`, []);
      await drained();
      const mine = events.slice(from).filter((e) => e.data.includes(path));
      return [...new Set(mine.map((e) => `${e.comm === 'curl' ? 'curl' : 'server'} ${names.get(e.localPort) ?? names.get(e.remotePort)}`))].sort();
    };
    const set = (f: Partial<CaptureFilters>) => loader.setFilters({ ...NO_FILTERS, ...f });

    assert.deepEqual(await round('/first'), ['curl a', 'server a']);
    await set({ ports: [b] });
    assert.deepEqual(await round('/moved'), ['curl b', 'server b']);
    await set({ comms: ['curl'] });
    assert.deepEqual(await round('/comm'), ['curl a', 'curl b']);
    await assert.rejects(set({ cgroups: ['/nonexistent/cgroup'] }), (e: unknown) => e instanceof LoaderError && /previous ones stay in force/.test(e.message));
    assert.deepEqual(await round('/kept'), ['curl a', 'curl b'], 'a refused set changes nothing');
    await set({});
    assert.deepEqual(await round('/all'), ['curl a', 'curl b', 'server a', 'server b']);
    // --cgroup: a server started inside a cgroup of this test, the others outside.
    const tree = cgroupTree(t, ['live']);
    if (!tree) return;
    const c = await freePort();
    serverIn(t, tree.leaves[0], c);
    await waitForPort(c);
    names.set(c, 'c');
    await set({ cgroups: [tree.parent] });
    assert.deepEqual(await round('/cgroup'), ['server c']);
    await set({ cgroups: [tree.parent], ports: [a] });
    assert.deepEqual(await round('/cgroup-and-port'), [], 'AND across kinds');
  });

  it('moves a port filter under load: the old port up to the switch, the new one after, no false "no response"', async (t) => {
    if (!requireEbpf(t)) return;
    const [a, b] = [await nodeServer(t), await nodeServer(t)];
    const config = path.join(tempDir(), 'headertap.yaml');
    writeFileSync(config, `port: ${a}\ncapture-headers: [x-seq]\n`);
    const { agent, sink } = await liveAgent(t, config);
    assert.match(agent.stderr(), new RegExp(`filters: port ${a}; rules`));
    const client = loadClient(t, [a, b]); // even seq to a, odd to b
    const onPort = (rs: FlatRecord[], p: number) => rs.filter((r) => r.attributes['server.port'] === p);
    await sink.waitFor((rs) => onPort(rs, a).length >= 40, 20000, '40 records on the first port');
    save(config, `port: ${b}\ncapture-headers: [x-seq]\n`);
    await waitForStderr(agent, /config reloaded \(file change\).*: port changed/);
    await sink.waitFor((rs) => onPort(rs, b).length >= 40, 20000, '40 records on the second port');
    const sent = await client.stop();
    await sink.waitFor((rs) => onPort(rs, b).some((r) => seqOf(r) >= sent - 2), 20000, 'the last request to the second port');
    const end = await agent.stop();
    assert.equal(end.code, 0, end.stderr);

    const records = sink.records();
    assert.deepEqual(records.filter((r) => r.attributes['headertap.unanswered_reason']), [], 'no request reported without its response');
    for (const side of ['client', 'server']) {
      const seqA = onPort(records, a).filter((r) => role(r) === side).map(seqOf).sort((x, y) => x - y);
      const seqB = onPort(records, b).filter((r) => role(r) === side).map(seqOf).sort((x, y) => x - y);
      // Before the switch every request to a, none to b; after it the other way round.
      assert.deepEqual(seqA, Array.from({ length: seqA.length }, (_, i) => 2 * i), `${side}: port ${a} from the start, without a hole`);
      const firstB = seqB[0];
      assert.deepEqual(seqB, Array.from({ length: seqB.length }, (_, i) => firstB + 2 * i), `${side}: port ${b} to the end, without a hole`);
      assert.ok(seqA[seqA.length - 1] < firstB, `${side}: no overlap (${seqA[seqA.length - 1]} < ${firstB})`);
      assert.ok(firstB - seqA[seqA.length - 1] <= 5, `${side}: at most the exchanges in flight at the switch are missing`);
      assert.equal(seqB[seqB.length - 1] >= sent - 2, true);
    }
    assert.match(end.stderr, /unanswered 0,/);
  });
});

describe('live config: rules per workload', () => {
  it('captures x-tenant-id only for payments, hashes x-user-id everywhere, and moves the scope live', async (t) => {
    if (!requireEbpf(t)) return;
    const payments = await nodeServer(t, { OTEL_SERVICE_NAME: 'payments' });
    const orders = await nodeServer(t, { OTEL_SERVICE_NAME: 'orders' });
    const config = path.join(tempDir(), 'headertap.yaml');
    const scoped = (svc: string) => `port: [${payments}, ${orders}]
exclude-headers: [x-tenant-id]
hash-headers: [x-user-id]
rules:
  - match: { service-name: ${svc} }
    exclude-headers: []
`;
    writeFileSync(config, scoped('payments'));
    const { agent, sink } = await liveAgent(t, config, [], { HEADERTAP_HASH_KEY: 'integration-test-key-0123456789' });
    const call = (port: number, p: string) => curl(`http://127.0.0.1:${port}${p}`, ['x-tenant-id: acme', 'x-user-id: u-42']);
    await call(payments, '/pay');
    await call(orders, '/order');
    await sink.waitFor((rs) => rs.length >= 4);
    save(config, scoped('orders'));
    await waitForStderr(agent, /config reloaded \(file change\).*: rules changed/);
    await call(payments, '/pay-2');
    await call(orders, '/order-2');
    const records = await sink.waitFor((rs) => rs.length >= 8);
    const end = await agent.stop();
    assert.equal(end.code, 0, end.stderr);
    const server = (p: string) => records.find((r) => r.attributes['url.path'] === p && role(r) === 'server')!;
    const client = (p: string) => records.find((r) => r.attributes['url.path'] === p && role(r) === 'client')!;
    assert.equal(server('/pay').resource['service.name'], 'payments');
    assert.deepEqual(headers(server('/pay'), 'request', 'x-tenant-id'), ['acme']);
    assert.equal(headers(server('/order'), 'request', 'x-tenant-id'), undefined);
    assert.equal(headers(client('/pay'), 'request', 'x-tenant-id'), undefined, 'curl is not payments');
    assert.equal(headers(server('/pay-2'), 'request', 'x-tenant-id'), undefined, 'after the reload: not payments any more');
    assert.deepEqual(headers(server('/order-2'), 'request', 'x-tenant-id'), ['acme']);
    const userIds = new Set(records.map((r) => String(headers(r, 'request', 'x-user-id'))));
    assert.equal(userIds.size, 1, 'one hash for one value, in every scope');
    assert.match([...userIds][0], /^sha256:[0-9a-f]{16}$/);
  });
});
