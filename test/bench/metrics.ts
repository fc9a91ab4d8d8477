/**
 * What the request metrics cost: CPU per record with and without them, in
 * one run, and memory with 10 000 active series. No root, no network.
 *
 *   node --expose-gc dist/test/bench/metrics.js [RECORDS] [REPEATS]
 *
 * CPU: RECORDS records (default 50 000) cycling through 4096 synthetic
 * exchanges (40 routes with ids, 12 tenants, 200/404/500, a dozen request
 * and half a dozen response headers, three workloads, server and client
 * sides; a pool, so the live heap stays as small as the agent's) go through what the
 * agent does per record in user space after parsing — map (attributes,
 * rules, route) and OTLP-encode, with a request encoded per 2048 records —
 * and, in the variants, RequestMetrics.record() with --metric-headers
 * x-tenant, or instead the SDK's Histogram.record() with a cached
 * Attributes object per combination (what headertap did first). Each variant runs REPEATS times (default 5), interleaved; the
 * least CPU of each is compared (on a shared machine, the least disturbed
 * run). The metrics live across a variant's runs, as in an agent that runs
 * for hours: series are created in the first run, later runs are the steady
 * state. Parsing is left out of the baseline, so the ratio is an upper bound
 * of the share in the whole agent; the share of the agent's full
 * 29 µs/record (README, nginx at 5 000 requests/s) is printed too.
 * Two more lines split the metric's cost: the SDK's Histogram.record() alone
 * with one cached Attributes object, and with a new object per call.
 *
 * Memory: one workload, 10 000 distinct series (x-tenant values) in
 * http.server.request.duration, collected once (so the SDK holds its
 * cumulative state too); heap after GC against the same without metrics.
 */
