import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import { UsageError } from '../common/errors';
import type { FlatRecord } from '../common/flat-record';
import type { FlatSpan } from '../common/flat-span';
import { decodeLogsRequest, decodeMetricsRequest, decodeTracesRequest, EMPTY_RESPONSE, type MetricPoint } from './decode';

/** The OTLP services the receiver implements. */
export type Signal = 'logs' | 'traces' | 'metrics';

/** One export request as it arrived. */
export interface ReceivedBatch {
  transport: 'grpc' | 'http';
  signal: Signal;
  /** Log records (empty for a traces request). */
  records: FlatRecord[];
  /** Spans (empty for a logs request). */
  spans: FlatSpan[];
  /** Sum, gauge and histogram points of a metrics request (those go to onMetrics, not onBatch). */
  points: MetricPoint[];
  /** The request's protobuf bytes, exactly as received (after decompression). */
  raw: Buffer;
  /** gRPC metadata or HTTP headers. */
  metadata: Record<string, string>;
}

export interface ReceiverOptions {
  /** HOST:PORT for OTLP/gRPC; port 0 picks a free one. */
  grpcListen?: string;
  /** HOST:PORT for OTLP/HTTP (protobuf); port 0 picks a free one. */
  httpListen?: string;
  /** A logs or traces request. */
  onBatch(batch: ReceivedBatch): void;
  /**
   * An OTLP metrics export (headertap's own counters, request metrics): its
   * sum, gauge and histogram points. Without this the metrics service still
   * answers, and drops them.
   */
  onMetrics?(points: MetricPoint[], transport: ReceivedBatch['transport']): void;
  /** A request that could not be decoded (answered INVALID_ARGUMENT / 400). */
  onError?(message: string): void;
}

export interface BoundAddresses {
  grpc?: string;
  http?: string;
}

/** Per signal: the gRPC method path and the OTLP/HTTP path. */
const SIGNALS: Record<Signal, { grpcPath: string; httpPath: string }> = {
  logs: { grpcPath: '/opentelemetry.proto.collector.logs.v1.LogsService/Export', httpPath: '/v1/logs' },
  traces: { grpcPath: '/opentelemetry.proto.collector.trace.v1.TraceService/Export', httpPath: '/v1/traces' },
  metrics: { grpcPath: '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export', httpPath: '/v1/metrics' },
};
const MAX_HTTP_BODY = 64 << 20;

/** HOST:PORT (IPv6 in brackets) to parts; throws UsageError naming the flag. */
export function parseListen(value: string, flag: string): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]]+):(\d{1,5})$/.exec(value);
  const port = m ? Number(m[2]) : NaN;
  if (!m || port > 65535) {
    throw new UsageError(`${flag} '${value}' is not HOST:PORT; e.g. 127.0.0.1:4317 or [::1]:4317`);
  }
  return { host: m[1].replace(/^\[|\]$/g, ''), port };
}

/** Lets calls in flight finish, but never waits on a client that keeps its connection open. */
function shutdownGrpc(server: grpc.Server, graceMs = 2000): Promise<void> {
  return new Promise((resolve) => {
    const timer = setTimeout(() => {
      server.forceShutdown();
      resolve();
    }, graceMs);
    timer.unref();
    server.tryShutdown(() => {
      clearTimeout(timer);
      resolve();
    });
  });
}

/** A unary `Export` method at `path` whose requests and responses stay raw protobuf bytes. */
export function bytesExportService(path: string): grpc.ServiceDefinition {
  const identity = (b: Buffer) => b;
  return {
    Export: {
      path,
      requestStream: false,
      responseStream: false,
      requestSerialize: identity,
      requestDeserialize: identity,
      responseSerialize: identity,
      responseDeserialize: identity,
      originalName: 'export',
    },
  };
}

/**
 * Why a listen failed, in words with the fix. grpc-js wraps the socket error
 * ("No address added out of total 1 resolved errors: [listen EADDRINUSE: …]").
 */
function listenProblem(message: string): string {
  if (message.includes('EADDRINUSE')) return 'the address is already in use (another receiver or collector?); stop it or choose another port';
  if (message.includes('EACCES')) return 'permission denied (ports below 1024 need root); choose a port above 1023';
  if (message.includes('EADDRNOTAVAIL')) return 'no such local address; use 127.0.0.1, [::1] or an address of this host';
  return message;
}

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * The embedded OTLP receiver: a real gRPC server (@grpc/grpc-js) and an
 * OTLP/HTTP endpoint for the logs and trace services, decoding with the OTLP
 * protos. What a collector would get, without installing one.
 */
export class OtlpReceiver {
  private _grpc?: grpc.Server;
  private _http?: HttpServer;

  constructor(private readonly _opts: ReceiverOptions) {}

