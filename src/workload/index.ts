export { ProcessInfoCache, containerIdFromCgroup, hostProcFs, type ProcessInfo, type ProcFs } from './process-info';
