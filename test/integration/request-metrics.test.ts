/**
 * Routes and request metrics with real eBPF: a node HTTP server with known
 * routes, statuses and delays, a node client sending an x-tenant header (and
 * a secret authorization header), the agent exporting to a real OTLP/gRPC
 * receiver. The histograms decoded from the bytes that arrived carry the
 * right counts, buckets and attributes; a flood of distinct paths and
 * tenants stays within --max-routes and --metric-cardinality-limit; the
 * redacted header never shows its value in any metric.
 *
 * Not covered here: gRPC (rpc.*.call.duration; test/unit/request-metrics.test.ts
 * on mapped HTTP/2 exchanges), delta temporality over the wire.
 */
import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import type { MetricPoint } from '../../src/receiver/decode';
import { background, freePort, requireEbpf, run, startAgent, waitForPort } from '../helpers/integration';
import { startOtlpSink } from '../helpers/otlp-sink';

const SECRET = 's3cr3t-b34r3r-v4lu3';

/** Answers /api/items/<id> 200 after 20 ms, /api/fail/<id> 500, /api/orders/<id> 201, anything else 200. */
const SERVER = `
const http = require('node:http');
const server = http.createServer((req, res) => {
  const p = req.url.split('?')[0];
  const send = (status) => { res.writeHead(status, { 'content-type': 'text/plain' }); res.end('ok'); };
  if (p.startsWith('/api/items/')) setTimeout(() => send(200), 20);
  else if (p.startsWith('/api/fail/')) send(500);
  else if (p.startsWith('/api/orders/')) send(201);
  else send(200);
});
server.keepAliveTimeout = 60000;
server.listen(Number(process.argv[1]), '127.0.0.1');
`;

/** Sends the requests of argv[2] (JSON: [path, headers][]) one after the other on one keep-alive connection. */
const CLIENT = `
const http = require('node:http');
const agent = new http.Agent({ keepAlive: true, maxSockets: 1 });
const port = Number(process.argv[1]);
const list = JSON.parse(process.argv[2]);
(async () => {
  for (const [p, headers] of list) {
    await new Promise((resolve, reject) => {
      const req = http.get({ host: '127.0.0.1', port, path: p, headers, agent }, (res) => { res.resume(); res.on('end', resolve); });
      req.on('error', reject);
    });
  }
  agent.destroy();
})().catch((e) => { console.error(e); process.exit(1); });
`;

/** Each series' last point (cumulative: the totals), per metric. */
function latest(points: MetricPoint[], name: string, pid?: number): MetricPoint[] {
  const last = new Map<string, MetricPoint>();
  for (const p of points) {
    if (p.name !== name || (pid !== undefined && p.resource['process.pid'] !== pid)) continue;
    const key = `${String(p.resource['process.pid'])} ${JSON.stringify(Object.entries(p.attributes).sort())}`;
    const prev = last.get(key);
    if (!prev || BigInt(p.timeUnixNano ?? '0') >= BigInt(prev.timeUnixNano ?? '0')) last.set(key, p);
  }
  return [...last.values()];
}

/** Words without digits (the heuristic keeps them as they are: each one a route). */
function word(i: number): string {
  return i
    .toString(26)
    .split('')
    .map((c) => String.fromCharCode(97 + parseInt(c, 26)))
    .join('')
    .padStart(4, 'q');
}

