import { UsageError } from '../common/errors';
import { metricsLine, OtlpReceiver } from '../receiver';
import { lineWriter, stderrLine, stderrLog, type CliIO } from './output';
import { batchPrinter } from './print';

export interface ReceiveOptions {
  listen: string;
  httpListen?: string;
  format: string;
}

/** `headertap receive`: print every record (and span) that arrives until SIGINT/SIGTERM. */
export async function runReceiver(opts: ReceiveOptions, io: CliIO): Promise<number> {
  if (opts.format !== 'pretty' && opts.format !== 'jsonl') {
    throw new UsageError(`--format '${opts.format}' is not one of: pretty, jsonl`);
  }
  const log = stderrLog(io, false);
  const out = lineWriter(io.stdout);
  const receiver = new OtlpReceiver({
    grpcListen: opts.listen,
    ...(opts.httpListen ? { httpListen: opts.httpListen } : {}),
    onBatch: batchPrinter(opts.format, out),
    onMetrics: (points) => log.info(metricsLine(points)),
    onError: (msg) => log.warn(msg),
  });
  const bound = await receiver.start();
  const where = [`${bound.grpc} (OTLP/gRPC)`, ...(bound.http ? [`${bound.http} (OTLP/HTTP)`] : [])].join(' and ');
  stderrLine(io, `headertap receiver listening on ${where}`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await receiver.stop();
  return 0;
}
