export { OtlpReceiver, parseListen, type ReceivedBatch, type ReceiverOptions, type BoundAddresses, type Signal } from './server';
export { decodeLogsRequest, decodeMetricsRequest, decodeTracesRequest, logsTypes, metricsLine, tracesTypes, type MetricPoint } from './decode';
