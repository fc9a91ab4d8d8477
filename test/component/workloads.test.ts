/**
 * Workload identity: what a process says about itself (OTEL_SERVICE_NAME,
 * OTEL_RESOURCE_ATTRIBUTES in /proc/PID/environ), and one OTLP Resource per
 * workload in the real export (the SDK's exporters to a real receiver,
 * resource_logs decoded from the raw request bytes). No root needed.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { after, describe, it } from 'node:test';
import { silentLog } from '../helpers/log';
import { HeaderRules, LogPipeline, resolveExportTarget, DEFAULT_REDACT_HEADERS } from '../../src/otel';
import { WorkloadResources, workloadAttributes } from '../../src/otel/workloads';
import type { ExchangeRecord } from '../../src/otel/record';
import { exchangeRecord } from '../helpers/records';
import { ProcessInfoCache, type ProcessInfo } from '../../src/workload';
import { otelEnvFromEnviron, parseResourceAttributes } from '../../src/workload/environ';
import type { ProcFs } from '../../src/workload/process-info';
import { resourceLogsOf, startOtlpSink } from '../helpers/otlp-sink';

const env = (...vars: string[]) => `${vars.join('\0')}\0`;

describe('what a process says about itself', () => {
  it('OTEL_SERVICE_NAME wins over service.name in OTEL_RESOURCE_ATTRIBUTES', () => {
    const both = otelEnvFromEnviron(env('PATH=/bin', 'OTEL_RESOURCE_ATTRIBUTES=service.name=from-attrs,deployment.environment=prod', 'OTEL_SERVICE_NAME=checkout'));
    assert.equal(both.serviceName, 'checkout');
    assert.deepEqual(both.resourceAttributes, { 'service.name': 'from-attrs', 'deployment.environment': 'prod' });
    assert.equal(otelEnvFromEnviron(env('OTEL_RESOURCE_ATTRIBUTES=service.name=from-attrs')).serviceName, 'from-attrs');
    assert.equal(otelEnvFromEnviron(env('OTEL_SERVICE_NAME=', 'HOME=/root')).serviceName, undefined);
  });

  it('parses OTEL_RESOURCE_ATTRIBUTES as the spec says, discarding it whole on any error', () => {
    assert.deepEqual(parseResourceAttributes('a=1, b = x%2Cy ,,c=%3D'), { a: '1', b: 'x,y', c: '=' });
    assert.deepEqual(parseResourceAttributes('a=1,b=2=3'), {}, 'unencoded =');
    assert.deepEqual(parseResourceAttributes('a=%zz'), {}, 'bad escape');
    assert.deepEqual(parseResourceAttributes(`a=${'v'.repeat(256)}`), {}, 'too long');
    assert.deepEqual(parseResourceAttributes(Array.from({ length: 40 }, (_, i) => `k${i}=v`).join(',')), {}, 'too many');
  });

  it('keeps nothing else from the environment', () => {
    const e = otelEnvFromEnviron(env('AWS_SECRET_ACCESS_KEY=S3CRET', 'OTEL_SERVICE_NAME=svc', 'DB_PASSWORD=S3CRET'));
    assert.doesNotMatch(JSON.stringify(e), /S3CRET/);
  });
});

describe('ProcessInfoCache', () => {
  const files: Record<string, string> = {
    '/proc/10/comm': 'app\n',
    '/proc/10/cgroup': `0::/system.slice/docker-${'ab'.repeat(32)}.scope\n`,
    '/proc/10/environ': env('OTEL_SERVICE_NAME=orders', 'OTEL_RESOURCE_ATTRIBUTES=service.namespace=shop'),
    '/proc/10/cmdline': env('/usr/bin/app', '--api-token=T0K', '--port', '80'),
  };
  const fakeProc: ProcFs = {
    readlink: (p) => {
      if (p === '/proc/10/exe') return '/usr/bin/app (deleted)';
      throw new Error('ENOENT');
    },
    readFile: (p) => {
      if (p in files) return files[p];
      throw new Error('ENOENT');
    },
  };

  it('reads service name, resource attributes and container id; the command line only when asked', () => {
    const info = new ProcessInfoCache({ fs: fakeProc }).get(10, 'app');
    assert.deepEqual(info, {
      pid: 10,
      executableName: 'app',
      cgroupPath: `/system.slice/docker-${'ab'.repeat(32)}.scope`,
      containerId: 'ab'.repeat(32),
      serviceName: 'orders',
      resourceAttributes: { 'service.namespace': 'shop' },
      comm: 'app',
    });
    assert.deepEqual(new ProcessInfoCache({ fs: fakeProc, commandLine: true }).get(10, 'app').commandArgs, ['/usr/bin/app', '--api-token=T0K', '--port', '80']);
  });

  it('a pid that now belongs to another process (other comm) gives only the event name', () => {
    assert.deepEqual(new ProcessInfoCache({ fs: fakeProc }).get(10, 'other'), { pid: 10, executableName: 'other', comm: 'other' });
  });

  it('reads a real child process started with OTEL_SERVICE_NAME', async () => {
    const child = spawn(process.execPath, ['-e', 'setTimeout(() => {}, 30000)'], {
      env: { ...process.env, OTEL_SERVICE_NAME: 'unit-child-svc' },
      stdio: 'ignore',
    });
    after(() => child.kill('SIGKILL'));
    await new Promise((r) => child.once('spawn', r));
    // exec has happened once node runs: wait until /proc shows node, not the forked parent.
    let info: ProcessInfo | undefined;
    for (let i = 0; i < 100 && info?.serviceName === undefined; i++) {
      info = new ProcessInfoCache().get(child.pid!, 'node');
      if (info.serviceName === undefined) await new Promise((r) => setTimeout(r, 20));
    }
    assert.equal(info?.serviceName, 'unit-child-svc');
    assert.equal(info?.executableName, 'node');
  });
});

function rec(i: number, workloads?: WorkloadResources, info?: ProcessInfo): ExchangeRecord {
  return {
    ...exchangeRecord(i),
    body: `GET /w${i} -> 200`,
    attributes: ['url.path', `/w${i}`],
    ...(workloads && info ? { resource: workloads.get(info).resource } : {}),
  };
}

/** A logs pipeline exporting OTLP/gRPC to a real receiver, stopped after the test. */
async function pipelineToSink(serviceName: string, version: string) {
  const sink = await startOtlpSink('grpc');
  after(() => sink.stop());
  const p = new LogPipeline({ target: resolveExportTarget({ endpoint: sink.endpoint }, {}), serviceName, version, log: silentLog });
  return { sink, p };
}

