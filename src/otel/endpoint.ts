import { UsageError } from '../common/errors';

export type OtlpProtocol = 'grpc' | 'http/protobuf';
export const OTLP_PROTOCOLS: readonly OtlpProtocol[] = ['grpc', 'http/protobuf'];

export interface ExportTarget {
  protocol: OtlpProtocol;
  /** The URL handed to the exporter (for HTTP, with /v1/logs or /v1/traces). */
  url: string;
}

/** The OTLP signals headertap exports: log records, spans with --emit-spans, its own metrics. */
export type OtlpSignal = 'logs' | 'traces' | 'metrics';

type Env = Record<string, string | undefined>;

function nonBlank(v: string | undefined): string | undefined {
  const t = v?.trim();
  return t ? t : undefined;
}

export function parseProtocol(value: string, source: string): OtlpProtocol {
  if ((OTLP_PROTOCOLS as readonly string[]).includes(value)) return value as OtlpProtocol;
  const hint = value === 'http/json' ? ' (http/json is not supported)' : '';
  throw new UsageError(`${source} '${value}' is not a supported protocol${hint}; use grpc or http/protobuf`);
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
 * localhost.
 */
export function resolveExportTarget(
  flags: { endpoint?: string; protocol?: string },
  env: Env = process.env,
  signal: OtlpSignal = 'logs',
): ExportTarget {
  const perSignal = `OTEL_EXPORTER_OTLP_${signal.toUpperCase()}`;
  let protocol: OtlpProtocol = 'grpc';
  if (flags.protocol !== undefined) protocol = parseProtocol(flags.protocol, '--protocol');
  else {
    const own = nonBlank(env[`${perSignal}_PROTOCOL`]);
    const any = nonBlank(env.OTEL_EXPORTER_OTLP_PROTOCOL);
    if (own) protocol = parseProtocol(own, `${perSignal}_PROTOCOL`);
    else if (any) protocol = parseProtocol(any, 'OTEL_EXPORTER_OTLP_PROTOCOL');
  }

  if (flags.endpoint !== undefined) return { protocol, url: fromBase(flags.endpoint, protocol, '--endpoint', signal) };
  const ownEndpoint = nonBlank(env[`${perSignal}_ENDPOINT`]);
  if (ownEndpoint) {
    checkUrl(ownEndpoint, `${perSignal}_ENDPOINT`);
    return { protocol, url: ownEndpoint };
  }
  const endpoint = nonBlank(env.OTEL_EXPORTER_OTLP_ENDPOINT);
  if (endpoint) return { protocol, url: fromBase(endpoint, protocol, 'OTEL_EXPORTER_OTLP_ENDPOINT', signal) };
  return protocol === 'grpc'
    ? { protocol, url: 'http://localhost:4317' }
    : { protocol, url: `http://localhost:4318/v1/${signal}` };
}
