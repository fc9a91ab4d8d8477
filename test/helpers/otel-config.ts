/**
 * Reading otel-config/ for its tests: YAML documents, the collector's
 * `${env:NAME:-default}` values, Grafana's `$$` escapes, Loki's attribute
 * names, the Kubernetes manifests.
 */
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { PACKAGE_ROOT } from '../../src/common/paths';

export const OTEL_CONFIG = path.join(PACKAGE_ROOT, 'otel-config');

/** Every file under dir whose name matches, relative to dir, sorted. */
export function filesUnder(dir: string, match: RegExp): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const e of readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = path.join(rel, e.name);
      if (e.isDirectory()) {
        if (e.name !== 'node_modules') walk(r);
      } else if (match.test(e.name)) out.push(r);
    }
  };
  walk('');
  return out.sort();
}

/** All documents of a YAML file; throws with the file name and the first error. */
export function yamlDocs(file: string): unknown[] {
  const docs = parseAllDocuments(readFileSync(file, 'utf8'));
  const list = Array.isArray(docs) ? docs : [docs];
  return list.map((d) => {
    if (d.errors.length) throw new Error(`${file}: ${d.errors[0].message}`);
    return d.toJS() as unknown;
  });
}

export type Obj = Record<string, unknown>;

export function yamlDoc(file: string): Obj {
  const [doc] = yamlDocs(file);
  return doc as Obj;
}

