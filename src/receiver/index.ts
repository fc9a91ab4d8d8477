export { OtlpReceiver, parseListen, type ReceivedBatch, type ReceiverOptions, type BoundAddresses, type Signal } from './server';
export { decodeLogsRequest, decodeTracesRequest, logsTypes, tracesTypes } from './decode';
