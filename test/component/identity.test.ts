/**
 * headertap's own identity: service.name from --service-name, else
 * OTEL_SERVICE_NAME, else OTEL_RESOURCE_ATTRIBUTES, else `headertap`; the
 * rest of OTEL_RESOURCE_ATTRIBUTES on its resource; host.name by the steps of
 * src/workload/host.ts (the kernel probes stand in here; the real ones, in a
 * UTS namespace of the test's own, are in test/integration/correlation.test.ts).
 * The agent resource is checked in the real OTLP export.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import { resolveAgentIdentity } from '../../src/cli/identity';
import { silentLog } from '../helpers/log';
import { LogPipeline, resolveExportTarget } from '../../src/otel';
import { detectHostName, type HostProbes } from '../../src/workload/host';
import { resourceLogsOf, startOtlpSink } from '../helpers/otlp-sink';
import { exchangeRecord } from '../helpers/records';

/** Probes answering as headertap in the host's UTS namespace (inHost) or a container's would, the host reachable or not. */
function probes(o: { inHost?: boolean; hostVisible?: boolean; hostName?: string } = {}): HostProbes & { asked: string[] } {
  const asked: string[] = [];
  const hostNs = 'uts:[4026531838]';
  return {
    asked,
    selfUts: () => (asked.push('self'), o.inHost ? hostNs : 'uts:[4026532999]'),
    hostUts: () => (asked.push('host'), o.hostVisible === false ? undefined : { ns: hostNs, path: '/proc/1/ns/uts' }),
    hostnameIn: async (path) => (asked.push(`nsenter ${path}`), o.hostName),
    osHostname: () => 'pod-7f9c',
  };
}

describe('host.name', () => {
  it('host.name in OTEL_RESOURCE_ATTRIBUTES wins, without looking at the kernel', async () => {
    const p = probes({ inHost: true });
    assert.deepEqual(await detectHostName({ K8S_NODE_NAME: 'node-1' }, { 'host.name': 'given' }, p), { name: 'given', source: 'OTEL_RESOURCE_ATTRIBUTES' });
    assert.deepEqual(p.asked, []);
  });

  it("the process's own hostname when it shares the host's UTS namespace (a host, systemd, a hostNetwork pod)", async () => {
    const p = probes({ inHost: true, hostName: 'other' });
    assert.deepEqual(await detectHostName({ K8S_NODE_NAME: 'node-1' }, {}, p), { name: 'pod-7f9c', source: 'uts' });
    assert.deepEqual(p.asked, ['host', 'self'], 'no helper process started');
  });

  it("in a container: the host's UTS namespace, else K8S_NODE_NAME, else the container's name", async () => {
    const ctr = probes({ hostName: 'worker-3' });
    assert.deepEqual(await detectHostName({ K8S_NODE_NAME: 'node-1' }, {}, ctr), { name: 'worker-3', source: 'host-uts' });
    assert.deepEqual(ctr.asked, ['host', 'self', 'nsenter /proc/1/ns/uts']);
    assert.deepEqual(await detectHostName({ K8S_NODE_NAME: ' node-1 ' }, {}, probes()), { name: 'node-1', source: 'K8S_NODE_NAME' });
    const blind = probes({ hostVisible: false, hostName: 'never-asked' });
    assert.deepEqual(await detectHostName({}, {}, blind), { name: 'pod-7f9c', source: 'container' });
    assert.ok(!blind.asked.some((a) => a.startsWith('nsenter')), 'no namespace to enter');
  });
});

describe("headertap's own resource", () => {
  const inHost = probes({ inHost: true });

  it('service.name: the flag, else OTEL_SERVICE_NAME, else service.name in OTEL_RESOURCE_ATTRIBUTES, else headertap', async () => {
    const env = { OTEL_SERVICE_NAME: 'from-env', OTEL_RESOURCE_ATTRIBUTES: 'service.name=from-attrs' };
    assert.equal((await resolveAgentIdentity('from-flag', env, inHost)).serviceName, 'from-flag');
    assert.equal((await resolveAgentIdentity(undefined, env, inHost)).serviceName, 'from-env');
    assert.equal((await resolveAgentIdentity(undefined, { OTEL_RESOURCE_ATTRIBUTES: 'service.name=from-attrs' }, inHost)).serviceName, 'from-attrs');
    assert.equal((await resolveAgentIdentity(undefined, { OTEL_SERVICE_NAME: '  ' }, inHost)).serviceName, 'headertap');
  });

  it('keeps the other OTEL_RESOURCE_ATTRIBUTES (the DaemonSet k8s.node.name), adds host.name', async () => {
    const id = await resolveAgentIdentity(undefined, { OTEL_RESOURCE_ATTRIBUTES: 'k8s.node.name=node-1,service.name=x,team=a%2Cb' }, inHost);
    assert.deepEqual(id.attributes, { 'k8s.node.name': 'node-1', team: 'a,b', 'host.name': 'pod-7f9c' });
    assert.deepEqual(id.warnings, []);
  });

  it('says so when OTEL_RESOURCE_ATTRIBUTES is malformed, or host.name can only be the container name', async () => {
    const bad = await resolveAgentIdentity(undefined, { OTEL_RESOURCE_ATTRIBUTES: 'k8s.node.name=a=b' }, inHost);
    assert.deepEqual(bad.attributes, { 'host.name': 'pod-7f9c' });
    assert.match(bad.warnings.join('\n'), /OTEL_RESOURCE_ATTRIBUTES is ignored/);
    const ctr = await resolveAgentIdentity(undefined, {}, probes());
    assert.match(ctr.warnings.join('\n'), /host\.name is this container's hostname \(pod-7f9c\).*K8S_NODE_NAME/);
    assert.deepEqual((await resolveAgentIdentity(undefined, { OTEL_RESOURCE_ATTRIBUTES: ' , ' }, inHost)).warnings, [], 'empty is not malformed');
  });

  it('reaches the exported resource: attributes from the environment, service.name and version winning', async () => {
    const sink = await startOtlpSink('grpc');
    after(() => sink.stop());
    const id = await resolveAgentIdentity(undefined, { OTEL_SERVICE_NAME: 'ht-node-agent', OTEL_RESOURCE_ATTRIBUTES: 'k8s.node.name=node-1,service.version=0' }, inHost);
    const p = new LogPipeline({
      target: resolveExportTarget({ endpoint: sink.endpoint }, {}),
      serviceName: id.serviceName,
      agentAttributes: id.attributes,
      version: '1.2.3',
      log: silentLog,
    });
    p.emit(exchangeRecord(0));
    await p.shutdown();
    const [rl] = resourceLogsOf(sink.batches[0].raw);
    assert.equal(rl.resource['service.name'], 'ht-node-agent');
    assert.equal(rl.resource['service.version'], '1.2.3');
    assert.equal(rl.resource['k8s.node.name'], 'node-1');
    assert.equal(rl.resource['host.name'], 'pod-7f9c');
    assert.equal(rl.resource['telemetry.sdk.language'], 'nodejs', 'the SDK defaults stay');
  });
});
