/**
 * k8s.pod.uid and container.id from /proc/PID/cgroup, for the path shapes
 * the kubelet and the container runtimes write (cgroupfs and systemd
 * drivers; containerd, CRI-O, cri-dockerd; cgroup v2, and v1 hybrid), as
 * seen from the host and from inside a cgroup namespace. Real cgroup
 * directories with these names, a real process in them and real eBPF:
 * test/integration/correlation.test.ts.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { workloadAttributes } from '../../src/otel/workloads';
import { podUidFromCgroup } from '../../src/workload/kubepods';
import { ProcessInfoCache, containerIdFromCgroup, type ProcFs } from '../../src/workload/process-info';

const UID = '5a6b9f3e-0c1d-4e2f-8a9b-0c1d2e3f4a5b';
const UID_ = UID.replace(/-/g, '_');
const CID = 'f00d'.repeat(16);

/** [runtime and driver, /proc/PID/cgroup line] of processes in the pod UID, container CID. */
const IN_POD: [string, string][] = [
  ['containerd, systemd, Burstable', `0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/cri-containerd-${CID}.scope`],
  ['containerd, systemd, Guaranteed', `0::/kubepods.slice/kubepods-pod${UID_}.slice/cri-containerd-${CID}.scope`],
  ['CRI-O, systemd, BestEffort', `0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod${UID_}.slice/crio-${CID}.scope`],
  ['CRI-O, systemd, crun sub-cgroup', `0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/crio-${CID}.scope/container`],
  ['cri-dockerd, systemd', `0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/docker-${CID}.scope`],
  ['kind (--cgroup-root=/kubelet), systemd', `0::/kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/kubelet-kubepods-besteffort-pod${UID_}.slice/cri-containerd-${CID}.scope`],
  ['containerd or cri-dockerd, cgroupfs, Burstable', `0::/kubepods/burstable/pod${UID}/${CID}`],
  ['containerd, cgroupfs, Guaranteed', `0::/kubepods/pod${UID}/${CID}`],
  ['CRI-O, cgroupfs', `0::/kubepods/besteffort/pod${UID}/crio-${CID}`],
  // Read from inside another pod's cgroup namespace: the path is relative to the reader's root.
  ['seen from a cgroup namespace, systemd', `0::/../../../kubepods-besteffort.slice/kubepods-besteffort-pod${UID_}.slice/cri-containerd-${CID}.scope`],
  ['seen from a cgroup namespace, cgroupfs', `0::/../../../pod${UID}/${CID}`],
  ['cgroup v1 hybrid', `12:pids:/kubepods/burstable/pod${UID}/${CID}\n11:memory:/kubepods/burstable/pod${UID}/${CID}\n0::/kubepods/burstable/pod${UID}/${CID}`],
];

describe('k8s.pod.uid and container.id from the cgroup path', () => {
  for (const [what, cgroup] of IN_POD) {
    it(`${what}: the pod UID (with its dashes) and the container id`, () => {
      assert.equal(podUidFromCgroup(`${cgroup}\n`), UID);
      assert.equal(containerIdFromCgroup(`${cgroup}\n`), CID);
    });
  }

  it('no pod UID outside Kubernetes, for a static pod, or for a name that only looks alike', () => {
    const none = [
      `0::/system.slice/docker-${CID}.scope`, // plain Docker
      `0::/machine.slice/libpod-${CID}.scope`, // Podman
      '0::/user.slice/user-1000.slice/session-3.scope',
      '0::/',
      '',
      // static pod: the kubelet's manifest hash, not an API UID
      `0::/kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod6b4e1b6c94bd0e3b1ab3ba6ec40d1ec1.slice/cri-containerd-${CID}.scope`,
      `0::/kubepods/burstable/pod6b4e1b6c94bd0e3b1ab3ba6ec40d1ec1/${CID}`,
      // dashes where systemd has '_' (not what the kubelet writes), and a unit of someone else's
      `0::/kubepods.slice/kubepods-pod${UID}.slice/x.scope`,
      `0::/system.slice/mypod${UID_}.slice`,
      `0::/system.slice/apod${UID}`,
    ];
    for (const c of none) assert.equal(podUidFromCgroup(c), undefined, c);
  });
});

describe('the workload resource carries k8s.pod.uid next to container.id', () => {
  const files: Record<string, string> = {
    '/proc/7/comm': 'app\n',
    '/proc/7/cgroup': `0::/kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod${UID_}.slice/cri-containerd-${CID}.scope\n`,
    '/proc/8/comm': 'sshd\n',
    '/proc/8/cgroup': '0::/system.slice/ssh.service\n',
  };
  const proc: ProcFs = {
    readlink: (p) => `/usr/bin/${files[p.replace('/exe', '/comm')]?.trim() ?? ''}`,
    readFile: (p) => {
      if (p in files) return files[p];
      throw new Error('ENOENT');
    },
  };

  it('a process in a pod: both; a host process: neither', () => {
    const cache = new ProcessInfoCache({ fs: proc });
    const pod = workloadAttributes(cache.get(7, 'app'), { hostName: 'node-a' });
    assert.equal(pod['k8s.pod.uid'], UID);
    assert.equal(pod['container.id'], CID);
    assert.equal(pod['host.name'], 'node-a');
    const host = workloadAttributes(cache.get(8, 'sshd'), { hostName: 'node-a' });
    assert.equal(host['k8s.pod.uid'], undefined);
    assert.equal(host['container.id'], undefined);
  });

  it("what headertap reads wins over a k8s.pod.uid in the process's own OTEL_RESOURCE_ATTRIBUTES", () => {
    const attrs = workloadAttributes({ pid: 1, executableName: 'x', podUid: UID, resourceAttributes: { 'k8s.pod.uid': 'stale' } });
    assert.equal(attrs['k8s.pod.uid'], UID);
  });
});
