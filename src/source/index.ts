export type { CloseEvent, DataEvent, Direction, Endpoint, KernelCounters, ReadyEvent, SourceEvent, StatsEvent } from './types';
export type { EventSource, SourceCounters, SourceEnd } from './source';
export { LoaderSource, type LoaderOptions } from './loader';
export { RecordingWriter, ReplaySource, readRecording, eventsOf } from './recording';
export { RecordingMasker } from './recording-masker';
export { MonotonicClock, type HrTime } from './clock';
export { formatAddress, isV4Mapped } from './decode';
