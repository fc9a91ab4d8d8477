import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import * as grpc from '@grpc/grpc-js';
import { OTLPExporterError } from '@opentelemetry/otlp-exporter-base';
import { resolveExportTarget, type AgentStats } from '../../src/otel';
import { SelfMetrics } from '../../src/otel/self-metrics';
import { backoffDelay, classifyExportError, retryInfoDelayMs } from '../../src/otel/retry';
import { encodeRetryInfoStatus } from '../helpers/retry-info';
import { metricsLine } from '../../src/receiver';
import { startOtlpSink } from '../helpers/otlp-sink';

function grpcError(code: number, metadata = new grpc.Metadata()): Error {
  return Object.assign(new Error(`${code} ${grpc.status[code]}: x`), { code, details: 'x', metadata });
}

describe('which export failures are retried', () => {
  it('gRPC: the OTLP retryable codes, with the RetryInfo delay when the server sent one', () => {
    for (const code of [grpc.status.UNAVAILABLE, grpc.status.DEADLINE_EXCEEDED, grpc.status.ABORTED]) {
      assert.equal(classifyExportError(grpcError(code)).retryable, true, grpc.status[code]);
    }
    for (const code of [grpc.status.INVALID_ARGUMENT, grpc.status.PERMISSION_DENIED, grpc.status.UNAUTHENTICATED, grpc.status.UNIMPLEMENTED]) {
      assert.equal(classifyExportError(grpcError(code)).retryable, false, grpc.status[code]);
    }
    const md = new grpc.Metadata();
    md.set('grpc-status-details-bin', encodeRetryInfoStatus(8, 'slow down', 2250));
    assert.deepEqual(classifyExportError(grpcError(grpc.status.RESOURCE_EXHAUSTED, md)), { retryable: true, kind: 'RESOURCE_EXHAUSTED', serverDelayMs: 2250 });
  });

  it('HTTP statuses, network errors and the exporters own retryable failures', () => {
    assert.equal(classifyExportError(new OTLPExporterError('Service Unavailable', 503)).retryable, true);
    assert.equal(classifyExportError(new OTLPExporterError('Too Many Requests', 429)).retryable, true);
    assert.equal(classifyExportError(new OTLPExporterError('Bad Request', 400)).retryable, false);
    assert.equal(classifyExportError(new OTLPExporterError('Export failed with retryable status')).retryable, true);
    assert.equal(classifyExportError(Object.assign(new Error('connect ECONNREFUSED'), { code: 'ECONNREFUSED' })).retryable, true);
    assert.equal(classifyExportError(Object.assign(new Error('certificate'), { code: 'CERT_HAS_EXPIRED' })).retryable, false);
    assert.equal(classifyExportError(new Error('Request timed out')).retryable, true);
    assert.equal(classifyExportError(new Error('something else')).retryable, false);
    assert.equal(classifyExportError(undefined).retryable, false);
  });

  it('RetryInfo decoding ignores garbage and other detail types', () => {
    assert.equal(retryInfoDelayMs(encodeRetryInfoStatus(14, 'x', 0)), 0);
    assert.equal(retryInfoDelayMs(encodeRetryInfoStatus(14, 'x', 61_500)), 61_500);
    assert.equal(retryInfoDelayMs(Buffer.from([0xff, 0xff, 0xff])), undefined);
    assert.equal(retryInfoDelayMs(Buffer.alloc(0)), undefined);
  });

  it('backoff grows exponentially, stays within jitter and the cap', () => {
    const o = { initialMs: 500, maxMs: 30_000, multiplier: 2, jitter: 0.2 };
    assert.deepEqual([0, 1, 2, 3].map((a) => backoffDelay(a, o, () => 0.5)), [500, 1000, 2000, 4000]);
    assert.equal(backoffDelay(0, o, () => 0), 400);
    assert.equal(backoffDelay(0, o, () => 1), 600);
    assert.equal(backoffDelay(100, o, () => 1), 30_000);
    assert.equal(backoffDelay(10_000, o, () => 0.5), 30_000);
  });
});