describe('one OTLP resource per workload', () => {
  const orders: ProcessInfo = { pid: 100, executableName: 'node', serviceName: 'orders', resourceAttributes: { 'deployment.environment': 'prod' } };
  const payments: ProcessInfo = { pid: 200, executableName: 'java', serviceName: 'payments', containerId: 'c'.repeat(64) };
  const nginx: ProcessInfo = { pid: 300, executableName: 'nginx' };

  it('workloadAttributes: the process own attributes, then headertap facts (which win)', () => {
    const rules = new HeaderRules({ capture: ['*'], redact: DEFAULT_REDACT_HEADERS });
    const attrs = workloadAttributes(
      { pid: 5, executableName: 'app', serviceName: 'svc', resourceAttributes: { 'process.pid': '999', team: 'a' }, commandArgs: ['app', '--password', 'PW'] },
      { commandLine: true, rules, hostName: 'h1' },
    );
    assert.deepEqual(attrs, {
      team: 'a',
      'process.pid': 5,
      'service.name': 'svc',
      'process.executable.name': 'app',
      'process.command_line': 'app --password [REDACTED]',
      'host.name': 'h1',
    });
    assert.equal(workloadAttributes({ pid: 5, executableName: 'app' })['service.name'], 'app', 'executable name when the process names no service');
  });

  it('exports each workload under its own resource; records without one under the agent', async () => {
    const { sink, p } = await pipelineToSink('headertap-agent', '1.2.3');
    const workloads = new WorkloadResources({ hostName: 'host-a' });
    [orders, payments, orders, nginx, payments, orders].forEach((w, i) => p.emit(rec(i, workloads, w)));
    p.emit(rec(99));
    await p.shutdown();
    assert.equal(sink.batches.length, 1, 'one export request');
    const rls = resourceLogsOf(sink.batches[0].raw);
    assert.deepEqual(
      rls.map((r) => `${String(r.resource['service.name'])}:${r.records}`).sort(),
      ['headertap-agent:1', 'nginx:1', 'orders:3', 'payments:2'],
    );
    const pay = rls.find((r) => r.resource['service.name'] === 'payments')!.resource;
    assert.deepEqual(pay, { 'service.name': 'payments', 'process.pid': 200, 'process.executable.name': 'java', 'container.id': 'c'.repeat(64), 'host.name': 'host-a' });
    assert.equal(rls.find((r) => r.resource['service.name'] === 'orders')!.resource['deployment.environment'], 'prod');
    assert.equal(rls.find((r) => r.resource['service.name'] === 'headertap-agent')!.resource['service.version'], '1.2.3');
  });

  it('bounds the workloads it keeps (LRU); evicting one never stops the shared export', async () => {
    const { sink, p } = await pipelineToSink('agent', '0');
    const workloads = new WorkloadResources({ max: 2 });
    const many = Array.from({ length: 50 }, (_, i): ProcessInfo => ({ pid: 1000 + i, executableName: `w${i}` }));
    many.forEach((w, i) => p.emit(rec(i, workloads, w)));
    assert.equal(workloads.size, 2);
    assert.equal(workloads.counters.evicted, 48);
    p.emit(rec(100, workloads, many[0])); // evicted long ago: comes back as a new resource
    await p.shutdown();
    assert.equal(p.counters.accepted, 51);
    assert.equal(p.counters.exported, 51);
    assert.equal(p.counters.failedExports, 0);
    assert.equal(p.delivery.pending, 0, 'nothing dropped, nothing left');
    const names = sink.batches.flatMap((b) => resourceLogsOf(b.raw).map((r) => r.resource['service.name']));
    assert.equal(new Set(names).size, 50);
  });
});
