import { createServer, type IncomingMessage, type Server as HttpServer, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { gunzipSync } from 'node:zlib';
import * as grpc from '@grpc/grpc-js';
import { UsageError } from '../common/errors';
import type { FlatRecord } from '../common/flat-record';
import { decodeLogsRequest, decodeMetricsRequest, EMPTY_RESPONSE, type MetricPoint } from './decode';

/** One export request as it arrived. */
export interface ReceivedBatch {
  transport: 'grpc' | 'http';
  records: FlatRecord[];
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
  onBatch(batch: ReceivedBatch): void;
  /**
   * An OTLP metrics export (e.g. headertap's own counters): its sum and gauge
   * points. Without this the metrics service still answers, and drops them.
   */
  onMetrics?(points: MetricPoint[], transport: 'grpc' | 'http'): void;
  /** A request that could not be decoded (answered INVALID_ARGUMENT / 400). */
  onError?(message: string): void;
}

export interface BoundAddresses {
  grpc?: string;
  http?: string;
}

const LOGS_EXPORT_PATH = '/opentelemetry.proto.collector.logs.v1.LogsService/Export';
const METRICS_EXPORT_PATH = '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export';
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

function hostPort(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`;
}

/**
 * The embedded OTLP logs receiver: a real gRPC server (@grpc/grpc-js) and an
 * OTLP/HTTP endpoint, decoding with the OTLP protos. What a collector would
 * get, without installing one.
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

  /** Decodes a request, or reports it malformed and returns why. */
  private _tryDecode<T>(raw: Buffer, signal: 'logs' | 'metrics', decode: (b: Buffer) => T): T | string {
    try {
      return decode(raw);
    } catch (err) {
      const msg = `malformed OTLP ${signal} request (${raw.length} bytes): ${(err as Error).message}`;
      this._opts.onError?.(msg);
      return msg;
    }
  }

  private _decode(raw: Buffer): FlatRecord[] | string {
    return this._tryDecode(raw, 'logs', decodeLogsRequest);
  }

  private _decodeMetrics(raw: Buffer): MetricPoint[] | string {
    return this._tryDecode(raw, 'metrics', decodeMetricsRequest);
  }

  private _startGrpc(listen: string): Promise<string> {
    const { host, port } = parseListen(listen, '--listen');
    const unary = bytesExportService;
    const server = new grpc.Server();
    server.addService(unary(METRICS_EXPORT_PATH), {
      Export: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        const points = this._decodeMetrics(call.request);
        if (typeof points === 'string') {
          callback({ code: grpc.status.INVALID_ARGUMENT, details: points });
          return;
        }
        this._opts.onMetrics?.(points, 'grpc');
        callback(null, EMPTY_RESPONSE);
      },
    });
    server.addService(unary(LOGS_EXPORT_PATH), {
      Export: (call: grpc.ServerUnaryCall<Buffer, Buffer>, callback: grpc.sendUnaryData<Buffer>) => {
        const records = this._decode(call.request);
        if (typeof records === 'string') {
          callback({ code: grpc.status.INVALID_ARGUMENT, details: records });
          return;
        }
        const metadata: Record<string, string> = {};
        for (const [k, v] of Object.entries(call.metadata.getMap())) metadata[k] = String(v);
        this._opts.onBatch({ transport: 'grpc', records, raw: call.request, metadata });
        callback(null, EMPTY_RESPONSE);
      },
    });
    this._grpc = server;
    return new Promise((resolve, reject) => {
      server.bindAsync(hostPort(host, port), grpc.ServerCredentials.createInsecure(), (err, boundPort) => {
        if (err) reject(new UsageError(`cannot listen for OTLP/gRPC on ${listen}: ${err.message}`));
        else resolve(hostPort(host, boundPort));
      });
    });
  }

  private _startHttp(listen: string): Promise<string> {
    const { host, port } = parseListen(listen, '--http-listen');
    const server = createServer((req, res) => this._onHttp(req, res));
    this._http = server;
    return new Promise((resolve, reject) => {
      server.once('error', (err) => reject(new UsageError(`cannot listen for OTLP/HTTP on ${listen}: ${err.message}`)));
      server.listen(port, host, () => resolve(hostPort(host, (server.address() as AddressInfo).port)));
    });
  }

  private _onHttp(req: IncomingMessage, res: ServerResponse): void {
    const reply = (status: number, text?: string) => {
      res.writeHead(status, { 'content-type': text ? 'text/plain' : 'application/x-protobuf' });
      res.end(text ?? EMPTY_RESPONSE);
    };
    const urlPath = (req.url ?? '').split('?')[0];
    if (req.method !== 'POST' || (urlPath !== '/v1/logs' && urlPath !== '/v1/metrics')) {
      return reply(404, 'only POST /v1/logs and /v1/metrics\n');
    }
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
      if (urlPath === '/v1/metrics') {
        const points = this._decodeMetrics(raw);
        if (typeof points === 'string') return reply(400, points + '\n');
        this._opts.onMetrics?.(points, 'http');
        return reply(200);
      }
      const records = this._decode(raw);
      if (typeof records === 'string') return reply(400, records + '\n');
      const metadata: Record<string, string> = {};
      for (const [k, v] of Object.entries(req.headers)) if (v !== undefined) metadata[k] = String(v);
      this._opts.onBatch({ transport: 'http', records, raw, metadata });
      reply(200);
    });
  }
}
