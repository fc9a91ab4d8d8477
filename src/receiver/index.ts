export { OtlpReceiver, parseListen, type ReceivedBatch, type ReceiverOptions, type BoundAddresses } from './server';
export { decodeLogsRequest, decodeMetricsRequest, logsTypes, metricsLine, type MetricPoint } from './decode';
