/**
 * Header rules per workload (the config's `rules:`) and how the mapper asks
 * for them: one answer per record, so a live swap never splits a record.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { HttpExchange } from '../../src/http';
import { CaptureRules, DEFAULT_CAPTURE_HEADERS, DEFAULT_REDACT_HEADERS, ExchangeMapper, HeaderRules, LiveRules, type RulesFor } from '../../src/otel';
import { REDACTED } from '../../src/otel/headers';
import { attributesObject } from '../../src/otel/record';
import type { CaptureRulesConfig } from '../../src/otel/scoped-rules';
import { WorkloadResources } from '../../src/otel/workloads';
import type { ProcessInfo } from '../../src/workload';

const KEY = Buffer.from('0123456789abcdef0123456789abcdef');

const payments: ProcessInfo = { pid: 10, executableName: 'java', serviceName: 'payments', cgroupPath: '/system.slice/payments.service' };
const orders: ProcessInfo = { pid: 20, executableName: 'node', serviceName: 'orders', cgroupPath: '/system.slice/orders.service' };
const curl: ProcessInfo = { pid: 30, executableName: 'curl', cgroupPath: '/user.slice/user-0.slice/session-1.scope' };

function exchange(pid: number, headers: string[], ports: [number, number] = [45678, 8080]): HttpExchange {
  return {
    role: 'server',
    connection: {
      pid,
      comm: 'x',
      networkType: 'ipv4',
      local: { address: '127.0.0.1', port: ports[0] },
      remote: { address: '127.0.0.1', port: ports[1] },
      tls: false,
    },
    request: { kind: 'request', method: 'GET', target: '/q?access_token=abc', version: '1.1', headers, headBytes: 10, startNs: 1, endNs: 2 },
    response: { kind: 'response', status: 200, reason: 'OK', version: '1.1', headers: [], headBytes: 10, startNs: 3, endNs: 4 },
  };
}

function mapper(rules: RulesFor) {
  const procs = new Map([payments, orders, curl].map((p) => [p.pid, p]));
  return new ExchangeMapper({ rules, toHrTime: () => [0, 0], processInfo: (pid) => procs.get(pid)! });
}

/** The README's example: x-tenant-id only for payments, x-user-id hashed everywhere. */
const README_EXAMPLE: CaptureRulesConfig = {
  global: { capture: DEFAULT_CAPTURE_HEADERS, exclude: ['x-tenant-id'], redact: DEFAULT_REDACT_HEADERS, hash: ['x-user-id'], hashKey: KEY },
  scoped: [{ match: { serviceNames: ['payments'] }, exclude: [] }],
};

const HEADERS = ['x-tenant-id', 'acme', 'x-user-id', 'u-42', 'authorization', 'Bearer s3cr3t'];

describe('CaptureRules: rules per workload', () => {
  it('captures x-tenant-id only for payments and hashes x-user-id everywhere', () => {
    const m = mapper(new CaptureRules(README_EXAMPLE));
    const pay = attributesObject(m.map(exchange(payments.pid, HEADERS)).attributes);
    const ord = attributesObject(m.map(exchange(orders.pid, HEADERS)).attributes);
    assert.deepEqual(pay['http.request.header.x-tenant-id'], ['acme']);
    assert.equal(ord['http.request.header.x-tenant-id'], undefined);
    const hashed = new HeaderRules({ capture: ['*'], redact: [], hash: ['*'], hashKey: KEY }).hash('u-42');
    assert.deepEqual(pay['http.request.header.x-user-id'], [hashed]);
    assert.deepEqual(ord['http.request.header.x-user-id'], [hashed]);
    for (const a of [pay, ord]) {
      assert.deepEqual(a['http.request.header.authorization'], [REDACTED], 'redaction defaults apply in every scope');
      assert.equal(a['url.query'], `access_token=${REDACTED}`);
    }
  });

  it('a scope adds secrets but never shows one the global rules hide', () => {
    const rules = new CaptureRules({
      global: { capture: ['*'], redact: ['authorization'] },
      scoped: [{ match: { serviceNames: ['orders'] }, redact: ['x-card'] }],
    });
    const ord = rules.rulesFor(orders);
    assert.equal(ord.isSecret('x-card'), true);
    assert.equal(ord.isSecret('authorization'), true, 'still hidden: scoped redact lists add to the global one');
    assert.equal(rules.rulesFor(payments).isSecret('x-card'), false);
    assert.equal(rules.isSecretAnywhere('x-card'), true, '--record masks what any scope hides');
  });

  it('matches by service name and executable globs, cgroup subtree and port, AND across kinds', () => {
    const rules = new CaptureRules({
      global: { capture: ['host'], redact: [] },
      scoped: [
        { match: { executables: ['no*'] }, capture: ['x-node'] },
        { match: { cgroups: ['/system.slice/pay'] }, capture: ['x-never'] }, // a sibling prefix, not a parent
        { match: { cgroups: ['/system.slice'], serviceNames: ['pay*'] }, capture: ['x-pay'] },
        { match: { ports: [9443] }, capture: ['x-tls-port'] },
      ],
    });
    const keeps = (w: ProcessInfo, name: string, ports?: [number, number]) =>
      rules.rulesFor(w, ports ? exchange(w.pid, [], ports).connection : undefined).action(name) !== 0;
    assert.equal(keeps(orders, 'x-node'), true);
    assert.equal(keeps(payments, 'x-node'), false);
    assert.equal(keeps(payments, 'x-pay'), true);
    assert.equal(keeps(payments, 'x-never'), false);
    assert.equal(keeps(curl, 'x-pay'), false, 'user.slice is not under system.slice');
    assert.equal(keeps(curl, 'x-tls-port', [40000, 9443]), true, 'remote end');
    assert.equal(keeps(curl, 'x-tls-port', [9443, 40000]), true, 'local end');
    assert.equal(keeps(curl, 'x-tls-port', [40000, 8080]), false);
    assert.equal(keeps(curl, 'x-tls-port'), false, 'no connection: port scopes do not apply');
    assert.equal(keeps(curl, 'host'), true);
  });

  it('applies matching rules in order: a later capture list replaces an earlier one', () => {
    const rules = new CaptureRules({
      global: { capture: ['*'], redact: [] },
      scoped: [
        { match: { serviceNames: ['*'] }, capture: ['x-a'] },
        { match: { serviceNames: ['payments'] }, capture: ['x-b'] },
      ],
    });
    assert.deepEqual([rules.rulesFor(payments).action('x-a'), rules.rulesFor(payments).action('x-b')], [0, 1]);
    assert.deepEqual([rules.rulesFor(orders).action('x-a'), rules.rulesFor(orders).action('x-b')], [1, 0]);
  });

  it('works a workload out once and shares compiled rules between workloads with the same scopes', () => {
    const rules = new CaptureRules({ global: { capture: ['*'], redact: [] }, scoped: [{ match: { cgroups: ['/system.slice'] }, exclude: ['x-a'] }] });
    const a = rules.rulesFor(payments);
    assert.equal(rules.rulesFor(payments), a);
    assert.equal(rules.rulesFor(orders), a, 'same scopes, same HeaderRules (and decision caches)');
    assert.equal(rules.rulesFor(curl), rules.global);
  });

  it('refuses hash lists without a key, also in a scope', () => {
    assert.throws(() => new CaptureRules({ global: { capture: ['*'], redact: [] }, scoped: [{ match: { serviceNames: ['x'] }, hash: ['x-id'] }] }), /hash key/);
  });
});

