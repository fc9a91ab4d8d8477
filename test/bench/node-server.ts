/**
 * The benchmark's Node target: an `http` server answering every request with
 * a small fixed body. With BENCH_OTEL_ENDPOINT set it first sets up
 * in-process header capture the way an instrumented service would:
 * @opentelemetry/instrumentation-http with headersToSpanAttributes, spans
 * batched to OTLP/gRPC at that endpoint.
 *
 *   node dist/test/bench/node-server.js PORT   prints `listening PORT`
 */
import type * as Http from 'node:http';

const BODY = Buffer.from('x'.repeat(612)); // the size of nginx's default index.html

async function setupOtel(endpoint: string): Promise<() => Promise<void>> {
  // Loaded only in this configuration, before node:http is required.
  const { NodeTracerProvider, BatchSpanProcessor } = await import('@opentelemetry/sdk-trace-node');
  const { OTLPTraceExporter } = await import('@opentelemetry/exporter-trace-otlp-grpc');
  const { HttpInstrumentation } = await import('@opentelemetry/instrumentation-http');
  const { registerInstrumentations } = await import('@opentelemetry/instrumentation');
  const provider = new NodeTracerProvider({
    spanProcessors: [
      new BatchSpanProcessor(new OTLPTraceExporter({ url: endpoint }), {
        maxQueueSize: 65536,
        maxExportBatchSize: 2048,
        scheduledDelayMillis: 200,
      }),
    ],
  });
  provider.register();
  registerInstrumentations({
    tracerProvider: provider,
    instrumentations: [
      new HttpInstrumentation({
        headersToSpanAttributes: {
          server: { requestHeaders: ['host', 'user-agent', 'accept', 'traceparent'], responseHeaders: ['content-type', 'content-length'] },
        },
      }),
    ],
  });
  return () => provider.shutdown();
}

async function main(): Promise<void> {
  const port = Number(process.argv[2] ?? 0);
  const endpoint = process.env.BENCH_OTEL_ENDPOINT;
  const shutdown = endpoint ? await setupOtel(endpoint) : async () => {};
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const http = require('node:http') as typeof Http;
  const server = http.createServer((req: Http.IncomingMessage, res: Http.ServerResponse) => {
    req.resume();
    res.writeHead(200, { 'content-type': 'text/html', 'content-length': BODY.length });
    res.end(BODY);
  });
  server.keepAliveTimeout = 60_000;
  server.listen(port, '127.0.0.1', () => {
    process.stdout.write(`listening ${(server.address() as { port: number }).port}\n`);
  });
  const stop = () => {
    server.close();
    void shutdown().finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 3000).unref();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}

void main();
