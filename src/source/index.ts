export type {
  AttachEvent,
  CloseEvent,
  CpuStatsEvent,
  DataEvent,
  Direction,
  Endpoint,
  ExecEvent,
  KernelCounters,
  ReadyEvent,
  SourceEvent,
  StatsEvent,
} from './types';
export type { EventSource, SourceCounters, SourceEnd } from './source';
export { LoaderSource, type LoaderOptions } from './loader';
export { describeFilters, sameFilters, setFiltersArgs, FILTER_LIMITS, NO_FILTERS, type CaptureFilters } from './filters';
export { SupervisedSource, type SupervisorOptions } from './supervisor';
export { RecordingWriter, ReplaySource, readRecording, eventsOf } from './recording';
export { RecordingMasker } from './recording-masker';
export { MonotonicClock, type HrTime } from './clock';
export { formatAddress, isV4Mapped } from './decode';
export { TlsTargets, libsslInMaps, tlsFunctionNames, type TlsFs, type TlsTarget } from './tls-targets';