describe('ExchangeMapper with rules that change', () => {
  it('asks for the rules once per record, so a swap between two asks cannot split a record', () => {
    const old = new HeaderRules({ capture: ['x-a', 'x-b'], redact: ['x-b'] });
    const next = new HeaderRules({ capture: ['x-a', 'x-b'], redact: ['x-a'] });
    let asked = 0;
    // A source that changes its answer after every question: a mapper asking twice would mix them.
    const flipping: RulesFor = { rulesFor: () => (asked++ % 2 === 0 ? old : next) };
    const m = mapper(flipping);
    const shapes = [0, 1, 2].map(() => {
      const a = attributesObject(m.map(exchange(orders.pid, ['x-a', '1', 'x-b', '2'])).attributes);
      return [a['http.request.header.x-a'], a['http.request.header.x-b']];
    });
    assert.deepEqual(shapes, [
      [['1'], [REDACTED]],
      [[REDACTED], ['2']],
      [['1'], [REDACTED]],
    ]);
    assert.equal(asked, 3);
  });

  it('LiveRules: records mapped after a swap use the new rules, with the redaction defaults', () => {
    const live = new LiveRules(new CaptureRules({ global: { capture: ['*'], redact: DEFAULT_REDACT_HEADERS } }));
    const m = mapper(live);
    const before = attributesObject(m.map(exchange(orders.pid, ['x-card-number', 'v', 'cookie', 'c'])).attributes);
    live.swap(new CaptureRules({ global: { capture: ['*'], redact: [...DEFAULT_REDACT_HEADERS, 'x-card-number'] } }));
    const after = attributesObject(m.map(exchange(orders.pid, ['x-card-number', 'v', 'cookie', 'c'])).attributes);
    assert.deepEqual([before['http.request.header.x-card-number'], before['http.request.header.cookie']], [['v'], [REDACTED]]);
    assert.deepEqual([after['http.request.header.x-card-number'], after['http.request.header.cookie']], [[REDACTED], [REDACTED]]);
  });
});

describe('workload resources after a reload', () => {
  it('redacts process.command_line again under the new rules (it is cached per process otherwise)', () => {
    const live = new LiveRules(new CaptureRules({ global: { capture: ['*'], redact: DEFAULT_REDACT_HEADERS } }));
    const resources = new WorkloadResources({ commandLine: true, rules: live, hostName: 'h' });
    const app: ProcessInfo = { pid: 7, executableName: 'app', commandArgs: ['/usr/bin/app', '--card=4111111111111111'] };
    const line = () => String(resources.get(app).resource.attributes['process.command_line']);
    assert.equal(line(), '/usr/bin/app --card=4111111111111111');
    live.swap(new CaptureRules({ global: { capture: ['*'], redact: [...DEFAULT_REDACT_HEADERS, 'card'] } }));
    assert.equal(line(), `/usr/bin/app --card=${REDACTED}`);
  });
});
