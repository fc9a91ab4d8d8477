export { ProcessInfoCache, type ProcessInfo } from './process-info';
export { cgroup2Mount, resolveCgroupPath } from './cgroup';
