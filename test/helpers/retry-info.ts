import protobuf from 'protobufjs';
import { RETRY_INFO_TYPE } from '../../src/otel/retry';

/** Encodes a google.rpc.Status carrying a RetryInfo, as a collector asking for a delay sends it (for test servers and fakes). */
export function encodeRetryInfoStatus(code: number, message: string, delayMs: number): Buffer {
  const duration = protobuf.Writer.create();
  duration.uint32(1 << 3).int64(Math.floor(delayMs / 1000));
  duration.uint32(2 << 3).int32((delayMs % 1000) * 1e6);
  const info = protobuf.Writer.create().uint32((1 << 3) + 2).bytes(duration.finish());
  const any = protobuf.Writer.create()
    .uint32((1 << 3) + 2)
    .string(RETRY_INFO_TYPE)
    .uint32((2 << 3) + 2)
    .bytes(info.finish());
  const status = protobuf.Writer.create()
    .uint32(1 << 3)
    .int32(code)
    .uint32((2 << 3) + 2)
    .string(message)
    .uint32((3 << 3) + 2)
    .bytes(any.finish());
  return Buffer.from(status.finish());
}