import type { Attributes } from '@opentelemetry/api';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { ExportResultCode, type InstrumentationScope } from '@opentelemetry/core';
import { MeterProvider, PeriodicExportingMetricReader, type PushMetricExporter, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import type { HttpExchange } from '../../src/http';
import { DEFAULT_CAPTURE_HEADERS, DEFAULT_REDACT_HEADERS, ExchangeMapper, HeaderRules } from '../../src/otel';
import { MetricHeaders } from '../../src/otel/metric-headers';
import { OtlpLogsEncoder, type EncodedLogRecord } from '../../src/otel/otlp-logs';
import { DURATION_BUCKETS_S, RequestMetrics } from '../../src/otel/request-metrics';
import { Routes } from '../../src/otel/routes';
import type { Log } from '../../src/common/log';
import type { ExportTarget } from '../../src/otel/endpoint';
import { prng } from '../helpers/prng';

const AGENT_US_PER_RECORD = 29;
const quiet: Log = { info: () => {}, warn: () => {}, debug: () => {} };
const target = { url: 'http://127.0.0.1:1', protocol: 'grpc' } as unknown as ExportTarget;

function nullExporter(): PushMetricExporter {
  return {
    export: (_m: ResourceMetrics, done) => done({ code: ExportResultCode.SUCCESS }),
    forceFlush: () => Promise.resolve(),
    shutdown: () => Promise.resolve(),
  };
}

function exchanges(n: number, tenants: number, seed = 18): HttpExchange[] {
  const r = prng(seed);
  const pick = <T>(xs: readonly T[]) => xs[Math.floor(r() * xs.length)];
  const hex = (k: number) => Array.from({ length: k }, () => '0123456789abcdef'[Math.floor(r() * 16)]).join('');
  const routes = Array.from({ length: 40 }, (_, i) => (id: string) => `/api/v${1 + (i % 3)}/res${String.fromCharCode(97 + (i % 26))}${i >= 26 ? 'x' : ''}/${id}${i % 4 === 0 ? '/items' : ''}`);
  const out: HttpExchange[] = [];
  for (let i = 0; i < n; i++) {
    const role = r() < 0.7 ? 'server' : 'client';
    const id = r() < 0.5 ? String(Math.floor(r() * 1e6)) : `${hex(8)}-${hex(4)}-4${hex(3)}-a${hex(3)}-${hex(12)}`;
    const status = pick([200, 200, 200, 200, 200, 200, 201, 404, 500]);
    const start = 1e9 + i * 1e6;
    const ms = 1 + Math.floor(r() * 300);
    out.push({
      role,
      connection: {
        pid: 100 + (i % 3),
        comm: 'app',
        networkType: 'ipv4',
        local: { address: '10.0.0.1', port: role === 'server' ? 8080 : 40000 + (i % 100) },
        remote: { address: '10.0.0.2', port: role === 'server' ? 40000 + (i % 100) : 8080 },
        tls: false,
      },
      request: {
        kind: 'request',
        method: pick(['GET', 'GET', 'GET', 'POST', 'PUT']),
        target: `${pick(routes)(id)}?page=${i % 7}`,
        version: '1.1',
        headers: [
          'host', 'api.shop.test:8080',
          'user-agent', 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/120.0 Safari/537.36',
          'accept', 'application/json',
          'accept-encoding', 'gzip, deflate, br',
          'accept-language', 'en-US,en;q=0.9',
          'traceparent', `00-${hex(32)}-${hex(16)}-01`,
          'x-tenant', `tenant-${i % tenants}`,
          'x-request-id', hex(24),
          'x-api-client', pick(['web', 'ios', 'android']),
          'authorization', `Bearer ${hex(40)}`,
          'content-type', 'application/json',
          'connection', 'keep-alive',
        ],
        headBytes: 600,
        startNs: start,
        endNs: start + 1000,
      },
      response: {
        kind: 'response',
        status,
        reason: '',
        version: '1.1',
        headers: ['content-type', 'application/json', 'content-length', String(100 + (i % 900)), 'date', 'Thu, 03 Dec 2026 08:00:00 GMT', 'server', 'nginx', 'cache-control', 'no-store', 'x-request-id', hex(24)],
        headBytes: 250,
        startNs: start + ms * 1e6 - 1000,
        endNs: start + ms * 1e6,
      },
    } as HttpExchange);
  }
  return out;
}

function mapperWith(metricHeaders?: MetricHeaders): ExchangeMapper {
  return new ExchangeMapper({
    rules: new HeaderRules({ capture: DEFAULT_CAPTURE_HEADERS, redact: DEFAULT_REDACT_HEADERS }),
    toHrTime: (ns) => [Math.floor(ns / 1e9), ns % 1e9],
    processInfo: (pid) => ({ pid, executableName: `app-${pid}` }),
    workloads: { hostName: 'bench' },
    routes: new Routes({ rules: [] }),
    ...(metricHeaders ? { metricHeaders } : {}),
  });
}

type Variant = 'records' | 'records+metrics' | 'records+sdk-histogram';

/**
 * What headertap did first: the SDK's Histogram.record() per record, with
 * one cached, frozen Attributes object per combination (found by the same
 * kind of string key), so the SDK's own work is all that is left.
 */
function sdkHistogram(): (rec: ReturnType<ExchangeMapper['map']>) => void {
  const provider = new MeterProvider({
    resource: resourceFromAttributes({ 'service.name': 'b' }),
    readers: [new PeriodicExportingMetricReader({ exporter: nullExporter(), exportIntervalMillis: 3_600_000 })],
  });
  const h = provider.getMeter('b').createHistogram('http.server.request.duration', { unit: 's', advice: { explicitBucketBoundaries: DURATION_BUCKETS_S } });
  const cache = new Map<string, Attributes>();
  return (rec) => {
    if (rec.durationNs === undefined) return;
    const tenant = rec.metricHeaders?.values[0];
    const key = `${rec.method}\u0000${rec.status}\u0000${rec.route}\u0000${rec.role}\u0000${tenant}`;
    let a = cache.get(key);
    if (!a) {
      a = Object.freeze({
        'http.request.method': rec.method,
        'http.response.status_code': rec.status ?? 0,
        [rec.role === 'server' ? 'http.route' : 'url.template']: rec.route ?? '',
        'url.scheme': 'http',
        'network.protocol.version': '1.1',
        'http.request.header.x-tenant': tenant ?? '',
      });
      cache.set(key, a);
    }
    h.record(rec.durationNs / 1e9, a);
  };
}

/**
 * The metrics each variant records into, kept across its runs: an agent runs
 * for hours and creates a series once, so the series are all there after
 * the first run and the least CPU of the runs is the steady state.
 */
interface Sinks {
  metrics: RequestMetrics;
  sdk: ReturnType<typeof sdkHistogram>;
}

function sinks(): Sinks {
  return { metrics: new RequestMetrics({ target, version: 'b', log: quiet, intervalMs: 3_600_000, exporter: nullExporter() }), sdk: sdkHistogram() };
}

/** Maps and encodes `n` records cycling through `input` (a small pool keeps the live heap as small as the agent's). */
function runVariant(variant: Variant, input: HttpExchange[], n: number, into: Sinks): number {
  const withMetrics = variant !== 'records';
  const metrics = variant === 'records+metrics' ? into.metrics : undefined;
  const sdk = variant === 'records+sdk-histogram' ? into.sdk : undefined;
  const mapper = mapperWith(withMetrics ? new MetricHeaders(['x-tenant']) : undefined);
  const encoder = new OtlpLogsEncoder();
  const scope: InstrumentationScope = { name: 'headertap', version: 'b' };
  let batch: EncodedLogRecord[] = [];
  let bytes = 0;
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    const rec = mapper.map(input[i % input.length]);
    batch.push(encoder.encodeRecord(rec, rec.resource!, scope));
    if (batch.length >= 2048) {
      bytes += encoder.encodeRequest(batch).length;
      batch = [];
    }
    metrics?.record(rec);
    sdk?.(rec);
  }
  const cpu = process.cpuUsage(cpu0);
  void bytes;
  return cpu.user + cpu.system;
}