/** Counter values as the agent reports them, all different, for the self-metrics tests. */
function sampleStats(): AgentStats {
  return {
    eventsIn: 10,
    exchanges: 4,
    recordsExported: 3,
    recordsDropped: { buffer_full: 1, rejected: 0 },
    recordsUnconfirmed: 6,
    exportRetries: 2,
    exportTimeoutRetries: 1,
    exportFailures: 2,
    bufferRecords: 5,
    bufferBytes: 500,
    spoolRecords: 0,
    spoolBytes: 0,
    spoolRejected: 0,
    ringbufLost: 7,
    ringbufLostByCpu: [3, 4],
    captureTruncated: 1,
    invalidHeaderValues: 0,
    tunnelConnections: 2,
    tunnelBytes: 4096,
    processesFromKernel: 5,
    processesUnidentified: 1,
    captureUnreadable: 0,
    truncatedMessages: 1,
    attributeLimitedRecords: 2,
    droppedAttributes: 390,
    missedStart: 1,
    parseErrors: { gap_resync: 2 },
    loaderRestarts: 1,
    configReloads: 3,
    configReloadFailures: 1,
    routesOverflowed: 0,
    metricsOverflowed: 0,
  };
}

describe('self-metrics over OTLP/HTTP (real exporter, real receiver)', () => {
  it('sends the counters next to the logs, under the agent resource', async () => {
    const sink = await startOtlpSink('http');
    after(() => sink.stop());
    const target = resolveExportTarget({ endpoint: sink.endpoint, protocol: 'http/protobuf' }, {}, 'metrics');
    assert.equal(target.url, `${sink.endpoint}/v1/metrics`);
    const stats = sampleStats();
    const m = new SelfMetrics({ target, serviceName: 'agent-x', version: '1', intervalMs: 60_000, stats: () => stats });
    await m.shutdown();
    const v = (name: string, attrs: Record<string, unknown> = {}) =>
      sink.metrics.find((p) => p.name === name && Object.entries(attrs).every(([k, x]) => p.attributes[k] === x))?.value;
    assert.equal(v('headertap.exchanges'), 4);
    assert.equal(sink.metrics.find((p) => p.name === 'headertap.exchanges')?.temporality, 2, 'cumulative by default');
    assert.equal(v('headertap.records.dropped', { reason: 'buffer_full' }), 1);
    assert.equal(v('headertap.ringbuf.lost', { cpu: 1 }), 4);
    assert.equal(v('headertap.buffer.records'), 5);
    assert.equal(v('headertap.records.unconfirmed'), 6, 'sent but never confirmed: not among the dropped');
    assert.equal(v('headertap.export.timeout_retries'), 1);
    assert.equal(v('headertap.connections.tunneled'), 2);
    assert.equal(v('headertap.tunnel.bytes'), 4096);
    assert.equal(v('headertap.processes.kernel_identified'), 5);
    assert.equal(v('headertap.processes.unidentified'), 1);
    assert.equal(v('headertap.parse.errors', { kind: 'gap_resync' }), 2);
    assert.equal(v('headertap.records.attribute_limited'), 2);
    assert.equal(v('headertap.attributes.dropped'), 390);
    assert.deepEqual([v('headertap.config.reloads'), v('headertap.config.reload_failures')], [3, 1]);
    assert.equal(sink.metrics[0].resource['service.name'], 'agent-x');
    assert.match(metricsLine(sink.metrics), /^metrics from agent-x: \d+ points; headertap\.events\.received=10 headertap\.exchanges=4 /);
  });

  it('with delta temporality, each export carries the change since the last one; gauges stay values', async () => {
    const sink = await startOtlpSink('http');
    after(() => sink.stop());
    const target = resolveExportTarget({ endpoint: sink.endpoint, protocol: 'http/protobuf' }, {}, 'metrics');
    const stats = sampleStats();
    const m = new SelfMetrics({ target, serviceName: 'agent-d', version: '1', intervalMs: 1000, temporality: 'delta', stats: () => stats });
    await sink.waitForMetrics((ps) => ps.some((p) => p.name === 'headertap.exchanges'), 10_000, 'a first export');
    stats.exchanges = 10;
    stats.bufferRecords = 7;
    await m.shutdown();
    const exchanges = sink.metrics.filter((p) => p.name === 'headertap.exchanges');
    assert.ok(exchanges.every((p) => p.temporality === 1), 'delta');
    assert.equal(exchanges[0].value, 4, 'the first export: everything since start');
    assert.equal(exchanges.reduce((n, p) => n + p.value, 0), 10, `the deltas add up to the total: ${exchanges.map((p) => p.value).join(' + ')}`);
    assert.ok(exchanges.some((p) => p.value === 6), 'the change after the first export');
    const gauge = sink.metrics.filter((p) => p.name === 'headertap.buffer.records');
    assert.equal(gauge[gauge.length - 1].value, 7, 'a gauge is its value');
  });
});