describe('routes and request metrics from real traffic (real eBPF, real receiver)', () => {
  it('exports histograms with the right counts, buckets and attributes; caps routes and series; redacts', async (t) => {
    if (!requireEbpf(t)) return;
    const port = await freePort();
    const server = background(t, process.execPath, ['-e', SERVER, String(port)]);
    await waitForPort(port);
    const sink = await startOtlpSink('grpc');
    t.after(() => sink.stop());
    const dir = mkdtempSync(path.join(tmpdir(), 'ht-metrics-'));
    const config = path.join(dir, 'headertap.yaml');
    writeFileSync(config, `routes:\n  - match: { port: ${port} }\n    patterns:\n      - /api/orders/{order}\n`);
    const agent = await startAgent(t, [
      '--endpoint', sink.endpoint,
      '--port', String(port),
      '--config', config,
      '--metric-headers', 'x-tenant,authorization',
      '--metrics-interval', '1',
      '--max-routes', '20',
      '--metric-cardinality-limit', '10',
      '--no-self-metrics',
    ]);

    const known: [string, Record<string, string>][] = [
      ...[11, 22, 33, 44, 55].map((id): [string, Record<string, string>] => [`/api/items/${id}?q=${id}`, { 'x-tenant': 'acme' }]),
      ...['f47ac10b-58cc-4372-a567-0e02b2c3d479', '7', '5f1d7a3b9c2e4d6f8a0b1c2d'].map((id): [string, Record<string, string>] => [`/api/fail/${id}`, { 'x-tenant': 'beta' }]),
      ...['ord-1', 'ord-2'].map((id): [string, Record<string, string>] => [`/api/orders/${id}`, { 'x-tenant': 'acme', authorization: `Bearer ${SECRET}` }]),
    ];
    const flood: [string, Record<string, string>][] = Array.from({ length: 300 }, (_, i) => [`/flood/${word(i)}`, { 'x-tenant': `tenant-${i}` }]);
    const sent = await run(process.execPath, ['-e', CLIENT, String(port), JSON.stringify([...known, ...flood])], { timeoutMs: 60000 });
    assert.equal(sent.code, 0, sent.stderr);
    const serverPid = server.pid!;
    const clientPid = sent.pid;
    const total = known.length + flood.length;

    const countOf = (ps: MetricPoint[]) => ps.reduce((n, p) => n + p.value, 0);
    await sink.waitForMetrics(
      (ps) =>
        countOf(latest(ps, 'http.server.request.duration', serverPid)) === total && countOf(latest(ps, 'http.client.request.duration', clientPid)) === total,
      30000,
      `${total} server and ${total} client measurements`,
    );
    const end = await agent.stop();
    assert.equal(end.code, 0, end.stderr);

    const server_ = latest(sink.metrics, 'http.server.request.duration', serverPid);
    const client_ = latest(sink.metrics, 'http.client.request.duration', clientPid);
    const find = (ps: MetricPoint[], route: string, status: number) =>
      ps.filter((p) => (p.attributes['http.route'] ?? p.attributes['url.template']) === route && p.attributes['http.response.status_code'] === status);

    // Known routes: counts, buckets, attributes.
    const [items] = find(server_, '/api/items/{id}', 200);
    assert.ok(items, `server series: ${server_.map((p) => JSON.stringify(p.attributes)).join(' | ')}`);
    assert.deepEqual(items.attributes, {
      'http.request.method': 'GET',
      'http.response.status_code': 200,
      'http.route': '/api/items/{id}',
      'url.scheme': 'http',
      'network.protocol.version': '1.1',
      'http.request.header.x-tenant': 'acme',
    });
    assert.equal(items.unit, 's');
    assert.equal(items.resource['process.pid'], serverPid, "under the server's own resource");
    assert.equal(items.histogram!.count, 5);
    const bounds = items.histogram!.explicitBounds;
    assert.deepEqual(bounds, [0.005, 0.01, 0.025, 0.05, 0.075, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10]);
    const at10ms = bounds.indexOf(0.01);
    const belowServerDelay = items.histogram!.bucketCounts.slice(0, at10ms + 1).reduce((a, b) => a + b, 0);
    assert.equal(belowServerDelay, 0, 'each answer took at least the 20 ms delay');
    assert.ok(items.histogram!.sum! >= 5 * 0.02 && items.histogram!.sum! < 5, `sum ${items.histogram!.sum}`);

    const [fail] = find(server_, '/api/fail/{id}', 500);
    assert.equal(fail.histogram!.count, 3, 'UUID, number and Mongo id collapse into one route');
    assert.equal(fail.attributes['error.type'], '500');
    assert.equal(fail.attributes['http.request.header.x-tenant'], 'beta');

    const [orders] = find(server_, '/api/orders/{order}', 201);
    assert.equal(orders.histogram!.count, 2, 'the configured pattern wins over the heuristic');
    assert.equal(orders.attributes['http.request.header.authorization'], '[REDACTED]');
    assert.equal('error.type' in orders.attributes, false);

    const [clientItems] = find(client_, '/api/items/{id}', 200);
    assert.equal(clientItems.histogram!.count, 5);
    assert.equal(clientItems.attributes['server.port'], port);
    assert.equal(clientItems.attributes['server.address'], '127.0.0.1');
    assert.equal(clientItems.resource['process.pid'], clientPid);

    // The flood: within the route cap and the series cap, nothing lost.
    const routes = new Set(server_.map((p) => p.attributes['http.route']).filter((r) => r !== undefined));
    assert.ok(routes.size <= 20, `${routes.size} routes: ${[...routes].join(' ')}`);
    assert.ok(server_.length <= 10, `${server_.length} series (limit 10)`);
    const overflow = server_.filter((p) => p.attributes['otel.metric.overflow'] === true);
    assert.equal(overflow.length, 1);
    assert.deepEqual(overflow[0].attributes, { 'otel.metric.overflow': true });
    assert.equal(countOf(server_), total, 'every request counted once, overflow included');
    assert.ok(client_.length <= 10);
    assert.match(end.stderr, /routes overflowed \(--max-routes\) [1-9]\d*/);
    assert.match(end.stderr, /request metrics recorded \d+ \(series overflowed [1-9]\d*\)/);

    // Records and metrics agree on the route; the secret is nowhere.
    const records = sink.records().filter((r) => r.resource['process.pid'] === serverPid);
    const rec = records.find((r) => r.attributes['url.path'] === '/api/items/11')!;
    assert.equal(rec.attributes['http.route'], '/api/items/{id}');
    assert.equal(records.filter((r) => r.attributes['http.route'] === '/**').length > 0, true, 'records past the cap carry /**');
    assert.doesNotMatch(JSON.stringify(sink.metrics), new RegExp(SECRET));
    assert.doesNotMatch(JSON.stringify(sink.records()), new RegExp(SECRET));
  });
});