  async start(): Promise<BoundAddresses> {
    const bound: BoundAddresses = {};
    if (this._opts.grpcListen) bound.grpc = await this._startGrpc(this._opts.grpcListen);
    if (this._opts.httpListen) bound.http = await this._startHttp(this._opts.httpListen);
    return bound;
  }

  async stop(): Promise<void> {
    const grpcServer = this._grpc;
    const httpServer = this._http;
    await Promise.all([
      grpcServer ? shutdownGrpc(grpcServer) : undefined,
      httpServer ? new Promise<void>((resolve) => httpServer.close(() => resolve())) : undefined,
    ]);
  }

  /** The batch, or why the bytes are not a request of that signal. */
  private _decode(signal: Signal, raw: Buffer, transport: ReceivedBatch['transport'], metadata: Record<string, string>): ReceivedBatch | string {
    try {
      const records = signal === 'logs' ? decodeLogsRequest(raw) : [];
      const spans = signal === 'traces' ? decodeTracesRequest(raw) : [];
      const points = signal === 'metrics' ? decodeMetricsRequest(raw) : [];
      return { transport, signal, records, spans, points, raw, metadata };
    } catch (err) {
      const msg = `malformed OTLP ${signal} request (${raw.length} bytes): ${(err as Error).message}`;
      this._opts.onError?.(msg);
      return msg;
    }
  }

  private _deliver(batch: ReceivedBatch): void {
    if (batch.signal === 'metrics') this._opts.onMetrics?.(batch.points, batch.transport);
    else this._opts.onBatch(batch);
  }

  private _startGrpc(listen: string): Promise<string> {
    const { host, port } = parseListen(listen, '--listen');
    const server = new grpc.Server();
    for (const signal of Object.keys(SIGNALS) as Signal[]) {
      server.addService(bytesExportService(SIGNALS[signal].grpcPath), {
        Export: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
          const metadata: Record<string, string> = {};
          for (const [k, v] of Object.entries(call.metadata.getMap())) metadata[k] = String(v);
          const batch = this._decode(signal, call.request, 'grpc', metadata);
          if (typeof batch === 'string') {
            callback({ code: grpc.status.INVALID_ARGUMENT, details: batch });
            return;
          }
          this._deliver(batch);
          callback(null, EMPTY_RESPONSE);
        },
      });
    }
    this._grpc = server;
    return new Promise((resolve, reject) => {
      server.bindAsync(hostPort(host, port), grpc.ServerCredentials.createInsecure(), (err, boundPort) => {
        if (err) reject(new UsageError(`cannot listen for OTLP/gRPC on ${listen}: ${listenProblem(err.message)}`));
        else resolve(hostPort(host, boundPort));
      });
    });
  }

  private _startHttp(listen: string): Promise<string> {
    const { host, port } = parseListen(listen, '--http-listen');
    const server = createServer((req, res) => this._onHttp(req, res));
    this._http = server;
    return new Promise((resolve, reject) => {
      server.once('error', (err) => reject(new UsageError(`cannot listen for OTLP/HTTP on ${listen}: ${listenProblem(err.message)}`)));
      server.listen(port, host, () => resolve(hostPort(host, (server.address() as AddressInfo).port)));
    });
  }

  private _onHttp(req: IncomingMessage, res: ServerResponse): void {
    const reply = (status: number, text?: string) => {
      res.writeHead(status, { 'content-type': text ? 'text/plain' : 'application/x-protobuf' });
      res.end(text ?? EMPTY_RESPONSE);
    };
    const urlPath = (req.url ?? '').split('?')[0];
    const signal = (Object.keys(SIGNALS) as Signal[]).find((s) => SIGNALS[s].httpPath === urlPath);
    if (req.method !== 'POST' || !signal) return reply(404, 'only POST /v1/logs, /v1/traces and /v1/metrics\n');
    if (!(req.headers['content-type'] ?? '').startsWith('application/x-protobuf')) {
      return reply(415, 'only application/x-protobuf\n');
    }
    const chunks: Buffer[] = [];
    let size = 0;
    req.on('data', (c: Buffer) => {
      size += c.length;
      if (size > MAX_HTTP_BODY) req.destroy();
      else chunks.push(c);
    });
    req.on('end', () => {
      let raw = Buffer.concat(chunks);
      try {
        if (req.headers['content-encoding'] === 'gzip') raw = gunzipSync(raw);
      } catch {
        return reply(400, 'bad gzip body\n');
      }
      const metadata: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) metadata[k] = String(v);
      const batch = this._decode(signal, raw, 'http', metadata);
      if (typeof batch === 'string') return reply(400, batch + '\n');
      this._deliver(batch);
      reply(200);
    });
  }
}
