/**
 * The Kubernetes pod a process runs in, from its cgroup path: the kubelet
 * names one cgroup per pod after the pod's UID, under the QoS class cgroups
 * it keeps below its cgroup root (`kubepods`).
 *
 *   cgroupfs driver (containerd, CRI-O, cri-dockerd):
 *     /kubepods/burstable/pod<uid>/<64 hex>          (CRI-O: crio-<64 hex>)
 *     /kubepods/pod<uid>/<64 hex>                    (Guaranteed QoS)
 *   systemd driver, '-' of the UID escaped as '_' (systemd's slice separator):
 *     /kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod<uid_>.slice/cri-containerd-<64 hex>.scope
 *     /kubepods.slice/kubepods-pod<uid_>.slice/crio-<64 hex>.scope
 *     /kubelet.slice/kubelet-kubepods.slice/kubelet-kubepods-besteffort.slice/…  (kind: --cgroup-root=/kubelet)
 *
 * Paths are as /proc/PID/cgroup shows them to the reader: inside a cgroup
 * namespace (headertap in a pod of its own) another pod's path starts with
 * `/..` and the `kubepods` directories above the common ancestor are not
 * shown, so the pod's own directory is matched by its name alone.
 *
 * Static pods (kube-apiserver, etcd …) are the exception: their cgroup
 * carries the kubelet's hash of the manifest (32 hex digits), not the UID
 * the API server gives their mirror pod, so nothing is returned for them;
 * their container.id still identifies them.
 */

/** `pod` + the UID as the cgroupfs driver writes it (a UUID, with dashes). */
const CGROUPFS_POD = /^pod([0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12})$/;
/** `…kubepods[-<qos>]-pod<uid with _>.slice`, as the systemd driver writes it. */
const SYSTEMD_POD = /(?:^|-)kubepods(?:-[a-z]+)?-pod([0-9a-f]{8}_[0-9a-f]{4}_[0-9a-f]{4}_[0-9a-f]{4}_[0-9a-f]{12})\.slice$/;

/** The pod UID (k8s.pod.uid) in the contents of /proc/PID/cgroup, if the process is in a pod. */
export function podUidFromCgroup(cgroupFile: string): string | undefined {
  for (const line of cgroupFile.split('\n')) {
    // hierarchy-id:controllers:path (cgroup v2: 0::path); the path may hold ':'
    const path = line.slice(line.indexOf(':', line.indexOf(':') + 1) + 1);
    for (const part of path.split('/')) {
      const cgroupfs = CGROUPFS_POD.exec(part);
      if (cgroupfs) return cgroupfs[1];
      const systemd = SYSTEMD_POD.exec(part);
      if (systemd) return systemd[1].replace(/_/g, '-');
    }
  }
  return undefined;
}