/** The default of a collector `${env:NAME:-default}` value, or the value itself. */
export function envDefault(value: string): string {
  return value.replace(/\$\{env:[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}/g, '$1');
}

/** What Grafana provisioning makes of a string: `$$` is a literal `$`. */
export function grafanaUnescape(value: string): string {
  return value.replace(/\$\$/g, '$');
}

/**
 * The name Loki's OTLP endpoint gives an attribute (structured metadata or
 * label), as Loki 3.7.6 builds it (pkg/loghttp/push/otlp.go
 * attributeToLabels, with prometheus/otlptranslator v1.0.0
 * LabelNamer{}.Build): every run of characters other than ASCII letters and
 * digits ('_' included) becomes one '_', and a name that then starts with a
 * digit gets `key_` in front. (Names reserved as __x__ keep their
 * underscores; headertap has none.)
 */
export function lokiName(attribute: string): string {
  const name = attribute.replace(/[^A-Za-z0-9]+/g, '_');
  return /^[0-9]/.test(name) ? `key_${name}` : name;
}

/** The collector version the examples pin (docker-compose.yaml, kubernetes/otel-collector.yaml). */
export const COLLECTOR_VERSION = '0.159.0';

/**
 * Config keys of a component, as the collector at COLLECTOR_VERSION reads
 * them: a nested key's own schema, `true` for a value whose inside is not
 * checked (scalars, lists of scalars, free maps such as headers), or
 * `{ '[]': schema }` for a list of mappings.
 */
export type KeySchema = { [key: string]: KeySchema | true };

const keys = (...names: string[]): KeySchema => Object.fromEntries(names.map((n) => [n, true]));

// opentelemetry-collector v0.159.0: config/configtls (generated_config.go, ClientConfig and ServerConfig)
const TLS_CONFIG = keys('ca_file', 'ca_pem', 'cert_file', 'cert_pem', 'cipher_suites', 'curve_preferences', 'include_insecure_cipher_suites', 'include_system_ca_certs_pool', 'key_file', 'key_pem', 'max_version', 'min_version', 'reload_interval', 'tpm');
const TLS_CLIENT: KeySchema = { ...TLS_CONFIG, ...keys('insecure', 'insecure_skip_verify', 'server_name_override') };
const TLS_SERVER: KeySchema = { ...TLS_CONFIG, ...keys('client_ca_file', 'client_ca_file_reload') };
// exporter/exporterhelper/internal/queuebatch/config.go (Config, BatchConfig, PartitionConfig); README "Sending Queue"
const SENDING_QUEUE: KeySchema = {
  ...keys('enabled', 'wait_for_result', 'sizer', 'queue_size', 'block_on_overflow', 'storage', 'num_consumers'),
  batch: { ...keys('flush_timeout', 'sizer', 'min_size', 'max_size'), partition: keys('metadata_keys') },
};
// config/configretry/backoff.go; exporter/exporterhelper/internal/timeout_sender.go
const EXPORTER_HELPER: KeySchema = {
  timeout: true,
  sending_queue: SENDING_QUEUE,
  retry_on_failure: keys('enabled', 'initial_interval', 'max_interval', 'max_elapsed_time', 'multiplier'),
};
// config/confignet/confignet.go AddrConfig (squashed into servers)
const NET_ADDR = keys('endpoint', 'transport', 'dialer');
// config/configgrpc/configgrpc.go ServerConfig; config/confighttp/server.go ServerConfig
const GRPC_SERVER: KeySchema = { ...NET_ADDR, tls: TLS_SERVER, ...keys('max_recv_msg_size_mib', 'max_concurrent_streams', 'read_buffer_size', 'write_buffer_size', 'keepalive', 'auth', 'include_metadata', 'middlewares') };
const HTTP_SERVER: KeySchema = {
  ...NET_ADDR,
  tls: TLS_SERVER,
  cors: keys('allowed_origins', 'allowed_headers', 'exposed_headers', 'max_age'),
  ...keys('auth', 'max_request_body_size', 'include_metadata', 'response_headers', 'compression_algorithms', 'read_timeout', 'read_header_timeout', 'write_timeout', 'idle_timeout', 'middlewares', 'keep_alives_enabled'),
};

/** Component type → its keys, for every type the examples use. */
export const COLLECTOR_SCHEMA: Record<'receivers' | 'processors' | 'exporters' | 'extensions' | 'connectors', Record<string, KeySchema>> = {
  receivers: {
    // receiver/otlpreceiver/config.go
    otlp: { protocols: { grpc: GRPC_SERVER, http: { ...HTTP_SERVER, ...keys('traces_url_path', 'metrics_url_path', 'logs_url_path') } } },
  },
  processors: {
    // internal/memorylimiter/config.go
    memory_limiter: keys('check_interval', 'min_gc_interval_when_soft_limited', 'min_gc_interval_when_hard_limited', 'max_gc_interval_when_soft_limited', 'max_gc_interval_when_hard_limited', 'limit_mib', 'spike_limit_mib', 'limit_percentage', 'spike_limit_percentage'),
    // contrib processor/transformprocessor/config.schema.yaml
    transform: keys('error_mode', 'flatten_data', 'log_statements', 'metric_statements', 'trace_statements', 'profile_statements'),
    // contrib processor/k8sattributesprocessor/config.schema.yaml (type k8s_attributes since contrib v0.146.0), internal/k8sconfig
    k8s_attributes: {
      ...keys('auth_type', 'context', 'passthrough', 'wait_for_metadata', 'wait_for_metadata_timeout'),
      extract: keys('metadata', 'labels', 'annotations', 'otel_annotations', 'deployment_name_from_replicaset'),
      filter: keys('node', 'node_from_env_var', 'namespace', 'fields', 'labels'),
      pod_association: { '[]': { sources: { '[]': keys('from', 'name') } } },
      exclude: { pods: { '[]': keys('name') } },
    },
  },
  exporters: {
    // exporter/otlpexporter/config.go: configgrpc.ClientConfig squashed
    otlp_grpc: {
      ...EXPORTER_HELPER,
      tls: TLS_CLIENT,
      ...keys('endpoint', 'compression', 'keepalive', 'read_buffer_size', 'write_buffer_size', 'wait_for_ready', 'headers', 'user_agent', 'balancer_name', 'authority', 'auth', 'middlewares'),
    },
    // exporter/otlphttpexporter/config.go: confighttp.ClientConfig squashed (its own timeout)
    otlp_http: {
      ...EXPORTER_HELPER,
      tls: TLS_CLIENT,
      ...keys('endpoint', 'proxy_url', 'read_buffer_size', 'write_buffer_size', 'headers', 'auth', 'compression', 'compression_params', 'max_idle_conns', 'max_idle_conns_per_host', 'max_conns_per_host', 'idle_conn_timeout', 'disable_keep_alives', 'http2_read_idle_timeout', 'http2_ping_timeout', 'cookies', 'force_attempt_http2', 'middlewares'),
      ...keys('traces_endpoint', 'metrics_endpoint', 'logs_endpoint', 'profiles_endpoint', 'encoding'),
    },
    // exporter/debugexporter/config.go
    debug: { ...keys('verbosity', 'sampling_initial', 'sampling_thereafter', 'use_internal_logger', 'output_paths'), sending_queue: SENDING_QUEUE },
  },
  extensions: {
    // contrib internal/healthcheck/config.go: the legacy HTTP server squashed, plus the v2 sections
    health_check: { ...HTTP_SERVER, ...keys('path', 'response_body', 'check_collector_pipeline', 'use_v2', 'grpc', 'http', 'component_health') },
  },
  connectors: {},
};

/**
 * Old names the collector at COLLECTOR_VERSION still takes but warns about,
 * with what to write instead.
 */
export const DEPRECATED_COMPONENTS: Record<string, string> = {
  'processors/batch': 'batching in each exporter (sending_queue: batch:), as the collector deprecates the batch processor from v0.160.0',
  'exporters/otlp': 'otlp_grpc (renamed in v0.144.0)',
  'exporters/otlphttp': 'otlp_http (renamed in v0.144.0)',
  'processors/k8sattributes': 'k8s_attributes (renamed in contrib v0.146.0)',
};

/** Keys in `config` the schema does not have, as dotted paths. */
export function unknownKeys(config: unknown, schema: KeySchema, at: string): string[] {
  if (config === null || config === undefined) return [];
  if (Array.isArray(config)) {
    const item = schema['[]'];
    return item && item !== true ? config.flatMap((c, i) => unknownKeys(c, item, `${at}[${i}]`)) : [];
  }
  if (typeof config !== 'object') return [`${at} (expected a mapping)`];
  const out: string[] = [];
  for (const [k, v] of Object.entries(config)) {
    const sub = schema[k];
    if (sub === undefined) out.push(`${at}.${k}`);
    else if (sub !== true) out.push(...unknownKeys(v, sub, `${at}.${k}`));
  }
  return out;
}

/** Every value under `key` anywhere in a JSON-like tree, with its path. */
export function findKey(node: unknown, key: string, at = '$'): { path: string; value: unknown }[] {
  const out: { path: string; value: unknown }[] = [];
  if (Array.isArray(node)) node.forEach((v, i) => out.push(...findKey(v, key, `${at}[${i}]`)));
  else if (node && typeof node === 'object') {
    for (const [k, v] of Object.entries(node)) {
      if (k === key) out.push({ path: `${at}.${k}`, value: v });
      out.push(...findKey(v, key, `${at}.${k}`));
    }
  }
  return out;
}
