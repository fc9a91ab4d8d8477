/**
 * Request metrics through the real OTLP metrics exporters (gRPC and
 * HTTP/protobuf) into the embedded receiver, decoded from the bytes that
 * arrived. Does not cover capture: test/integration/request-metrics.test.ts.
 */
import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { HttpExchange } from '../../src/http';
import { DEFAULT_CAPTURE_HEADERS, DEFAULT_REDACT_HEADERS, ExchangeMapper, HeaderRules, resolveExportTarget } from '../../src/otel';
import { MetricHeaders } from '../../src/otel/metric-headers';
import { DURATION_BUCKETS_S, RequestMetrics } from '../../src/otel/request-metrics';
import { Routes } from '../../src/otel/routes';
import { metricsLine } from '../../src/receiver';
import { startOtlpSink } from '../helpers/otlp-sink';
import { silentLog } from '../helpers/log';

function exchange(target: string, status: number, ms: number, tenant: string): HttpExchange {
  return {
    role: 'server',
    connection: { pid: 5, comm: 'node', networkType: 'ipv4', local: { address: '127.0.0.1', port: 8080 }, remote: { address: '127.0.0.1', port: 40000 }, tls: false },
    request: { kind: 'request', method: 'GET', target, version: '1.1', headers: ['host', 'a', 'x-tenant', tenant], headBytes: 40, startNs: 0, endNs: 10 },
    response: { kind: 'response', status, reason: '', version: '1.1', headers: [], headBytes: 20, startNs: ms * 1e6 - 10, endNs: ms * 1e6 },
  } as HttpExchange;
}

for (const transport of ['grpc', 'http'] as const) {
  describe(`request metrics over OTLP ${transport === 'grpc' ? 'gRPC' : 'HTTP/protobuf'} (real exporter, real receiver)`, () => {
    it('arrive as histograms with counts, buckets, attributes and the workload resource', async () => {
      const sink = await startOtlpSink(transport);
      after(() => sink.stop());
      const target = resolveExportTarget({ endpoint: sink.endpoint, protocol: transport === 'grpc' ? 'grpc' : 'http/protobuf' }, {}, 'metrics');
      const metrics = new RequestMetrics({ target, version: 't', log: silentLog, intervalMs: 3_600_000, cardinalityLimit: 50 });
      const mapper = new ExchangeMapper({
        rules: new HeaderRules({ capture: DEFAULT_CAPTURE_HEADERS, redact: DEFAULT_REDACT_HEADERS }),
        toHrTime: (ns) => [0, ns],
        processInfo: (pid) => ({ pid, executableName: 'node', serviceName: 'shop' }),
        workloads: { hostName: 'h' },
        routes: new Routes({ rules: [] }),
        metricHeaders: new MetricHeaders(['x-tenant']),
      });
      for (let i = 0; i < 10; i++) metrics.record(mapper.map(exchange(`/api/items/${i}`, 200, 20, 'acme')));
      metrics.record(mapper.map(exchange('/api/items/99', 500, 700, 'acme')));
      await metrics.shutdown();
      const points = await sink.waitForMetrics((ps) => ps.some((p) => p.name === 'http.server.request.duration'), 10_000);
      const ok = points.find((p) => p.name === 'http.server.request.duration' && p.attributes['http.response.status_code'] === 200)!;
      assert.equal(ok.kind, 'histogram');
      assert.equal(ok.unit, 's');
      assert.equal(ok.resource['service.name'], 'shop');
      assert.equal(ok.temporality, 2, 'cumulative');
      assert.deepEqual(ok.attributes, {
        'http.request.method': 'GET',
        'http.response.status_code': 200,
        'http.route': '/api/items/{id}',
        'url.scheme': 'http',
        'network.protocol.version': '1.1',
        'http.request.header.x-tenant': 'acme',
      });
      assert.equal(ok.histogram!.count, 10);
      assert.deepEqual(ok.histogram!.explicitBounds, DURATION_BUCKETS_S);
      assert.equal(ok.histogram!.bucketCounts[DURATION_BUCKETS_S.indexOf(0.025)], 10);
      const failed = points.find((p) => p.name === 'http.server.request.duration' && p.attributes['error.type'] === '500')!;
      assert.equal(failed.histogram!.bucketCounts[DURATION_BUCKETS_S.indexOf(0.75)], 1);
      assert.match(metricsLine(points), /http\.server\.request\.duration 11 in 2 series/);
      assert.equal(metrics.counters.exports, 1);
    });
  });
}
