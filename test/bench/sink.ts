/**
 * The benchmark's OTLP/gRPC receiver, run as its own process so its CPU is
 * not the agent's: accepts logs and traces and only counts records (the
 * agent's cost is what is measured, not a collector's). Prints
 * `sink listening PORT`, then `{"logs":N,"spans":N,"requests":N}` lines as
 * counts change, a last one on SIGTERM, and exits.
 *
 *   node dist/test/bench/sink.js [HOST:PORT]   (default 127.0.0.1:0)
 */
import * as grpc from '@grpc/grpc-js';
import { bytesExportService } from '../../src/receiver/server';
import { countOtlpRecords } from './lib/otlp-count';

const EMPTY = Buffer.alloc(0); // an empty Export*ServiceResponse

const counts = { logs: 0, spans: 0, requests: 0, bytes: 0, malformed: 0 };
let printed = '';

function report(): void {
  const line = JSON.stringify(counts);
  if (line === printed) return;
  printed = line;
  process.stdout.write(line + '\n');
}

function handler(kind: 'logs' | 'spans') {
  return (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
    counts.requests++;
    counts.bytes += call.request.length;
    try {
      counts[kind] += countOtlpRecords(call.request);
    } catch {
      counts.malformed++;
    }
    callback(null, EMPTY);
  };
}

function main(): void {
  const listen = process.argv[2] ?? '127.0.0.1:0';
  const server = new grpc.Server({ 'grpc.max_receive_message_length': 64 << 20 });
  server.addService(bytesExportService('/opentelemetry.proto.collector.logs.v1.LogsService/Export'), { Export: handler('logs') });
  server.addService(bytesExportService('/opentelemetry.proto.collector.trace.v1.TraceService/Export'), { Export: handler('spans') });
  server.bindAsync(listen, grpc.ServerCredentials.createInsecure(), (err, port) => {
    if (err) {
      process.stderr.write(`sink: cannot listen on ${listen}: ${err.message}\n`);
      process.exit(2);
    }
    process.stdout.write(`sink listening ${port}\n`);
    setInterval(report, 250);
  });
  const stop = () => {
    report();
    process.stdout.write(JSON.stringify(counts) + '\n');
    server.forceShutdown();
    process.exit(0);
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

main();
