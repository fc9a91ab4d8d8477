export { ProcessInfoCache, type KernelIdentity, type ProcessCounters, type ProcessInfo } from './process-info';
export { cgroup2Mount, resolveCgroupPath } from './cgroup';
