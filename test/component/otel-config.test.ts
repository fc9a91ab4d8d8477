/**
 * otel-config/, checked without Docker: every file parses; collector
 * pipelines reference only defined components and use every one; Grafana
 * links and dashboard queries name provisioned data sources and attribute
 * names headertap really produces; Kubernetes manifests pass the Kubernetes
 * OpenAPI schema (kubernetes-models) and TypeScript's unknown-field check;
 * the compose file's images are pinned and its files exist; the systemd unit
 * passes systemd-analyze; the headertap YAML is what `run --config` accepts.
 *
 * Not covered: running the collector, Loki, Tempo, Jaeger or Grafana (no
 * packages for them here): their own config validation.
 */
import assert from 'node:assert/strict';
import { existsSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import * as ts from 'typescript';
import { ConfigMap } from 'kubernetes-models/v1/ConfigMap';
import { Namespace } from 'kubernetes-models/v1/Namespace';
import { ServiceAccount } from 'kubernetes-models/v1/ServiceAccount';
import { DaemonSet } from 'kubernetes-models/apps/v1/DaemonSet';
import { Deployment } from 'kubernetes-models/apps/v1/Deployment';
import { Service } from 'kubernetes-models/v1/Service';
import { ClusterRole } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole';
import { ClusterRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding';
import { parse as parseYaml } from 'yaml';
import { resolveAgentIdentity } from '../../src/cli/identity';
import { RUN_OPTIONS, resolveRunOptions } from '../../src/cli/options';
import { PACKAGE_ROOT } from '../../src/common/paths';
import { DEFAULT_CAPTURE_HEADERS, DEFAULT_REDACT_HEADERS, ExchangeMapper, HeaderRules } from '../../src/otel';
import { attributesObject } from '../../src/otel/record';
import { ExportResultCode } from '@opentelemetry/core';
import type { PushMetricExporter, ResourceMetrics } from '@opentelemetry/sdk-metrics';
import type { HttpExchange } from '../../src/http';
import type { ExportTarget } from '../../src/otel/endpoint';
import { MetricHeaders } from '../../src/otel/metric-headers';
import { RequestMetrics } from '../../src/otel/request-metrics';
import { Routes } from '../../src/otel/routes';
import { silentLog } from '../helpers/log';
import { workloadAttributes } from '../../src/otel/workloads';
import { requireCommand, run } from '../helpers/integration';
import {
  COLLECTOR_SCHEMA,
  COLLECTOR_VERSION,
  DEPRECATED_COMPONENTS,
  envDefault,
  filesUnder,
  findKey,
  grafanaUnescape,
  lokiName,
  OTEL_CONFIG,
  unknownKeys,
  yamlDoc,
  yamlDocs,
  type Obj,
} from '../helpers/otel-config';

const at = (...p: string[]) => path.join(OTEL_CONFIG, ...p);
const obj = (v: unknown): Obj => (v && typeof v === 'object' && !Array.isArray(v) ? (v as Obj) : {});
const list = (v: unknown): unknown[] => (Array.isArray(v) ? v : []);

/** The attribute names of a real record (request with a traceparent and a response). */
/** A real record: what the mapper makes of an exchange. */
function sampleRecord() {
  const mapper = new ExchangeMapper({
    rules: new HeaderRules({ capture: DEFAULT_CAPTURE_HEADERS, redact: DEFAULT_REDACT_HEADERS }),
    toHrTime: (ns) => [1_700_000_000, ns],
    processInfo: (pid) => ({ pid, executableName: 'curl' }),
  });
  const rec = mapper.map({
    role: 'server',
    connection: { pid: 1, comm: 'node', networkType: 'ipv4', local: { address: '127.0.0.1', port: 80 }, remote: { address: '127.0.0.1', port: 5000 }, tls: false },
    request: {
      kind: 'request',
      method: 'GET',
      target: '/x?y=1',
      version: '1.1',
      headers: ['host', 'a', 'user-agent', 'curl', 'traceparent', '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'],
      headBytes: 10,
      startNs: 1,
      endNs: 2,
    },
    response: { kind: 'response', status: 200, reason: 'OK', version: '1.1', headers: ['content-type', 'text/plain'], headBytes: 10, startNs: 3, endNs: 4 },
  });
  return rec;
}

/** The attributes of a record (log.attributes in a collector). */
function recordAttributeNames(): string[] {
  return Object.keys(attributesObject(sampleRecord().attributes));
}

/** Status class attribute the collector config adds (transform/status_class). */
const STATUS_CLASS = 'headertap.status_class';

describe('otel-config: every YAML and JSON file parses', () => {
  it('parses all of them, all documents of each', () => {
    const files = filesUnder(OTEL_CONFIG, /\.(ya?ml|json)$/);
    assert.ok(files.length >= 10, `found ${files.join(', ')}`);
    for (const f of files) {
      const file = at(f);
      if (f.endsWith('.json')) assert.doesNotThrow(() => JSON.parse(readFileSync(file, 'utf8')), f);
      else assert.ok(yamlDocs(file).every((d) => d !== null && typeof d === 'object'), `${f}: every document is a mapping`);
    }
  });
});

const KINDS = ['receivers', 'processors', 'exporters'] as const;
const COMPONENT_KINDS = ['receivers', 'processors', 'exporters', 'extensions', 'connectors'] as const;

/**
 * A collector config as the collector at COLLECTOR_VERSION would take it:
 * known component types with known keys (COLLECTOR_SCHEMA), no deprecated
 * names, pipelines that use only defined components and every defined one,
 * memory_limiter first, and batching in every exporter that sends over the
 * network (sending_queue.batch, valid as the collector validates it).
 */
function checkCollector(cfg: Obj, name: string): Obj {
  const defined = (kind: string) => Object.keys(obj(cfg[kind]));
  for (const kind of COMPONENT_KINDS) {
    for (const id of defined(kind)) {
      const type = id.split('/')[0];
      const deprecated = DEPRECATED_COMPONENTS[`${kind}/${type}`];
      assert.ok(!deprecated, `${name}: ${kind}.${id} is deprecated in collector ${COLLECTOR_VERSION}; use ${deprecated}`);
      const schema = COLLECTOR_SCHEMA[kind][type];
      assert.ok(schema, `${name}: ${kind}.${id} is not a known ${kind} type`);
      assert.deepEqual(unknownKeys(obj(cfg[kind])[id], schema, `${kind}.${id}`), [], `${name}: keys collector ${COLLECTOR_VERSION} does not have`);
    }
  }
  for (const key of Object.keys(cfg)) assert.ok(key === 'service' || (COMPONENT_KINDS as readonly string[]).includes(key), `${name}: unknown top-level key ${key}`);
  const service = obj(cfg.service);
  const pipelines = obj(service.pipelines);
  assert.ok(Object.keys(pipelines).length > 0, `${name}: has pipelines`);
  const used = new Set<string>();
  for (const [pname, p] of Object.entries(pipelines)) {
    assert.match(pname, /^(logs|traces|metrics)(\/.+)?$/, `${name}: pipeline ${pname} names a signal`);
    const pipe = obj(p);
    for (const key of Object.keys(pipe)) assert.ok((KINDS as readonly string[]).includes(key), `${name}: pipeline ${pname} has unknown key ${key}`);
    assert.ok(list(pipe.receivers).length > 0, `${name}: ${pname} has receivers`);
    assert.ok(list(pipe.exporters).length > 0, `${name}: ${pname} has exporters`);
    for (const kind of KINDS) {
      for (const id of list(pipe[kind]) as string[]) {
        assert.ok(defined(kind).includes(id), `${name}: pipeline ${pname} uses ${kind} ${id}, which is not defined`);
        used.add(`${kind}:${id}`);
      }
    }
    const procs = list(pipe.processors) as string[];
    if (procs.includes('memory_limiter')) assert.equal(procs[0], 'memory_limiter', `${name}: ${pname}: memory_limiter comes first`);
  }
  for (const id of list(service.extensions) as string[]) {
    assert.ok(defined('extensions').includes(id), `${name}: service uses extension ${id}, which is not defined`);
    used.add(`extensions:${id}`);
  }
  for (const kind of [...KINDS, 'extensions']) {
    for (const id of defined(kind)) assert.ok(used.has(`${kind}:${id}`), `${name}: ${kind}.${id} is defined but used by no pipeline`);
  }
  const limiter = obj(obj(cfg.processors).memory_limiter);
  assert.ok(limiter.check_interval && (limiter.limit_percentage || limiter.limit_mib), `${name}: memory_limiter has check_interval and a limit`);
  for (const [id, e] of Object.entries(obj(cfg.exporters))) {
    if (!/^otlp_(grpc|http)(\/|$)/.test(id)) continue;
    const queue = obj(obj(e).sending_queue);
    const batch = obj(queue.batch);
    assert.ok(queue.batch && batch.flush_timeout && Number(batch.min_size) > 0, `${name}: exporters.${id} batches (sending_queue.batch with flush_timeout and min_size)`);
    // The collector's own checks (queuebatch.Config.Validate): batch sizes in items or bytes, the queue able to hold a batch.
    const queueSizer = String(queue.sizer ?? 'requests');
    const batchSizer = String(batch.sizer ?? (queue.sizer ? queueSizer : 'items'));
    assert.ok(['items', 'bytes'].includes(batchSizer), `${name}: exporters.${id}: batch sizer ${batchSizer}`);
    if (batchSizer === queueSizer) assert.ok(Number(batch.min_size) <= Number(queue.queue_size ?? 1000), `${name}: exporters.${id}: min_size <= queue_size`);
    if (batch.max_size !== undefined && Number(batch.max_size) !== 0) assert.ok(Number(batch.max_size) >= Number(batch.min_size), `${name}: exporters.${id}: max_size >= min_size`);
  }
  return cfg;
}

function checkCollectorFile(file: string): Obj {
  return checkCollector(yamlDoc(file), path.basename(file));
}

describe('otel-config: collector configs', () => {
  it('otelcol-config.yaml: logs to Loki\'s OTLP endpoint, traces to Tempo and Jaeger, everything defined and used', () => {
    const cfg = checkCollectorFile(at('collector', 'otelcol-config.yaml'));
    // opentelemetry-collector CHANGELOG: the otlp/otlphttp exporters became otlp_grpc/otlp_http in v0.144.0.
    const renamed = /since (v[\d.]+) the OTLP exporters are `otlp_grpc` and\s+# `otlp_http`/.exec(readFileSync(at('collector', 'otelcol-config.yaml'), 'utf8'));
    assert.equal(renamed?.[1], 'v0.144.0', 'the comment dates the rename right');
    const exporters = obj(cfg.exporters);
    const pipelines = obj(obj(cfg.service).pipelines);
    const grpc = obj(obj(obj(cfg.receivers).otlp).protocols);
    assert.equal(obj(grpc.grpc).endpoint, '0.0.0.0:4317');
    assert.equal(obj(grpc.http).endpoint, '0.0.0.0:4318');

    const logsOut = list(obj(pipelines.logs).exporters) as string[];
    assert.deepEqual(logsOut, ['otlp_http/loki']);
    assert.match(envDefault(String(obj(exporters['otlp_http/loki']).endpoint)), /^http:\/\/loki:3100\/otlp$/, 'Loki base URL + /otlp');
    const tracesOut = list(obj(pipelines.traces).exporters) as string[];
    assert.deepEqual(tracesOut.sort(), ['otlp_grpc/jaeger', 'otlp_grpc/tempo']);
    // Request metrics (and headertap's own counters) to Prometheus's OTLP endpoint.
    assert.deepEqual(list(obj(pipelines.metrics).exporters), ['otlp_http/prometheus']);
    assert.equal(envDefault(String(obj(exporters['otlp_http/prometheus']).endpoint)), 'http://prometheus:9090/api/v1/otlp', 'the exporter appends /v1/metrics');
    assert.equal(envDefault(String(obj(exporters['otlp_grpc/tempo']).endpoint)), 'tempo:4317');
    assert.equal(envDefault(String(obj(exporters['otlp_grpc/jaeger']).endpoint)), 'jaeger:4317');

    // The status class statements read attributes headertap really sets.
    const statements = list(obj(obj(cfg.processors)['transform/status_class']).log_statements) as string[];
    const names = new Set(recordAttributeNames());
    for (const s of statements) {
      for (const m of s.matchAll(/log\.attributes\["([^"]+)"\]/g)) {
        assert.ok(m[1] === STATUS_CLASS || names.has(m[1]), `transform reads ${m[1]}, which headertap records do not have`);
      }
    }
    assert.deepEqual(
      statements.map((s) => /"(\dxx|none)"\)/.exec(s)?.[1]),
      ['none', '1xx', '2xx', '3xx', '4xx', '5xx'],
    );
  });

  it('otelcol-debug.yaml: the same input, printed by the debug exporter', () => {
    const cfg = checkCollectorFile(at('collector', 'otelcol-debug.yaml'));
    assert.equal(obj(obj(cfg.exporters).debug).verbosity, 'detailed');
    const pipelines = obj(obj(cfg.service).pipelines);
    assert.deepEqual(Object.keys(pipelines).sort(), ['logs', 'traces']);
    for (const p of Object.values(pipelines)) assert.deepEqual(obj(p).exporters, ['debug']);
  });

  it('the checks catch a pipeline referencing an undefined component and a defined-but-unused one', () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'ht-otelcol-'));
    const base = readFileSync(at('collector', 'otelcol-debug.yaml'), 'utf8');
    const undefinedRef = path.join(dir, 'a.yaml');
    writeFileSync(undefinedRef, base.replace('exporters: [debug]', 'exporters: [debug, otlp_http/nowhere]'));
    assert.throws(() => checkCollectorFile(undefinedRef), /uses exporters otlp_http\/nowhere, which is not defined/);
    const unused = path.join(dir, 'b.yaml');
    writeFileSync(unused, base.replace('exporters:\n', 'exporters:\n  debug/spare:\n    verbosity: basic\n'));
    assert.throws(() => checkCollectorFile(unused), /exporters\.debug\/spare is defined but used by no pipeline/);
  });

  it(`the checks catch what collector ${COLLECTOR_VERSION} deprecates or does not know, and exporters without batching`, () => {
    const cfg = () => structuredClone(yamlDoc(at('collector', 'otelcol-config.yaml')));
    const withBatchProcessor = cfg();
    obj(withBatchProcessor.processors).batch = { send_batch_size: 8192, timeout: '1s' };
    (obj(obj(obj(withBatchProcessor.service).pipelines).logs).processors as string[]).push('batch');
    assert.throws(() => checkCollector(withBatchProcessor, 'x'), /processors\.batch is deprecated in collector 0\.159\.0; use batching in each exporter/);
    for (const [oldName, now] of [['otlphttp/loki', 'otlp_http'], ['otlp/tempo', 'otlp_grpc']]) {
      const old = cfg();
      const exporters = obj(old.exporters);
      const current = `${now}/${oldName.split('/')[1]}`;
      exporters[oldName] = exporters[current];
      delete exporters[current];
      for (const p of Object.values(obj(obj(old.service).pipelines))) obj(p).exporters = (list(obj(p).exporters) as string[]).map((e) => (e === current ? oldName : e));
      assert.throws(() => checkCollector(old, 'x'), new RegExp(`exporters\\.${oldName.replace('/', '\\/')} is deprecated .*use ${now} \\(renamed in v0\\.144\\.0\\)`));
    }
    const batchProcessorKeys = cfg();
    obj(obj(obj(batchProcessorKeys.exporters)['otlp_http/loki']).sending_queue).batch = { timeout: '1s', send_batch_size: 8192 };
    assert.throws(() => checkCollector(batchProcessorKeys, 'x'), /exporters\.otlp_http\/loki\.sending_queue\.batch\.timeout/);
    const unbatched = cfg();
    delete obj(obj(unbatched.exporters)['otlp_grpc/tempo']).sending_queue;
    assert.throws(() => checkCollector(unbatched, 'x'), /exporters\.otlp_grpc\/tempo batches/);
    const tooSmallQueue = cfg();
    obj(obj(obj(tooSmallQueue.exporters)['otlp_grpc/jaeger']).sending_queue).queue_size = 100;
    assert.throws(() => checkCollector(tooSmallQueue, 'x'), /otlp_grpc\/jaeger: min_size <= queue_size/);
  });

  it('Loki indexes only low-cardinality headertap attributes, never header values', () => {
    const loki = yamlDoc(at('loki', 'loki-config.yaml'));
    const limits = obj(loki.limits_config);
    assert.equal(limits.allow_structured_metadata, true);
    const promoted = list(obj(limits.otlp_config).log_attributes)
      .filter((a) => obj(a).action === 'index_label')
      .flatMap((a) => list(obj(a).attributes) as string[]);
    assert.deepEqual(promoted.sort(), ['headertap.role', STATUS_CLASS, 'http.request.method'].sort());
    const names = new Set([...recordAttributeNames(), STATUS_CLASS]);
    for (const a of promoted) {
      assert.ok(names.has(a), `${a} is an attribute headertap records carry`);
      assert.ok(!/header\.|url\.|address|port|id$/.test(a), `${a} is low-cardinality`);
    }
    for (const a of list(obj(limits.otlp_config).log_attributes)) assert.equal(obj(a).regex, undefined, 'no regex that could catch header attributes');
  });
});