/**
 * The two parts of the metrics' cost, each alone, least of `repeats`:
 * RequestMetrics.record() over records mapped beforehand, and the mapper's
 * --metric-headers lookup (mapping with it against mapping without).
 */
function split(input: HttpExchange[], n: number, repeats: number): { record: number; headers: number } {
  const plain = mapperWith();
  const withHeaders = mapperWith(new MetricHeaders(['x-tenant']));
  const mapped = input.map((ex) => withHeaders.map(ex));
  const best = { record: Infinity, mapPlain: Infinity, mapHeaders: Infinity };
  const metrics = new RequestMetrics({ target, version: 'b', log: quiet, intervalMs: 3_600_000, exporter: nullExporter() });
  for (let r = 0; r < repeats; r++) {
    let cpu0 = process.cpuUsage();
    for (let i = 0; i < n; i++) metrics.record(mapped[i % mapped.length]);
    let cpu = process.cpuUsage(cpu0);
    best.record = Math.min(best.record, cpu.user + cpu.system);
    for (const [key, mapper] of [['mapPlain', plain], ['mapHeaders', withHeaders]] as const) {
      cpu0 = process.cpuUsage();
      for (let i = 0; i < n; i++) mapper.map(input[i % input.length]);
      cpu = process.cpuUsage(cpu0);
      best[key] = Math.min(best[key], cpu.user + cpu.system);
    }
  }
  void metrics.shutdown();
  return { record: best.record / n, headers: (best.mapHeaders - best.mapPlain) / n };
}

/** The SDK's Histogram.record() alone, 'cached': one frozen Attributes object per combination; 'fresh': a new object per call. */
function sdkAlone(kind: 'cached' | 'fresh', n: number): number {
  // A reader, or the SDK keeps no storage and record() does nothing.
  const provider = new MeterProvider({ resource: resourceFromAttributes({ 'service.name': 'b' }), readers: [new PeriodicExportingMetricReader({ exporter: nullExporter(), exportIntervalMillis: 3_600_000 })] });
  const h = provider.getMeter('b').createHistogram('d', { unit: 's', advice: { explicitBucketBoundaries: DURATION_BUCKETS_S } });
  const combos = Array.from({ length: 120 }, (_, i) =>
    Object.freeze({
      'http.request.method': 'GET',
      'http.response.status_code': 200 + (i % 3),
      'http.route': `/api/v1/res${i % 40}/{id}`,
      'url.scheme': 'http',
      'network.protocol.version': '1.1',
      'http.request.header.x-tenant': `tenant-${i % 12}`,
    }),
  );
  const cpu0 = process.cpuUsage();
  for (let i = 0; i < n; i++) {
    const a = combos[i % combos.length];
    h.record(0.001 * (i % 300), kind === 'cached' ? a : { ...a });
  }
  const cpu = process.cpuUsage(cpu0);
  void provider.shutdown();
  return cpu.user + cpu.system;
}

function gc(): void {
  const g = (globalThis as { gc?: () => void }).gc;
  if (g) {
    g();
    g();
  }
}

