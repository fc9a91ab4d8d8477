/**
 * otel-config/ against real programs (real eBPF, loopback only):
 * - headertap runs and captures with only the capabilities the systemd unit
 *   and the DaemonSet grant (setpriv limits the bounding set);
 * - the compose demo's app, run under headertap, makes spans whose trace and
 *   span ids are the ones on headertap's records of the same call.
 *
 * Not covered: Docker, Kubernetes, systemd itself (none run here).
 */
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import type { FlatRecord } from '../../src/common/flat-record';
import { attr, background, byPid, freePort, requireCommand, requireEbpf, run, startAgent, startNginx, waitForPort } from '../helpers/integration';
import { OTEL_CONFIG, yamlDocs, type Obj } from '../helpers/otel-config';
import { startOtlpSink } from '../helpers/otlp-sink';

/** Capabilities this process may pass on (its bounding set), as lower-case names. */
function boundingCaps(): Set<number> {
  const m = /^CapBnd:\s*([0-9a-f]+)$/m.exec(readFileSync('/proc/self/status', 'utf8'));
  const mask = BigInt(`0x${m ? m[1] : '0'}`);
  const out = new Set<number>();
  for (let i = 0; i < 64; i++) if (mask & (1n << BigInt(i))) out.add(i);
  return out;
}

const CAP_NUMBERS: Record<string, number> = {
  DAC_READ_SEARCH: 2,
  SYS_PTRACE: 19,
  SYS_ADMIN: 21,
  SYS_RESOURCE: 24,
  PERFMON: 38,
  BPF: 39,
};

