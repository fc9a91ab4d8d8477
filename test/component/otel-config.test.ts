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
import { RUN_OPTIONS, resolveRunOptions } from '../../src/cli/options';
import { PACKAGE_ROOT } from '../../src/common/paths';
import { DEFAULT_CAPTURE_HEADERS, DEFAULT_REDACT_HEADERS, ExchangeMapper, HeaderRules } from '../../src/otel';
import { attributesObject } from '../../src/otel/record';
import { requireCommand, run } from '../helpers/integration';
import { envDefault, filesUnder, findKey, grafanaUnescape, lokiName, OTEL_CONFIG, yamlDoc, yamlDocs, type Obj } from '../helpers/otel-config';

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

/** The attributes of a record's resource (the observed process). */
function resourceAttributeNames(): string[] {
  return Object.keys(sampleRecord().resource?.attributes ?? {});
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

/** Collector components by kind, as the contrib distribution names them. */
const KNOWN_TYPES: Record<string, string[]> = {
  receivers: ['otlp'],
  processors: ['memory_limiter', 'batch', 'transform'],
  exporters: ['otlp_grpc', 'otlp_http', 'debug'],
  extensions: ['health_check'],
  connectors: [],
};
const KINDS = ['receivers', 'processors', 'exporters'] as const;

function checkCollector(file: string): Obj {
  const cfg = yamlDoc(file);
  const name = path.basename(file);
  const defined = (kind: string) => Object.keys(obj(cfg[kind]));
  for (const kind of Object.keys(KNOWN_TYPES)) {
    for (const id of defined(kind)) {
      assert.ok(KNOWN_TYPES[kind].includes(id.split('/')[0]), `${name}: ${kind}.${id} is not a known ${kind} type`);
    }
  }
  for (const key of Object.keys(cfg)) assert.ok(key === 'service' || key in KNOWN_TYPES, `${name}: unknown top-level key ${key}`);
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
    assert.equal(procs.at(-1), 'batch', `${name}: ${pname}: batch comes last`);
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
  return cfg;
}

describe('otel-config: collector configs', () => {
  it('otelcol-config.yaml: logs to Loki\'s OTLP endpoint, traces to Tempo and Jaeger, everything defined and used', () => {
    const cfg = checkCollector(at('collector', 'otelcol-config.yaml'));
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
    const cfg = checkCollector(at('collector', 'otelcol-debug.yaml'));
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
    assert.throws(() => checkCollector(undefinedRef), /uses exporters otlp_http\/nowhere, which is not defined/);
    const unused = path.join(dir, 'b.yaml');
    writeFileSync(unused, base.replace('exporters:\n', 'exporters:\n  otlp_grpc/spare:\n    endpoint: x:4317\n'));
    assert.throws(() => checkCollector(unused), /exporters\.otlp_grpc\/spare is defined but used by no pipeline/);
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

/** Names Loki has for headertap records: its attributes and its resource's, status class, trace and span id. */
function knownLokiNames(): (name: string) => boolean {
  const known = new Set([...recordAttributeNames(), ...resourceAttributeNames(), STATUS_CLASS].map(lokiName));
  known.add('trace_id');
  known.add('span_id');
  return (n) => known.has(n) || /^http_(request|response)_header_[a-z0-9_]+$/.test(n);
}

describe('otel-config: Grafana provisioning', () => {
  it('gives every data source a fixed uid and links only to uids that exist', () => {
    const ds = datasources();
    const uids = new Set(ds.map((d) => d.uid));
    assert.deepEqual([...uids].sort(), ['jaeger', 'loki', 'tempo']);
    assert.equal(uids.size, ds.length, 'uids are unique');
    const links = findKey(ds, 'datasourceUid');
    assert.ok(links.length >= 5, 'links exist');
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
        'Requests by service and status class',
        'Top values of request header $header',
        'Requests missing $expected_header, by service',
        'Server latency by route (p95)',
        'Exchanges (open a record: trace_id links to Tempo and Jaeger)',
      ],
    );
    for (const p of panels) {
      for (const t of list(p.targets).map(obj)) {
        const expr = String(t.expr ?? '');
        assert.ok(expr.trim(), `${String(p.title)} has a query`);
        // Every option of every variable gives valid names.
        for (const header of String(vars.header.query).split(',')) {
          for (const expected of String(vars.expected_header.query).split(',')) {
            const concrete = `${expr} ${String(t.legendFormat ?? '')}`.replaceAll('$expected_header', expected).replaceAll('$header', header);
            for (const n of logqlLabels(concrete)) assert.ok(isName(n), `${String(p.title)}: ${n} is not a name headertap records have in Loki`);
          }
        }
        for (const used of expr.matchAll(/\$([a-z_]+)/g)) {
          assert.ok(used[1].startsWith('_') || used[1] in vars, `${String(p.title)}: $${used[1]} is a dashboard variable`);
        }
      }
    }
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
  'apps/v1/DaemonSet': { model: DaemonSet, module: 'kubernetes-models/apps/v1/DaemonSet', type: 'IDaemonSet' },
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

function manifests(): Obj[] {
  return filesUnder(at('kubernetes'), /\.ya?ml$/).flatMap((f) => yamlDocs(at('kubernetes', f)) as Obj[]);
}

describe('otel-config: Kubernetes manifests', () => {
  it('pass the Kubernetes OpenAPI schema (kubernetes-models) and have no unknown fields', () => {
    const docs = manifests();
    assert.deepEqual(docs.map((d) => d.kind), ['Namespace', 'ServiceAccount', 'ConfigMap', 'DaemonSet']);
    for (const d of docs) {
      const k = K8S[`${String(d.apiVersion)}/${String(d.kind)}` as keyof typeof K8S];
      assert.ok(k, `${String(d.apiVersion)} ${String(d.kind)} is a kind this test knows`);
      assert.doesNotThrow(() => new k.model(d as never).validate(), `${String(d.kind)} passes the schema`);
    }
    assert.deepEqual(unknownFieldErrors(docs), []);
  });

  it('the schema and unknown-field checks reject a broken DaemonSet', () => {
    const ds = structuredClone(manifests().find((d) => d.kind === 'DaemonSet')!);
    const podSpec = obj(obj(obj(ds.spec).template).spec);
    podSpec.hostPID = 'yes';
    assert.throws(() => new DaemonSet(ds as never).validate(), /hostPID must be boolean/);
    podSpec.hostPID = true;
    podSpec.hostPid = true;
    const errors = unknownFieldErrors([ds]);
    assert.ok(errors.some((e) => /'"?hostPid"?' does not exist/.test(e)), errors.join('\n'));
  });

  it('the DaemonSet: host PID, BTF/tracefs/cgroup mounts, BPF capabilities, limits, ConfigMap config, OTLP endpoint from env', () => {
    const docs = manifests();
    const ds = docs.find((d) => d.kind === 'DaemonSet')!;
    const cm = docs.find((d) => d.kind === 'ConfigMap')!;
    const pod = obj(obj(obj(ds.spec).template).spec);
    assert.equal(pod.hostPID, true);
    const [c] = list(pod.containers).map(obj);
    const sc = obj(c.securityContext);
    const caps = list(obj(sc.capabilities).add) as string[];
    assert.ok(sc.privileged === true || ['BPF', 'PERFMON'].every((x) => caps.includes(x)), 'privileged or CAP_BPF + CAP_PERFMON');
    const limits = obj(obj(c.resources).limits);
    assert.ok(limits.cpu && limits.memory, 'CPU and memory limits');
    const env = Object.fromEntries(list(c.env).map((e) => [obj(e).name, obj(e).value]));
    assert.match(String(env.OTEL_EXPORTER_OTLP_ENDPOINT), /^http:\/\/[^/]+:4317$/);
    const volumes = Object.fromEntries(list(pod.volumes).map((v) => [String(obj(v).name), obj(v)]));
    const mounts = Object.fromEntries(list(c.volumeMounts).map((m) => [String(obj(m).mountPath), String(obj(m).name)]));
    for (const hostDir of ['/sys/kernel/btf', '/sys/kernel/tracing', '/sys/fs/cgroup']) {
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
    assert.equal(opts.serviceName, 'headertap');
  });
});

describe('otel-config: docker-compose demo and images', () => {
  const composeDir = OTEL_CONFIG;
  const compose = () => obj(yamlDoc(at('docker-compose.yaml')).services);

  it('pins every image and references only files and build contexts that exist', () => {
    const services = compose();
    assert.deepEqual(
      Object.keys(services).sort(),
      ['demo-backend', 'demo-frontend', 'grafana', 'headertap', 'jaeger', 'loki', 'otel-collector', 'tempo'],
    );
    for (const [name, s] of Object.entries(services).map(([n, v]) => [n, obj(v)] as const)) {
      assert.match(String(s.image), /^[a-z0-9./-]+:[0-9][A-Za-z0-9._-]*$/, `${name}: image ${String(s.image)} is pinned to a version`);
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
      assert.ok(spec, `${cmd[i]} is a headertap run flag`);
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