async function memoryAt(series: number): Promise<{ heapBytes: number; perSeries: number; rssBytes: number }> {
  const input = exchanges(series, series, 7).map((ex) => ({ ...ex, role: 'server' as const, connection: { ...ex.connection, pid: 100 } }));
  const mapper = mapperWith(new MetricHeaders(['x-tenant']));
  // Routes and statuses vary too: keep one combination per tenant by fixing them.
  const recs = input.map((ex) => mapper.map({ ...ex, request: { ...ex.request, method: 'GET', target: '/api/items/1' }, response: { ...ex.response!, status: 200 } }));
  gc();
  const heap0 = process.memoryUsage().heapUsed;
  const rss0 = process.memoryUsage().rss;
  const metrics = new RequestMetrics({ target, version: 'b', log: quiet, intervalMs: 3_600_000, exporter: nullExporter(), cardinalityLimit: series + 10 });
  for (const rec of recs) metrics.record(rec);
  for (const rec of recs) metrics.record(rec); // a second round: every series active, nothing new
  await metrics.collect();
  gc();
  const heap = process.memoryUsage().heapUsed - heap0;
  const rss = process.memoryUsage().rss - rss0;
  const admitted = metrics.series;
  await metrics.shutdown();
  if (admitted !== series) throw new Error(`expected ${series} series, admitted ${admitted}`);
  return { heapBytes: heap, perSeries: heap / series, rssBytes: rss };
}

async function main(): Promise<void> {
  const n = Number(process.argv[2] ?? 50_000);
  const repeats = Number(process.argv[3] ?? 5);
  const input = exchanges(4096, 12);
  const into = sinks();
  runVariant('records+metrics', input, 10_000, into); // JIT warm-up
  runVariant('records', input, 10_000, into);
  const best: Record<Variant, number> = { records: Infinity, 'records+metrics': Infinity, 'records+sdk-histogram': Infinity };
  const sdk = { cached: Infinity, fresh: Infinity };
  for (let i = 0; i < repeats; i++) {
    for (const v of ['records', 'records+metrics', 'records+sdk-histogram'] as const) best[v] = Math.min(best[v], runVariant(v, input, n, into));
    sdk.cached = Math.min(sdk.cached, sdkAlone('cached', n));
    sdk.fresh = Math.min(sdk.fresh, sdkAlone('fresh', n));
  }
  const base = best.records / n;
  const withMetrics = best['records+metrics'] / n;
  const added = withMetrics - base;
  const out = process.stdout;
  out.write(`node ${process.version}, ${n} records, least CPU of ${repeats} interleaved runs\n`);
  out.write(`map + encode              ${base.toFixed(2)} us/record\n`);
  out.write(`+ request metrics         ${withMetrics.toFixed(2)} us/record  (+${added.toFixed(2)} us, ${((withMetrics / base - 1) * 100).toFixed(1)} % on top)\n`);
  const viaSdk = best['records+sdk-histogram'] / n;
  out.write(`+ SDK Histogram.record()  ${viaSdk.toFixed(2)} us/record  (+${(viaSdk - base).toFixed(2)} us, ${((viaSdk / base - 1) * 100).toFixed(1)} % on top; cached Attributes)\n`);
  out.write(`share of the agent's ${AGENT_US_PER_RECORD} us/record: ${((added / AGENT_US_PER_RECORD) * 100).toFixed(1)} %\n`);
  void into.metrics.shutdown();
  const parts = split(input, n, repeats);
  out.write(`of which: RequestMetrics.record() alone ${parts.record.toFixed(2)} us, the mapper's --metric-headers lookup ${parts.headers.toFixed(2)} us\n`);
  out.write(`SDK Histogram.record() alone: ${(sdk.cached / n).toFixed(2)} us with a cached Attributes object, ${(sdk.fresh / n).toFixed(2)} us with a new one per call\n`);
  gc();
  const mem = await memoryAt(10_000);
  out.write(
    `memory, 10000 active series (one workload, one metric): heap +${(mem.heapBytes / 2 ** 20).toFixed(1)} MiB (${Math.round(mem.perSeries)} B/series), rss +${(mem.rssBytes / 2 ** 20).toFixed(1)} MiB${(globalThis as { gc?: unknown }).gc ? '' : ' (run with --expose-gc for a settled heap)'}\n`,
  );
}

void main();