describe('deployment manifests against real eBPF', () => {
  it('headertap captures with only the capabilities the systemd unit and the DaemonSet grant', async (t) => {
    if (!requireEbpf(t) || !requireCommand(t, '/usr/bin/setpriv')) return;
    const unit = readFileSync(path.join(OTEL_CONFIG, 'systemd', 'headertap.service'), 'utf8');
    const unitCaps = (/^CapabilityBoundingSet=(.*)$/m.exec(unit)?.[1] ?? '').split(/\s+/).map((c) => c.replace(/^CAP_/, ''));
    assert.deepEqual((/^AmbientCapabilities=(.*)$/m.exec(unit)?.[1] ?? '').split(/\s+/).map((c) => c.replace(/^CAP_/, '')), unitCaps);
    const ds = (yamlDocs(path.join(OTEL_CONFIG, 'kubernetes', 'headertap-daemonset.yaml')) as Obj[]).find((d) => d.kind === 'DaemonSet')!;
    const container = ((ds.spec as Obj).template as { spec: { containers: { securityContext: { capabilities: { add: string[] } } }[] } }).spec.containers[0];
    assert.deepEqual([...container.securityContext.capabilities.add].sort(), [...unitCaps].sort(), 'the DaemonSet grants what the unit grants');

    // Keep what this machine can grant at all; say what it cannot.
    const available = boundingCaps();
    const usable = unitCaps.filter((c) => available.has(CAP_NUMBERS[c]));
    const missing = unitCaps.filter((c) => !available.has(CAP_NUMBERS[c]));
    if (missing.length) process.stderr.write(`# this machine cannot grant ${missing.join(', ')}; running with ${usable.join(', ')}\n`);
    assert.ok(usable.includes('BPF') && usable.includes('PERFMON'));
    const setpriv = ['/usr/bin/setpriv', `--bounding-set=-all,${usable.map((c) => `+${c.toLowerCase()}`).join(',')}`, '--inh-caps=-all', '--', process.execPath, path.join(OTEL_CONFIG, '..', 'bin', 'headertap')];

    const nginx = await startNginx(t);
    const sink = await startOtlpSink();
    t.after(() => sink.stop());
    const agent = await startAgent(t, ['--endpoint', sink.endpoint, '--port', String(nginx.port)], {}, setpriv);
    const status = readFileSync(`/proc/${agent.pid}/status`, 'utf8');
    const eff = BigInt(`0x${/^CapEff:\s*([0-9a-f]+)$/m.exec(status)![1]}`);
    const granted = new Set(usable.map((c) => CAP_NUMBERS[c]));
    for (let i = 0; i < 64; i++) if (eff & (1n << BigInt(i))) assert.ok(granted.has(i), `the agent holds capability ${i} only if the unit grants it`);

    const curl = await run('curl', ['-sS', `http://127.0.0.1:${nginx.port}/least-privilege`]);
    assert.equal(curl.code, 0, curl.stderr);
    await sink.waitFor((rs) => rs.length >= 2, 15000, 'client and server records');
    const end = await agent.stop();
    assert.equal(end.code, 0, end.stderr);
    const [rec] = byPid(sink.records(), curl.pid);
    assert.equal(attr(rec, 'url.path'), '/least-privilege');
    assert.equal(rec.resource['process.executable.name'], 'curl', '/proc/PID/exe is readable with these capabilities');
  });

  it("the demo app's spans and headertap's records of the same call share trace and span ids", async (t) => {
    if (!requireEbpf(t)) return;
    const sink = await startOtlpSink('http');
    t.after(() => sink.stop());
    const [frontendPort, backendPort] = [await freePort(), await freePort()];
    const agent = await startAgent(t, ['--endpoint', sink.endpoint, '--protocol', 'http/protobuf', '--port', String(backendPort)]);
    const app = path.join(OTEL_CONFIG, 'demo', 'app.mjs');
    const common = { ...process.env, OTEL_EXPORTER_OTLP_ENDPOINT: sink.endpoint };
    background(t, process.execPath, [app], { ...common, DEMO_ROLE: 'backend', PORT: String(backendPort), OTEL_SERVICE_NAME: 'demo-backend' });
    background(t, process.execPath, [app], {
      ...common,
      DEMO_ROLE: 'frontend',
      PORT: String(frontendPort),
      BACKEND_URL: `http://127.0.0.1:${backendPort}`,
      OTEL_SERVICE_NAME: 'demo-frontend',
    });
    await waitForPort(backendPort);
    await waitForPort(frontendPort);

    for (const p of ['/api/items', '/api/legacy']) {
      const curl = await run('curl', ['-sS', '-H', 'x-tenant: acme', `http://127.0.0.1:${frontendPort}${p}`]);
      assert.equal(curl.code, 0, curl.stderr);
    }
    // Per call: frontend SERVER + CLIENT, backend SERVER; headertap: both sides of frontend -> backend.
    await sink.waitForSpans((ss) => ss.length >= 6, 15000, 'the demo spans of both calls');
    await sink.waitFor((rs) => rs.length >= 4, 15000, 'records of both backend calls');
    const end = await agent.stop();
    assert.equal(end.code, 0, end.stderr);

    const spans = sink.spans();
    const records = sink.records();
    const path1 = (r: FlatRecord) => attr(r, 'url.path');
    const client = spans.find((s) => s.kind === 'CLIENT' && s.name === 'GET /api/items')!;
    assert.ok(client, 'the frontend made a CLIENT span for its backend call');
    assert.equal(client.resource['service.name'], 'demo-frontend');
    const backendServer = spans.find((s) => s.kind === 'SERVER' && s.resource['service.name'] === 'demo-backend' && s.trace_id === client.trace_id);
    assert.equal(backendServer?.parent_span_id, client.span_id, 'the backend continued the trace from traceparent');

    const itemRecords = records.filter((r) => path1(r) === '/api/items');
    assert.deepEqual(itemRecords.map((r) => attr(r, 'headertap.role')).sort(), ['client', 'server']);
    for (const r of itemRecords) {
      assert.equal(r.trace_id, client.trace_id, "headertap's record is in the demo's trace");
      assert.equal(r.span_id, client.span_id, "and points at the frontend's CLIENT span");
      assert.deepEqual(attr(r, 'http.request.header.x-tenant'), ['acme']);
    }
    const legacy = records.filter((r) => path1(r) === '/api/legacy');
    assert.equal(legacy.length, 2);
    for (const r of legacy) {
      assert.equal(r.trace_id, undefined, '/api/legacy drops the trace context');
      assert.equal(attr(r, 'http.request.header.traceparent'), undefined, 'the dashboard counts it as missing traceparent');
    }
  });
});
