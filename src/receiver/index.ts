export { OtlpReceiver, parseListen, type ReceivedBatch, type ReceiverOptions, type BoundAddresses } from './server';
export { decodeLogsRequest, logsTypes } from './decode';
