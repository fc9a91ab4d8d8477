export { OtlpReceiver, type ReceivedBatch } from './server';
export { metricsLine } from './decode';
