export { ProcessInfoCache, containerIdFromCgroup, unifiedCgroupPath, hostProcFs, type ProcessInfo, type ProcessInfoOptions, type ProcFs } from './process-info';
export { otelEnvFromEnviron, otelEnvFromProcessEnv, parseResourceAttributes, type OtelEnv } from './environ';
export { cgroup2Mount, resolveCgroupPath } from './cgroup';
export { podUidFromCgroup } from './kubepods';
export { detectHostName, hostProbes, type HostName, type HostNameSource, type HostProbes } from './host';
