/**
 * What an observed process says about itself through the standard
 * OpenTelemetry environment variables, read from /proc/PID/environ (the
 * environment it was started with). Only OTEL_SERVICE_NAME and
 * OTEL_RESOURCE_ATTRIBUTES are looked at; no other variable is kept.
 */

/** Attribute keys and values longer than this are invalid (the OTel spec's limit, as in the JS SDK's EnvDetector). */
const MAX_ATTRIBUTE_LENGTH = 255;
/** More attributes than this from one process are not taken. */
export const MAX_ENV_ATTRIBUTES = 32;

export interface OtelEnv {
  /** OTEL_SERVICE_NAME, else service.name from OTEL_RESOURCE_ATTRIBUTES. */
  serviceName?: string;
  /** OTEL_RESOURCE_ATTRIBUTES, parsed (service.name included when set there). */
  resourceAttributes: Record<string, string>;
}

/**
 * OTEL_RESOURCE_ATTRIBUTES as the specification defines it:
 * `key1=value1,key2=value2`, ',' and '=' percent-encoded inside keys and
 * values. On any error the whole value is discarded, as SDKs do. (The JS
 * SDK's parser reads only its own process.env and is not exported.)
 */
export function parseResourceAttributes(raw: string): Record<string, string> {
  const out: Record<string, string> = {};
  let n = 0;
  for (const entry of raw.split(',')) {
    if (entry.trim() === '') continue;
    const kv = entry.split('=');
    if (kv.length !== 2) return {};
    let key: string;
    let value: string;
    try {
      key = decodeURIComponent(kv[0].trim());
      value = decodeURIComponent(kv[1].trim());
    } catch {
      return {};
    }
    if (key === '' || key.length > MAX_ATTRIBUTE_LENGTH || value.length > MAX_ATTRIBUTE_LENGTH) return {};
    if (!(key in out) && ++n > MAX_ENV_ATTRIBUTES) return {};
    out[key] = value;
  }
  return out;
}

/** The OTEL_* facts from the NUL-separated contents of /proc/PID/environ. */
export function otelEnvFromEnviron(environ: string): OtelEnv {
  let serviceName: string | undefined;
  let attrs: string | undefined;
  for (const entry of environ.split('\0')) {
    if (entry.startsWith('OTEL_SERVICE_NAME=')) serviceName = entry.slice('OTEL_SERVICE_NAME='.length);
    else if (entry.startsWith('OTEL_RESOURCE_ATTRIBUTES=')) attrs = entry.slice('OTEL_RESOURCE_ATTRIBUTES='.length);
  }
  return otelEnv(serviceName, attrs);
}

/** The same facts from a process.env (headertap's own resource). */
export function otelEnvFromProcessEnv(env: NodeJS.ProcessEnv): OtelEnv {
  return otelEnv(env.OTEL_SERVICE_NAME, env.OTEL_RESOURCE_ATTRIBUTES);
}

/** The same facts from the two raw values (the kernel's copy, src/source ProcEvent). */
export function otelEnv(rawServiceName: string | undefined, rawAttrs: string | undefined): OtelEnv {
  const resourceAttributes = rawAttrs ? parseResourceAttributes(rawAttrs) : {};
  let serviceName = rawServiceName?.trim();
  if (serviceName && serviceName.length > MAX_ATTRIBUTE_LENGTH) serviceName = undefined;
  const fromAttrs = resourceAttributes['service.name']?.trim();
  const name = serviceName || fromAttrs || undefined;
  return name ? { serviceName: name, resourceAttributes } : { resourceAttributes };
}