interface Datasource {
  name: string;
  type: string;
  uid: string;
  url: string;
  jsonData?: Obj;
}

function datasources(): Datasource[] {
  return list(yamlDoc(at('grafana', 'provisioning', 'datasources', 'datasources.yaml')).datasources) as Datasource[];
}

/** Label names a LogQL query uses: selectors, filters, by (...), unwrap, legends. */
function logqlLabels(expr: string): string[] {
  const names: string[] = [];
  for (const m of expr.matchAll(/\{([^{}]*)\}/g)) for (const n of m[1].matchAll(/([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)/g)) names.push(n[1]);
  for (const m of expr.matchAll(/\|\s*([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=|>|<)/g)) names.push(m[1]);
  for (const m of expr.matchAll(/\bby\s*\(([^)]*)\)/g)) names.push(...m[1].split(',').map((s) => s.trim()).filter(Boolean));
  for (const m of expr.matchAll(/\bunwrap\s+([A-Za-z_][A-Za-z0-9_]*)/g)) names.push(m[1]);
  for (const m of expr.matchAll(/\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g)) names.push(m[1]);
  return names;
}

/**
 * Record attributes Loki queries may use that the sample record (a client
 * record, mapped without routes) does not carry: http.route is on server
 * records (src/otel/routes.ts).
 */
const PENDING_RECORD_ATTRIBUTES = ['http.route'];

/** The resource attributes of a workload in a pod, as headertap sets them, and those the k8s collector's k8s_attributes adds. */
function resourceAttributeNames(): string[] {
  const fromHeadertap = Object.keys(
    workloadAttributes({ pid: 1, executableName: 'node', serviceName: 's', containerId: 'c'.repeat(64), podUid: '5a6b9f3e-0c1d-4e2f-8a9b-0c1d2e3f4a5b' }, { hostName: 'h' }),
  );
  return [...fromHeadertap, ...(list(obj(k8sAttributes().extract).metadata) as string[])];
}

/**
 * Names Loki 3.7.6 has for headertap records (after its name mapping,
 * lokiName): their attributes, the resource's, the status class, and the
 * record fields Loki keeps (trace_id, span_id, severity). Not event_name:
 * Loki releases up to 3.7.x drop it (only main stores it, grafana/loki#21229).
 */
function knownLokiNames(): (name: string) => boolean {
  const known = new Set([...recordAttributeNames(), ...PENDING_RECORD_ATTRIBUTES, ...resourceAttributeNames(), STATUS_CLASS].map(lokiName));
  for (const field of ['trace_id', 'span_id', 'severity_text', 'severity_number']) known.add(field);
  return (n) => known.has(n) || /^http_(request|response)_header_[a-z0-9_]+$/.test(n);
}

/** Metric and label names a PromQL expression reads: metric names before a selector or range, labels in selectors, by/without and legends. */
function promqlNames(expr: string): { metrics: string[]; labels: string[] } {
  const FUNCTIONS = new Set(['sum', 'rate', 'histogram_quantile', 'by', 'without', 'irate', 'increase', 'avg', 'max', 'min', 'topk', 'count']);
  const metrics = [...expr.matchAll(/([a-zA-Z_:][a-zA-Z0-9_:]*)\s*(?=\{|\[)/g)].map((m) => m[1]).filter((n) => !FUNCTIONS.has(n));
  const labels: string[] = [];
  for (const m of expr.matchAll(/\{([^{}]*)\}/g)) for (const n of m[1].matchAll(/([A-Za-z_][A-Za-z0-9_]*)\s*(?:=~|!~|!=|=)/g)) labels.push(n[1]);
  for (const m of expr.matchAll(/\b(?:by|without)\s*\(([^)]*)\)/g)) labels.push(...m[1].split(',').map((x) => x.trim()).filter(Boolean));
  for (const m of expr.matchAll(/\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}/g)) labels.push(m[1]);
  return { metrics, labels };
}

/**
 * The names Prometheus 3's OTLP endpoint gives headertap's request metrics
 * (UnderscoreEscapingWithSuffixes: dots to _, the unit as a suffix, _bucket,
 * _count, _sum; attributes named as Loki names them, the same translator):
 * from what RequestMetrics really exports for server, client and gRPC
 * exchanges with --metric-headers, plus job/instance (service.name) and the
 * resource attributes prometheus.yaml promotes.
 */
function knownPrometheusNames(): { metric(name: string): boolean; label(name: string): boolean } {
  const names = requestMetricNames();
  const promoted = list(obj(yamlDoc(at('prometheus', 'prometheus.yaml')).otlp).promote_resource_attributes) as string[];
  const metrics = new Set(names.metrics.flatMap((m) => ['_bucket', '_count', '_sum'].map((suffix) => `${m.replaceAll('.', '_')}_seconds${suffix}`)));
  const labels = new Set([...names.attributes, ...promoted].map(lokiName));
  for (const l of ['job', 'instance', 'le']) labels.add(l);
  return { metric: (n) => metrics.has(n), label: (n) => labels.has(n) || /^http_request_header_[a-z0-9_]+$/.test(n) };
}

/** Metric names and attribute keys RequestMetrics exports, from real records (collected through a memory exporter). */
function requestMetricNames(): { metrics: string[]; attributes: string[] } {
  const seen: ResourceMetrics[] = [];
  const exporter: PushMetricExporter = {
    export: (m, done) => {
      seen.push(m);
      done({ code: ExportResultCode.SUCCESS });
    },
    forceFlush: () => Promise.resolve(),
    shutdown: () => Promise.resolve(),
  };
  const metrics = new RequestMetrics({ target: { url: 'http://127.0.0.1:1', protocol: 'grpc' } as ExportTarget, version: 't', log: silentLog, intervalMs: 3_600_000, exporter });
  const mapper = new ExchangeMapper({
    rules: new HeaderRules({ capture: DEFAULT_CAPTURE_HEADERS, redact: DEFAULT_REDACT_HEADERS }),
    toHrTime: (ns) => [0, ns],
    processInfo: (pid) => ({ pid, executableName: 'node' }),
    workloads: { hostName: 'h' },
    routes: new Routes({ rules: [] }),
    metricHeaders: new MetricHeaders(['x-tenant']),
  });
  for (const role of ['server', 'client'] as const) {
    for (const [status, grpc] of [[200, false], [503, false], [200, true]] as const) {
      const h2 = grpc ? { version: '2', headers: ['content-type', 'application/grpc', 'x-tenant', 'a'] } : { version: '1.1', headers: ['host', 'shop:8080', 'x-tenant', 'a'] };
      metrics.record(
        mapper.map({
          role,
          connection: { pid: 1, comm: 'node', networkType: 'ipv4', local: { address: '127.0.0.1', port: 8080 }, remote: { address: '127.0.0.1', port: 40000 }, tls: false },
          request: { kind: 'request', method: 'GET', target: grpc ? '/shop.v1.Cart/Get' : '/api/items/1', version: h2.version, headers: h2.headers, headBytes: 10, startNs: 0, endNs: 1 },
          response: { kind: 'response', status, reason: '', version: h2.version, headers: grpc ? ['grpc-status', '13'] : [], headBytes: 10, startNs: 1e6, endNs: 1e6 },
        } as HttpExchange),
      );
    }
  }
  void metrics.collect();
  const data = seen.flatMap((rm) => rm.scopeMetrics.flatMap((sm) => sm.metrics));
  return { metrics: [...new Set(data.map((m) => m.descriptor.name))], attributes: [...new Set(data.flatMap((m) => m.dataPoints.flatMap((p) => Object.keys(p.attributes))))] };
}

describe('otel-config: Grafana provisioning', () => {
  it("the README's LogQL examples use names headertap records have in Loki 3.7.6, and no line filter for header values", () => {
    const readme = readFileSync(at('README.md'), 'utf8');
    const blocks = [...readme.matchAll(/```logql\n([\s\S]*?)```/g)].map((m) => m[1]);
    assert.ok(blocks.length > 0);
    const isName = knownLokiNames();
    const queries = blocks.flatMap((b) => b.split('\n')).map((l) => l.replace(/\s+#.*$/, '').trim()).filter(Boolean);
    assert.ok(queries.some((q) => /\| http_request_header_x_tenant =~ "\.\*acme\.\*"/.test(q)), 'the structured-metadata filter for a header value');
    assert.ok(queries.some((q) => /by \(http_route\)/.test(q)), 'latency by route');
    for (const q of queries) {
      for (const n of logqlLabels(q)) assert.ok(isName(n), `README: ${n} in ${q} is not a name headertap records have in Loki`);
      // A line filter searches the log line, the record's body (GET /x -> 200): never where a header value is.
      assert.doesNotMatch(q, /\|[=~]\s*"/, `README: ${q} uses a line filter`);
    }
    const dash = readFileSync(at('grafana', 'dashboards', 'headertap.json'), 'utf8');
    const sources = readFileSync(at('grafana', 'provisioning', 'datasources', 'datasources.yaml'), 'utf8');
    assert.doesNotMatch(dash + sources, /\|[=~]\s*\\?"/, 'no line filter in the dashboard or the trace links');
  });

  it('lokiName maps attribute names as Loki 3.7.6 does', () => {
    assert.equal(lokiName('http.request.header.x-tenant'), 'http_request_header_x_tenant');
    assert.equal(lokiName('headertap.duration_ns'), 'headertap_duration_ns');
    assert.equal(lokiName('http.request.header.x--weird..name'), 'http_request_header_x_weird_name', 'runs collapse to one _');
    assert.equal(lokiName('k8s.pod.uid'), 'k8s_pod_uid');
    assert.equal(lokiName('1st.attr'), 'key_1st_attr', 'a leading digit gets key_');
  });

  it('the dashboard is in the shape of schemaVersion 43 (Grafana 12+), so Grafana migrates nothing on load', () => {
    const dash = JSON.parse(readFileSync(at('grafana', 'dashboards', 'headertap.json'), 'utf8')) as Obj;
    assert.equal(dash.schemaVersion, 43);
    // What grafana/grafana apps/dashboard/pkg/migration/schemaversion v40..v43 would change.
    assert.equal(typeof dash.refresh, 'string', 'v40: refresh is a string');
    assert.equal(obj(dash.timepicker).time_options, undefined, 'v41: no timepicker.time_options');
    for (const p of findKey(dash, 'properties').flatMap((x) => list(x.value).map(obj))) {
      if (p.id === 'custom.hideFrom' && obj(p.value).viz) assert.equal(obj(p.value).tooltip, true, 'v42: hidden from viz is hidden from tooltips');
    }
    assert.deepEqual(findKey(dash, 'id').filter((x) => x.value === 'formatTime'), [], 'v43: no formatTime transformation');
  });

  it('gives every data source a fixed uid and links only to uids that exist', () => {
    const ds = datasources();
    const uids = new Set(ds.map((d) => d.uid));
    assert.deepEqual([...uids].sort(), ['jaeger', 'loki', 'prometheus', 'tempo']);
    assert.equal(uids.size, ds.length, 'uids are unique');
    const links = findKey(ds, 'datasourceUid');
    assert.equal(links.length, 4, 'traces to logs from Tempo and Jaeger, logs to traces in Tempo and Jaeger');
    assert.deepEqual(findKey(ds, 'lokiSearch'), [], "Tempo's lokiSearch is gone since Grafana 11 (grafana/grafana#84346)");
    const grafana = String(obj(obj(yamlDoc(at('docker-compose.yaml')).services).grafana).image);
    assert.ok(Number(/:(\d+)\./.exec(grafana)?.[1]) >= 11, `${grafana}: the settings here are those of Grafana 11 and later`);
    for (const l of links) assert.ok(uids.has(String(l.value)), `${l.path} -> ${String(l.value)} is a provisioned uid`);
    const compose = yamlDoc(at('docker-compose.yaml'));
    for (const d of ds) {
      const host = new URL(d.url).hostname;
      assert.ok(host in obj(compose.services), `${d.name} url ${d.url} names a compose service`);
    }
  });

  it('links traces to logs (Tempo and Jaeger tracesToLogsV2) and logs to traces (Loki derived fields)', () => {
    const ds = Object.fromEntries(datasources().map((d) => [d.uid, d]));
    const isName = knownLokiNames();
    for (const uid of ['tempo', 'jaeger']) {
      const t2l = obj(ds[uid].jsonData?.tracesToLogsV2);
      assert.equal(t2l.datasourceUid, 'loki', `${uid} links to Loki`);
      const query = grafanaUnescape(String(t2l.query));
      assert.equal(t2l.customQuery, true);
      assert.match(query, /\| trace_id = "\$\{__trace\.traceId\}"/, `${uid}: query selects the trace id`);
      for (const n of logqlLabels(query)) assert.ok(isName(n), `${uid}: ${n} is a name headertap records have in Loki`);
    }
    const derived = list(ds.loki.jsonData?.derivedFields).map(obj);
    assert.deepEqual(derived.map((d) => d.datasourceUid).sort(), ['jaeger', 'tempo']);
    for (const d of derived) {
      assert.equal(d.matcherType, 'label', 'structured metadata matches as a label');
      assert.equal(d.matcherRegex, 'trace_id');
      assert.equal(grafanaUnescape(String(d.url)), '${__value.raw}');
    }
  });

  it('the dashboard queries only provisioned data sources and names headertap really produces', () => {
    const dash = JSON.parse(readFileSync(at('grafana', 'dashboards', 'headertap.json'), 'utf8')) as Obj;
    const uids = new Set(datasources().map((d) => d.uid));
    const refs = findKey(dash, 'datasource');
    assert.ok(refs.length >= 10);
    for (const r of refs) assert.ok(uids.has(String(obj(r.value).uid)), `${r.path} names uid ${String(obj(r.value).uid)}`);
    const vars = Object.fromEntries(list(obj(dash.templating).list).map((v) => [String(obj(v).name), obj(v)]));
    const isName = knownLokiNames();
    const panels = list(dash.panels).map(obj);
    assert.deepEqual(
      panels.map((p) => p.title),
      [
        'Request rate by service and status',
        'Error rate by service and route',
        'Server latency by route (p95)',
        'Request rate and errors by $metric_header',
        'Server latency by $metric_header (p95)',
        'Top values of request header $header',
        'Requests missing $expected_header, by service',
        'Exchanges (open a record: trace_id links to Tempo and Jaeger)',
      ],
    );
    const isPromName = knownPrometheusNames();
    const metricHeaders = String(vars.metric_header.query).split(',');
    for (const p of panels) {
      for (const t of list(p.targets).map(obj)) {
        const expr = String(t.expr ?? '');
        assert.ok(expr.trim(), `${String(p.title)} has a query`);
        for (const used of expr.matchAll(/\$([a-z_]+)/g)) {
          assert.ok(used[1].startsWith('_') || used[1] in vars, `${String(p.title)}: $${used[1]} is a dashboard variable`);
        }
        if (obj(t.datasource).uid === 'prometheus') {
          // Rate, errors and latency: headertap's request metrics as Prometheus names them, for every metric header offered.
          for (const header of metricHeaders) {
            const concrete = `${expr} ${String(t.legendFormat ?? '')}`.replaceAll('$metric_header', header);
            const names = promqlNames(concrete);
            assert.ok(names.metrics.length > 0, `${String(p.title)} reads a metric`);
            for (const m of names.metrics) assert.ok(isPromName.metric(m), `${String(p.title)}: ${m} is not a metric headertap exports, as Prometheus names it`);
            for (const l of names.labels) assert.ok(isPromName.label(l), `${String(p.title)}: ${l} is not a label of headertap's request metrics in Prometheus`);
          }
          continue;
        }
        // Every option of every variable gives valid names.
        for (const header of String(vars.header.query).split(',')) {
          for (const expected of String(vars.expected_header.query).split(',')) {
            const concrete = `${expr} ${String(t.legendFormat ?? '')}`.replaceAll('$expected_header', expected).replaceAll('$header', header);
            for (const n of logqlLabels(concrete)) assert.ok(isName(n), `${String(p.title)}: ${n} is not a name headertap records have in Loki`);
          }
        }
      }
    }
    // Rate, errors and latency come from the metrics now; the log panels stay on Loki.
    for (const p of panels) assert.equal(obj(p.datasource).uid, /header \$header|missing|Exchanges/.test(String(p.title)) ? 'loki' : 'prometheus', String(p.title));
    // The latency panel groups by route template, not raw path (one series per id), from the histogram's buckets.
    const latency = panels.find((p) => p.title === 'Server latency by route (p95)')!;
    const latencyExpr = String(obj(list(latency.targets)[0]).expr);
    assert.match(latencyExpr, /^histogram_quantile\(0\.95, sum by \(le, http_route\) \(rate\(http_server_request_duration_seconds_bucket\[\$__rate_interval\]\)\)\)$/);
    assert.doesNotMatch(JSON.stringify(dash), /url_path/);
    // The "by header" view offers headers as Prometheus names them, and the demo's headertap exports one of them.
    for (const h of metricHeaders) assert.match(h, /^[a-z0-9_]+$/);
    const demoCmd = list(obj(obj(yamlDoc(at('docker-compose.yaml')).services).headertap).command) as string[];
    const given = demoCmd[demoCmd.indexOf('--metric-headers') + 1];
    assert.ok(given && metricHeaders.includes(lokiName(given)), `the demo's --metric-headers ${given} is offered by $metric_header`);
    // Loki 3.7.x does not store event_name: a query on it would match nothing.
    assert.doesNotMatch(JSON.stringify(dash), /event_name/);
    const provider = obj(list(yamlDoc(at('grafana', 'provisioning', 'dashboards', 'dashboards.yaml')).providers)[0]);
    const mounts = list(obj(obj(yamlDoc(at('docker-compose.yaml')).services).grafana).volumes) as string[];
    assert.ok(mounts.includes(`./grafana/dashboards:${String(obj(provider.options).path)}:ro`), 'compose mounts the dashboards where the provider reads');
  });
});

/** Kubernetes kinds the manifests use, with their schema-checked models and TypeScript types. */
const K8S = {
  'v1/Namespace': { model: Namespace, module: 'kubernetes-models/v1/Namespace', type: 'INamespace' },
  'v1/ServiceAccount': { model: ServiceAccount, module: 'kubernetes-models/v1/ServiceAccount', type: 'IServiceAccount' },
  'v1/ConfigMap': { model: ConfigMap, module: 'kubernetes-models/v1/ConfigMap', type: 'IConfigMap' },
  'v1/Service': { model: Service, module: 'kubernetes-models/v1/Service', type: 'IService' },
  'apps/v1/DaemonSet': { model: DaemonSet, module: 'kubernetes-models/apps/v1/DaemonSet', type: 'IDaemonSet' },
  'apps/v1/Deployment': { model: Deployment, module: 'kubernetes-models/apps/v1/Deployment', type: 'IDeployment' },
  'rbac.authorization.k8s.io/v1/ClusterRole': { model: ClusterRole, module: 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRole', type: 'IClusterRole' },
  'rbac.authorization.k8s.io/v1/ClusterRoleBinding': {
    model: ClusterRoleBinding,
    module: 'kubernetes-models/rbac.authorization.k8s.io/v1/ClusterRoleBinding',
    type: 'IClusterRoleBinding',
  },
} as const;

/**
 * The manifest as TypeScript object literals typed with kubernetes-models'
 * interfaces: excess-property checks reject keys the API does not have
 * (kubectl's strict field validation), which the JSON schema allows.
 */
function unknownFieldErrors(docs: Obj[]): string[] {
  const dir = mkdtempSync(path.join(PACKAGE_ROOT, 'dist', '.k8s-check-'));
  const file = path.join(dir, 'manifest.ts');
  const lines = docs.map((d, i) => {
    const k = K8S[`${String(d.apiVersion)}/${String(d.kind)}` as keyof typeof K8S];
    return `import type { ${k.type} as T${i} } from '${k.module}';\nexport const doc${i}: T${i} = ${JSON.stringify(d, null, 2)};`;
  });
  writeFileSync(file, lines.join('\n'));
  const program = ts.createProgram([file], {
    strict: true,
    noEmit: true,
    skipLibCheck: true,
    module: ts.ModuleKind.Node16,
    moduleResolution: ts.ModuleResolutionKind.Node16,
    target: ts.ScriptTarget.ES2022,
    types: [],
    typeRoots: [],
  });
  try {
    return ts.getPreEmitDiagnostics(program).map((d) => ts.flattenDiagnosticMessageText(d.messageText, ' '));
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** The documents of otel-config/kubernetes/FILE. */
function manifests(file: string): Obj[] {
  return yamlDocs(at('kubernetes', file)) as Obj[];
}

const DAEMONSET = 'headertap-daemonset.yaml';
const COLLECTOR = 'otel-collector.yaml';

function kind(docs: Obj[], k: string): Obj {
  const d = docs.find((x) => x.kind === k);
  assert.ok(d, `a ${k}`);
  return d;
}

/** The collector config in otel-collector.yaml's ConfigMap. */
function k8sCollectorConfig(): Obj {
  const cm = kind(manifests(COLLECTOR), 'ConfigMap');
  return parseYaml(String(obj(cm.data)['config.yaml'])) as Obj;
}

function k8sAttributes(): Obj {
  return obj(obj(k8sCollectorConfig().processors).k8s_attributes);
}

/** A container's env as Kubernetes gives it to the process: $(VAR) of variables defined earlier in the list expanded. */
function containerEnv(container: Obj, fieldValues: Record<string, string>): Record<string, string> {
  const env: Record<string, string> = {};
  for (const e of list(container.env).map(obj)) {
    const ref = String(obj(obj(e.valueFrom).fieldRef).fieldPath ?? '');
    const value = e.value !== undefined ? String(e.value).replace(/\$\(([A-Za-z_][A-Za-z0-9_]*)\)/g, (m, v: string) => env[v] ?? m) : fieldValues[ref];
    assert.ok(value !== undefined, `env ${String(e.name)} has a value (fieldRef ${ref})`);
    env[String(e.name)] = value;
  }
  return env;
}

describe('otel-config: Kubernetes manifests', () => {
  it('pass the Kubernetes OpenAPI schema (kubernetes-models) and have no unknown fields', () => {
    const expected: Record<string, string[]> = {
      [DAEMONSET]: ['Namespace', 'ServiceAccount', 'ConfigMap', 'DaemonSet'],
      [COLLECTOR]: ['Namespace', 'ServiceAccount', 'ClusterRole', 'ClusterRoleBinding', 'ConfigMap', 'Deployment', 'Service'],
    };
    assert.deepEqual(filesUnder(at('kubernetes'), /\.ya?ml$/), Object.keys(expected).sort());
    for (const [file, kinds] of Object.entries(expected)) {
      const docs = manifests(file);
      assert.deepEqual(docs.map((d) => d.kind), kinds, file);
      for (const d of docs) {
        const k = K8S[`${String(d.apiVersion)}/${String(d.kind)}` as keyof typeof K8S];
        assert.ok(k, `${file}: ${String(d.apiVersion)} ${String(d.kind)} is a kind this test knows`);
        assert.doesNotThrow(() => new k.model(d as never).validate(), `${file}: ${String(d.kind)} passes the schema`);
      }
      assert.deepEqual(unknownFieldErrors(docs), [], file);
    }
  });

  it('the schema and unknown-field checks reject a broken DaemonSet', () => {
    const ds = structuredClone(kind(manifests(DAEMONSET), 'DaemonSet'));
    const podSpec = obj(obj(obj(ds.spec).template).spec);
    podSpec.hostPID = 'yes';
    assert.throws(() => new DaemonSet(ds as never).validate(), /hostPID must be boolean/);
    podSpec.hostPID = true;
    podSpec.hostPid = true;
    const errors = unknownFieldErrors([ds]);
    assert.ok(errors.some((e) => /'"?hostPid"?' does not exist/.test(e)), errors.join('\n'));
  });

  it('the DaemonSet: host PID, BTF/tracefs/cgroup mounts, BPF capabilities, limits, ConfigMap config, OTLP endpoint from env', () => {
    const docs = manifests(DAEMONSET);
    const ds = kind(docs, 'DaemonSet');
    const cm = kind(docs, 'ConfigMap');
    const pod = obj(obj(obj(ds.spec).template).spec);
    assert.equal(pod.hostPID, true);
    const [c] = list(pod.containers).map(obj);
    const sc = obj(c.securityContext);
    const caps = list(obj(sc.capabilities).add) as string[];
    assert.ok(sc.privileged === true || ['BPF', 'PERFMON'].every((x) => caps.includes(x)), 'privileged or CAP_BPF + CAP_PERFMON');
    // The node's hostname (host.name) is read inside PID 1's UTS namespace: nsenter needs both.
    assert.ok(sc.privileged === true || ['SYS_ADMIN', 'SYS_PTRACE'].every((x) => caps.includes(x)), 'CAP_SYS_ADMIN and CAP_SYS_PTRACE');
    const limits = obj(obj(c.resources).limits);
    assert.ok(limits.cpu && limits.memory, 'CPU and memory limits');
    const volumes = Object.fromEntries(list(pod.volumes).map((v) => [String(obj(v).name), obj(v)]));
    const mounts = Object.fromEntries(list(c.volumeMounts).map((m) => [String(obj(m).mountPath), String(obj(m).name)]));
    for (const hostDir of ['/sys/kernel/btf', '/sys/kernel/tracing', '/sys/fs/cgroup', '/sys/fs/bpf']) {
      const name = mounts[hostDir];
      assert.ok(name, `${hostDir} is mounted`);
      assert.equal(obj(volumes[name].hostPath).path, hostDir, `${hostDir} comes from the host`);
    }
    // --config names a key of the ConfigMap, at the path it is mounted.
    const args = list(c.args) as string[];
    const configPath = args[args.indexOf('--config') + 1];
    const cfgVolume = mounts[path.dirname(configPath)];
    assert.equal(obj(volumes[cfgVolume].configMap).name, obj(cm.metadata).name);
    assert.equal(obj(cm.metadata).namespace, obj(ds.metadata).namespace);
    const text = String(obj(cm.data)[path.basename(configPath)]);
    assert.ok(text.length > 0, `the ConfigMap has ${path.basename(configPath)}`);
    for (const a of args.filter((x) => x.startsWith('--'))) assert.ok(a === '--config' || RUN_OPTIONS.some((o) => `--${o.key}` === a), `${a} is a run flag`);
    const dir = mkdtempSync(path.join(tmpdir(), 'ht-cm-'));
    writeFileSync(path.join(dir, 'headertap.yaml'), text);
    const opts = resolveRunOptions({}, path.join(dir, 'headertap.yaml'));
    assert.equal(opts.serviceName, undefined, 'no service-name key: it would win over OTEL_SERVICE_NAME');
    // Every header is captured (headertap's purpose, against semantic conventions' advice): the whole default secret list must be in force.
    assert.deepEqual(opts.captureHeaders, ['*']);
    assert.deepEqual(opts.redactHeaders, DEFAULT_REDACT_HEADERS);
  });

  it("the DaemonSet's environment reaches headertap's own resource: service.name, k8s.node.name, k8s.pod.uid; K8S_NODE_NAME for host.name", async () => {
    const [c] = list(obj(obj(obj(kind(manifests(DAEMONSET), 'DaemonSet').spec).template).spec).containers).map(obj);
    const env = containerEnv(c, { 'spec.nodeName': 'node-a', 'metadata.uid': '0b8d6b9e-1f3c-4c9a-9a57-6b1e2f0c3d4e' });
    assert.equal(env.K8S_NODE_NAME, 'node-a');
    const identity = await resolveAgentIdentity(undefined, env, {
      selfUts: () => 'uts:[4026532999]',
      hostUts: () => undefined,
      hostnameIn: async () => undefined,
      osHostname: () => 'headertap-x7k2p',
    });
    assert.deepEqual(identity.warnings, []);
    assert.equal(identity.serviceName, 'headertap');
    assert.deepEqual(identity.attributes, { 'k8s.node.name': 'node-a', 'k8s.pod.uid': '0b8d6b9e-1f3c-4c9a-9a57-6b1e2f0c3d4e', 'host.name': 'node-a' });
    assert.match(String(env.OTEL_EXPORTER_OTLP_ENDPOINT), /^http:\/\/[^/]+:4317$/);
  });

  it(`the collector it sends to: k8s_attributes associates pods by k8s.pod.uid, else container.id (collector-contrib ${COLLECTOR_VERSION})`, () => {
    const docs = manifests(COLLECTOR);
    const cfg = checkCollector(k8sCollectorConfig(), `${COLLECTOR} ConfigMap`);
    const pipelines = obj(obj(cfg.service).pipelines);
    for (const signal of ['logs', 'traces', 'metrics']) assert.ok((list(obj(pipelines[signal]).processors) as string[]).includes('k8s_attributes'), `${signal} pipeline runs k8s_attributes`);
    assert.deepEqual(list(obj(pipelines.metrics).exporters), ['otlp_http/prometheus'], 'request metrics go to Prometheus (or Mimir)');
    const k8s = k8sAttributes();
    assert.equal(k8s.passthrough, false);
    const rules = list(k8s.pod_association).map((r) => list(obj(r).sources).map(obj));
    assert.deepEqual(
      rules.map((srcs) => srcs.map((x) => `${String(x.from)}:${String(x.name)}`)),
      [['resource_attribute:k8s.pod.uid'], ['resource_attribute:container.id']],
      'the pod UID first, the container id for static pods; no connection rule (every record comes from headertap own pod)',
    );
    const ours = new Set(resourceAttributeNames());
    for (const srcs of rules) for (const x of srcs) assert.ok(ours.has(String(x.name)), `${String(x.name)} is on the workload resource headertap exports`);
    const metadata = list(obj(k8s.extract).metadata) as string[];
    for (const m of ['k8s.pod.name', 'k8s.namespace.name', 'k8s.deployment.name']) assert.ok(metadata.includes(m), `extracts ${m}`);
    // The processor indexes pods by container id only when it extracts container attributes.
    assert.ok(metadata.some((m) => m === 'k8s.container.name' || m.startsWith('container.')), 'extracts a container attribute (container.id association)');
    // Same status classes as the compose collector.
    assert.deepEqual(
      obj(obj(cfg.processors)['transform/status_class']),
      obj(obj(yamlDoc(at('collector', 'otelcol-config.yaml')).processors)['transform/status_class']),
    );

    // RBAC: what k8s_attributes reads, bound to the collector's service account.
    const role = kind(docs, 'ClusterRole');
    const grants = list(role.rules).map(obj).flatMap((r) => (list(r.resources) as string[]).map((res) => ({ res: `${(list(r.apiGroups) as string[])[0]}/${res}`, verbs: list(r.verbs) as string[] })));
    for (const res of ['/pods', '/namespaces', 'apps/replicasets']) {
      const g = grants.find((x) => x.res === res);
      assert.ok(g && ['get', 'list', 'watch'].every((v) => g.verbs.includes(v)), `get/list/watch ${res}`);
    }
    const binding = kind(docs, 'ClusterRoleBinding');
    const deploy = kind(docs, 'Deployment');
    const podSpec = obj(obj(obj(deploy.spec).template).spec);
    assert.equal(obj(binding.roleRef).name, obj(role.metadata).name);
    assert.deepEqual(list(binding.subjects).map(obj).map((x) => `${String(x.namespace)}/${String(x.name)}`), [`${String(obj(deploy.metadata).namespace)}/${String(podSpec.serviceAccountName)}`]);

    // The Deployment runs the pinned contrib image on the ConfigMap's config.
    const [c] = list(podSpec.containers).map(obj);
    assert.equal(c.image, `otel/opentelemetry-collector-contrib:${COLLECTOR_VERSION}`);
    assert.equal(obj(obj(yamlDoc(at('docker-compose.yaml')).services)['otel-collector']).image, c.image, 'the same collector as the compose demo');
    const configArg = (list(c.args) as string[]).find((a) => a.startsWith('--config='))!.slice('--config='.length);
    const mount = list(c.volumeMounts).map(obj).find((m) => m.mountPath === path.dirname(configArg))!;
    const volume = list(podSpec.volumes).map(obj).find((v) => v.name === mount.name)!;
    assert.equal(obj(volume.configMap).name, obj(kind(docs, 'ConfigMap').metadata).name);
    assert.ok(path.basename(configArg) in obj(kind(docs, 'ConfigMap').data));

    // The DaemonSet's endpoint is this Service, whose port reaches the collector's OTLP/gRPC port.
    const svc = kind(docs, 'Service');
    const [ht] = list(obj(obj(obj(kind(manifests(DAEMONSET), 'DaemonSet').spec).template).spec).containers).map(obj);
    const endpoint = new URL(containerEnv(ht, { 'spec.nodeName': 'n', 'metadata.uid': 'u' }).OTEL_EXPORTER_OTLP_ENDPOINT);
    assert.equal(endpoint.hostname, `${String(obj(svc.metadata).name)}.${String(obj(svc.metadata).namespace)}.svc.cluster.local`);
    const port = list(obj(svc.spec).ports).map(obj).find((p) => String(p.port) === endpoint.port);
    assert.ok(port, `the Service exposes port ${endpoint.port}`);
    const containerPort = list(c.ports).map(obj).find((p) => p.name === port.targetPort || p.containerPort === port.targetPort);
    assert.equal(containerPort?.containerPort, 4317);
    assert.equal(obj(obj(obj(obj(cfg.receivers).otlp).protocols).grpc).endpoint, '0.0.0.0:4317');
    assert.deepEqual(obj(obj(svc.spec).selector), obj(obj(obj(deploy.spec).template).metadata).labels);
  });
});

describe('otel-config: docker-compose demo and images', () => {
  const composeDir = OTEL_CONFIG;
  const compose = () => obj(yamlDoc(at('docker-compose.yaml')).services);

  it('pins every image and references only files and build contexts that exist', () => {
    const services = compose();
    assert.deepEqual(
      Object.keys(services).sort(),
      ['demo-backend', 'demo-frontend', 'grafana', 'headertap', 'jaeger', 'loki', 'otel-collector', 'prometheus', 'tempo'],
    );
    for (const [name, s] of Object.entries(services).map(([n, v]) => [n, obj(v)] as const)) {
      assert.match(String(s.image), /^[a-z0-9./-]+:v?[0-9][A-Za-z0-9._-]*$/, `${name}: image ${String(s.image)} is pinned to a version`);
      if (s.build) {
        const ctx = path.resolve(composeDir, String(obj(s.build).context));
        assert.ok(statSync(ctx).isDirectory(), `${name}: build context exists`);
        const dockerfile = path.join(ctx, String(obj(s.build).dockerfile ?? 'Dockerfile'));
        assert.ok(existsSync(dockerfile), `${name}: ${dockerfile} exists`);
        checkDockerfile(dockerfile, ctx);
      }
      for (const v of list(s.volumes) as string[]) {
        const source = v.split(':')[0];
        if (source.startsWith('.')) assert.ok(existsSync(path.resolve(composeDir, source)), `${name}: ${source} exists`);
        else assert.match(source, /^\/sys\//, `${name}: host mount ${source} is a kernel filesystem`);
      }
      for (const dep of list(s.depends_on) as string[]) assert.ok(dep in services, `${name} depends on ${dep}, a service`);
    }
  });

  it('runs headertap privileged in the host PID namespace with valid flags, exporting to the collector', () => {
    const services = compose();
    const ht = obj(services.headertap);
    assert.equal(ht.privileged, true);
    assert.equal(ht.pid, 'host');
    const endpoint = new URL(String(obj(ht.environment).OTEL_EXPORTER_OTLP_ENDPOINT));
    assert.ok(endpoint.hostname in services && endpoint.port === '4317');
    const cmd = list(ht.command) as string[];
    const flags: Record<string, unknown> = {};
    for (let i = 0; i < cmd.length; i++) {
      const spec = RUN_OPTIONS.find((o) => `--${o.key}` === cmd[i]);
      assert.ok(spec?.flag, `${cmd[i]} is a headertap run flag`);
      const takesValue = spec.flag.includes('<');
      const value = takesValue ? cmd[++i] : 'true';
      const key = spec.key.replace(/-([a-z])/g, (_, ch: string) => ch.toUpperCase());
      flags[key] = spec.repeatable ? [...((flags[key] as string[]) ?? []), value] : value;
    }
    const opts = resolveRunOptions(flags);
    assert.equal(opts.emitSpans, true);
    const demoPorts = ['demo-frontend', 'demo-backend'].map((n) => Number(obj(obj(services[n]).environment).PORT));
    assert.deepEqual(opts.port.sort(), demoPorts.sort(), 'headertap watches the demo ports');
    // The collector exports to services that exist.
    const col = yamlDoc(at('collector', 'otelcol-config.yaml'));
    for (const e of Object.values(obj(col.exporters))) {
      const host = envDefault(String(obj(e).endpoint)).replace(/^https?:\/\//, '').split(/[:/]/)[0];
      assert.ok(host in services, `collector exporter target ${host} is a compose service`);
    }
    const mounted = (list(obj(services['otel-collector']).volumes) as string[])[0].split(':');
    assert.equal(mounted[0], './collector/otelcol-config.yaml');
    assert.ok((list(obj(services['otel-collector']).command) as string[]).includes(`--config=${mounted[1]}`));
  });

  it('the demo app exports traces to the collector it depends on', () => {
    const services = compose();
    for (const n of ['demo-frontend', 'demo-backend']) {
      const env = obj(obj(services[n]).environment);
      const url = new URL(String(env.OTEL_EXPORTER_OTLP_ENDPOINT));
      assert.ok(url.hostname in services && url.port === '4318', `${n} exports OTLP/HTTP to a service`);
      assert.match(String(env.OTEL_SERVICE_NAME), /^demo-/);
    }
    assert.equal(new URL(String(obj(obj(services['demo-frontend']).environment).BACKEND_URL)).hostname, 'demo-backend');
    const demo = JSON.parse(readFileSync(at('demo', 'package.json'), 'utf8')) as { dependencies: Record<string, string>; main: string };
    const ours = JSON.parse(readFileSync(path.join(PACKAGE_ROOT, 'package.json'), 'utf8')) as { dependencies: Record<string, string> };
    for (const [dep, version] of Object.entries(demo.dependencies)) assert.equal(version, ours.dependencies[dep], `${dep} pinned like headertap`);
    assert.ok(existsSync(at('demo', demo.main)));
  });
});

/** FROM images pinned; COPY sources exist in the build context. */
function checkDockerfile(file: string, context: string): void {
  const lines = readFileSync(file, 'utf8').split('\n');
  for (const l of lines) {
    const from = /^FROM\s+(\S+)/.exec(l);
    if (from) assert.match(from[1], /:[0-9]/, `${file}: ${from[1]} is pinned`);
    const copy = /^COPY\s+(?!--from)(.+)\s+\S+$/.exec(l);
    if (copy) {
      for (const src of copy[1].split(/\s+/)) assert.ok(existsSync(path.join(context, src)), `${file}: COPY ${src} exists in ${context}`);
    }
  }
}

describe('otel-config: plain-host install (systemd)', () => {
  it('the unit passes systemd-analyze verify with no warning', async (t) => {
    if (!requireCommand(t, '/usr/bin/systemd-analyze')) return;
    const unit = readFileSync(at('systemd', 'headertap.service'), 'utf8');
    const exec = /^ExecStart=(\S+) run --config (\S+)$/m.exec(unit);
    assert.ok(exec, 'ExecStart runs headertap run --config');
    const env = /^EnvironmentFile=(\S+)$/m.exec(unit);
    assert.equal(path.dirname(env![1]), path.dirname(exec[2]), 'config and environment live together');
    // verify needs the executable to exist: point ExecStart at this checkout's.
    const dir = mkdtempSync(path.join(tmpdir(), 'ht-systemd-'));
    const copy = path.join(dir, 'headertap.service');
    writeFileSync(copy, unit.replace(exec[1], path.join(PACKAGE_ROOT, 'bin', 'headertap')));
    const res = await run('/usr/bin/systemd-analyze', ['verify', '--man=no', copy]);
    assert.equal(res.code, 0, res.stderr);
    assert.equal(res.stderr.trim(), '', 'no unknown keys or other warnings');
  });

  it('systemd-analyze flags a mistyped key (the check works)', async (t) => {
    if (!requireCommand(t, '/usr/bin/systemd-analyze')) return;
    const dir = mkdtempSync(path.join(tmpdir(), 'ht-systemd-'));
    const copy = path.join(dir, 'headertap.service');
    const unit = readFileSync(at('systemd', 'headertap.service'), 'utf8');
    writeFileSync(copy, unit.replace(/^ExecStart=\S+/m, `ExecStart=${path.join(PACKAGE_ROOT, 'bin', 'headertap')}`).replace('RestartSec=', 'RestartSecs='));
    const res = await run('/usr/bin/systemd-analyze', ['verify', '--man=no', copy]);
    assert.match(res.stderr, /Unknown key 'RestartSecs'/);
  });

  it('headertap.yaml is accepted by headertap run --config; headertap.env sets only OTLP variables', () => {
    const opts = resolveRunOptions({}, at('headertap.yaml'));
    assert.equal(opts.emitSpans, false);
    assert.deepEqual(opts.redactHeaders, DEFAULT_REDACT_HEADERS);
    const env = readFileSync(at('systemd', 'headertap.env'), 'utf8')
      .split('\n')
      .filter((l) => l.trim() && !l.startsWith('#'));
    assert.ok(env.length > 0);
    for (const l of env) assert.match(l, /^OTEL_EXPORTER_OTLP_[A-Z_]+=\S+$/);
  });
});
