import { CompressionAlgorithm } from '@opentelemetry/otlp-exporter-base';
import { UsageError } from '../common/errors';

export type OtlpProtocol = 'grpc' | 'http/protobuf';
export const OTLP_PROTOCOLS: readonly OtlpProtocol[] = ['grpc', 'http/protobuf'];

export type OtlpCompression = 'gzip' | 'none';
export const OTLP_COMPRESSIONS: readonly OtlpCompression[] = ['gzip', 'none'];

/**
 * Without a flag or OTEL_EXPORTER_OTLP_[SIGNAL_]COMPRESSION, requests are
 * gzipped, as the OpenTelemetry Collector's own OTLP exporter does: header
 * records shrink about tenfold, and a large request then needs a tenth of
 * the HTTP/2 flow-control round trips (at 20 000 requests/s on this
 * project's VM, uncompressed export fell behind at 10 000 records/s, gzip
 * kept up at 26 000; docs/performance.md).
 */
export const DEFAULT_COMPRESSION: OtlpCompression = 'gzip';

export interface ExportTarget {
  protocol: OtlpProtocol;
  /** The URL handed to the exporter (for HTTP, with /v1/logs or /v1/traces). */
  url: string;
  /** Request compression; absent: the exporter's own default. */
  compression?: OtlpCompression;
  /** One export attempt's timeout, ms (--export-timeout, OTEL_EXPORTER_OTLP_[SIGNAL_]TIMEOUT); absent: the exporter's default, 10 s. */
  timeoutMs?: number;
}

/** The OTLP signals headertap exports: log records, spans with --emit-spans, its own metrics. */
export type OtlpSignal = 'logs' | 'traces' | 'metrics';

type Env = Record<string, string | undefined>;

function nonBlank(v: string | undefined): string | undefined {
  const t = v?.trim();
  return t ? t : undefined;
}

export function parseCompression(value: string, source: string): OtlpCompression {
  if ((OTLP_COMPRESSIONS as readonly string[]).includes(value)) return value as OtlpCompression;
  throw new UsageError(`${source} '${value}' is not a supported compression; use gzip or none`);
}

export function parseProtocol(value: string, source: string): OtlpProtocol {
  if ((OTLP_PROTOCOLS as readonly string[]).includes(value)) return value as OtlpProtocol;
  const hint = value === 'http/json' ? ' (http/json is not supported)' : '';
  throw new UsageError(`${source} '${value}' is not a supported protocol${hint}; use grpc or http/protobuf`);
}

/** OTEL_EXPORTER_OTLP_[SIGNAL_]TIMEOUT: milliseconds, as the specification says. */
function parseTimeoutMs(value: string, source: string): number {
  const ms = Number(value);
  if (!/^\d+$/.test(value) || ms < 1 || ms > 3_600_000) {
    throw new UsageError(`${source} '${value}' is not a timeout; expected milliseconds from 1 to 3600000, e.g. 10000`);
  }
  return ms;
}

function checkUrl(value: string, source: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new UsageError(
      `${source} '${value}' is not a URL; use http://HOST:PORT (plaintext) or https://HOST:PORT (TLS), e.g. http://localhost:4317`,
    );
  }
  if (url.protocol !== 'http:' && url.protocol !== 'https:') {
    throw new UsageError(
      `${source} '${value}' has scheme '${url.protocol.replace(/:$/, '')}'; use http:// (plaintext) or https:// (TLS), e.g. http://${url.host || 'localhost:4317'}`,
    );
  }
  if (!url.hostname) throw new UsageError(`${source} '${value}' has no host; e.g. http://localhost:4317`);
  return url;
}

/** A base endpoint (OTEL_EXPORTER_OTLP_ENDPOINT meaning) to the signal's URL. */
function fromBase(base: string, protocol: OtlpProtocol, source: string, signal: OtlpSignal): string {
  const url = checkUrl(base, source);
  if (protocol === 'grpc') return base;
  url.pathname = url.pathname.replace(/\/+$/, '') + `/v1/${signal}`;
  return url.toString();
}

/**
 * Where and how to export a signal, as every OpenTelemetry SDK decides it:
 * the flag, else OTEL_EXPORTER_OTLP_LOGS_* (or _TRACES_*; a full URL), else
 * OTEL_EXPORTER_OTLP_* (a base URL), else the protocol's default port on
 * localhost. Compression the same way, defaulting to gzip (DEFAULT_COMPRESSION).
 */
export function resolveExportTarget(
  flags: { endpoint?: string; protocol?: string; compression?: string; timeoutMs?: number },
  env: Env = process.env,
  signal: OtlpSignal = 'logs',
): ExportTarget {
  const perSignal = `OTEL_EXPORTER_OTLP_${signal.toUpperCase()}`;
  /** The flag, else the signal's variable, else the general one, parsed; undefined when none is set. */
  const setting = <T>(flag: string | undefined, flagName: string, suffix: string, parse: (v: string, source: string) => T): T | undefined => {
    if (flag !== undefined) return parse(flag, flagName);
    const own = nonBlank(env[`${perSignal}_${suffix}`]);
    if (own) return parse(own, `${perSignal}_${suffix}`);
    const any = nonBlank(env[`OTEL_EXPORTER_OTLP_${suffix}`]);
    return any ? parse(any, `OTEL_EXPORTER_OTLP_${suffix}`) : undefined;
  };
  const protocol = setting(flags.protocol, '--protocol', 'PROTOCOL', parseProtocol) ?? 'grpc';
  const compression = setting(flags.compression, '--compression', 'COMPRESSION', parseCompression) ?? DEFAULT_COMPRESSION;
  const timeoutMs = flags.timeoutMs ?? setting(undefined, '--export-timeout', 'TIMEOUT', parseTimeoutMs);
  const at = (url: string): ExportTarget => ({ protocol, url, compression, ...(timeoutMs !== undefined ? { timeoutMs } : {}) });

  if (flags.endpoint !== undefined) return at(fromBase(flags.endpoint, protocol, '--endpoint', signal));
  const ownEndpoint = nonBlank(env[`${perSignal}_ENDPOINT`]);
  if (ownEndpoint) {
    checkUrl(ownEndpoint, `${perSignal}_ENDPOINT`);
    return at(ownEndpoint);
  }
  const endpoint = nonBlank(env.OTEL_EXPORTER_OTLP_ENDPOINT);
  if (endpoint) return at(fromBase(endpoint, protocol, 'OTEL_EXPORTER_OTLP_ENDPOINT', signal));
  return at(protocol === 'grpc' ? 'http://localhost:4317' : `http://localhost:4318/v1/${signal}`);
}

/** The SDK exporter options every OTLP exporter of headertap's shares: URL, compression, timeout. */
export function exporterConfig(target: ExportTarget, timeoutMillis = target.timeoutMs): { url: string; compression?: CompressionAlgorithm; timeoutMillis?: number } {
  return {
    url: target.url,
    ...(target.compression ? { compression: target.compression === 'gzip' ? CompressionAlgorithm.GZIP : CompressionAlgorithm.NONE } : {}),
    ...(timeoutMillis ? { timeoutMillis } : {}),
  };
}
