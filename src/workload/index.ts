export { ProcessInfoCache, type ProcessInfo } from './process-info';
export { resolveCgroupPath } from './cgroup';
