/**
 * headertap's own telemetry: its counters as OTLP metrics, sent to the same
 * endpoint as the records, under the agent's own resource (exporters:
 * src/otel/metric-exporters.ts).
 */
import type { Attributes } from '@opentelemetry/api';
import { MeterProvider, PeriodicExportingMetricReader, type PushMetricExporter } from '@opentelemetry/sdk-metrics';
import type { ExportTarget } from './endpoint';
import { createMetricExporter, type MetricsTemporality } from './metric-exporters';
import { agentResource } from './workloads';

/** A snapshot of every counter the agent keeps (totals since start, gauges now). */
export interface AgentStats {
  /** Kernel events (data, close) the agent received. */
  eventsIn: number;
  /** Request/response pairs (and unanswered requests) parsed. */
  exchanges: number;
  recordsExported: number;
  /** Records lost by reason (buffer_full, rejected, shutdown, spool_full, spool_corrupt, too_large). */
  recordsDropped: Record<string, number>;
  /** Records sent but never confirmed (no answer in time): maybe stored, maybe not. */
  recordsUnconfirmed: number;
  /** Export attempts retried. */
  exportRetries: number;
  /** Of those, retries after a timeout (they can duplicate records). */
  exportTimeoutRetries: number;
  /** Export attempts that failed, retried or not. */
  exportFailures: number;
  bufferRecords: number;
  bufferBytes: number;
  spoolRecords: number;
  spoolBytes: number;
  /** Spool files skipped, never sent, because another user owns them or could have written them. */
  spoolRejected: number;
  /** Events the kernel could not reserve ring-buffer space for, in total and per CPU. */
  ringbufLost: number;
  ringbufLostByCpu: number[];
  /** Syscalls whose bytes were cut at the per-call copy limit. */
  captureTruncated: number;
  /** Syscalls whose buffer could not be read. */
  captureUnreadable: number;
  /** HTTP messages whose headers are incomplete. */
  truncatedMessages: number;
  /** Records that left attributes out to stay within --max-attributes, and the attributes left out. */
  attributeLimitedRecords: number;
  droppedAttributes: number;
  /** Connections joined mid-stream: bytes skipped before the first message, or a response first. */
  missedStart: number;
  /** Header values holding characters HTTP forbids (NUL, CR, LF), exported as sent. */
  invalidHeaderValues: number;
  /** Connections switched away from HTTP (101 other than h2c, 2xx to CONNECT), and their bytes after the switch, ignored. */
  tunnelConnections: number;
  tunnelBytes: number;
  /** Observed processes gone from /proc when looked up, identified by the kernel's copy / by neither (comm only). */
  processesFromKernel: number;
  processesUnidentified: number;
  /** Parser resyncs, by kind. */
  parseErrors: Record<string, number>;
  /** Times the eBPF loader was restarted. */
  loaderRestarts: number;
  /** --config reloads that put new rules in force, and those refused (the rules in force stayed). */
  configReloads: number;
  configReloadFailures: number;
  /** Records whose route became the overflow route `/**` (--max-routes). */
  routesOverflowed: number;
  /** Request-metric measurements sent to an overflow series (--metric-cardinality-limit). */
  metricsOverflowed: number;
}

export interface SelfMetricsOptions {
  /** Where metrics go: resolveExportTarget(…, 'metrics'), so OTEL_EXPORTER_OTLP_METRICS_* apply. */
  target: ExportTarget;
  serviceName: string;
  /** More attributes of headertap's own resource (agentResource). */
  agentAttributes?: Attributes;
  version: string;
  intervalMs: number;
  /**
   * Counters as totals since start (cumulative, the default) or as the
   * change since the last export (delta), as --metrics-temporality and
   * OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE say; gauges are
   * values either way.
   */
  temporality?: MetricsTemporality;
  stats(): AgentStats;
  /** Replaces the OTLP exporter (tests). */
  exporter?: PushMetricExporter;
}

/**
 * Observable instruments over AgentStats, read and exported every
 * `intervalMs` and once more at shutdown.
 */
export class SelfMetrics {
  private readonly _provider: MeterProvider;

  constructor(opts: SelfMetricsOptions) {
    // headertap/VERSION marks the requests as headertap's own: other agents never record them (src/cli/own-exports.ts).
    const userAgent = `headertap/${opts.version}`;
    // The SDK turns the observed totals into deltas when the exporter asks for them.
    const exporter = opts.exporter ?? createMetricExporter(opts.target, userAgent, opts.temporality ?? 'cumulative');
    this._provider = new MeterProvider({
      resource: agentResource(opts.serviceName, opts.version, opts.agentAttributes),
      readers: [
        new PeriodicExportingMetricReader({
          exporter,
          exportIntervalMillis: opts.intervalMs,
          exportTimeoutMillis: Math.min(opts.intervalMs, 10_000),
        }),
      ],
    });
    const meter = this._provider.getMeter('headertap', opts.version);
    const counter = (name: string, description: string, unit: string, values: (s: AgentStats) => [number, Attributes?][]) => {
      const c = meter.createObservableCounter(name, { description, unit });
      c.addCallback((result) => {
        const s = opts.stats();
        for (const [v, attrs] of values(s)) result.observe(v, attrs);
      });
    };
    const gauge = (name: string, description: string, unit: string, value: (s: AgentStats) => number) => {
      const g = meter.createObservableGauge(name, { description, unit });
      g.addCallback((result) => result.observe(value(opts.stats())));
    };
    const byKey = (rec: Record<string, number>, key: string): [number, Attributes][] => Object.entries(rec).map(([k, v]) => [v, { [key]: k }]);
    counter('headertap.events.received', 'kernel events received (socket data, close)', '{event}', (s) => [[s.eventsIn]]);
    counter('headertap.exchanges', 'HTTP request/response pairs parsed', '{exchange}', (s) => [[s.exchanges]]);
    counter('headertap.records.exported', 'log records the collector accepted', '{record}', (s) => [[s.recordsExported]]);
    counter('headertap.records.dropped', 'log records lost, by reason', '{record}', (s) => byKey(s.recordsDropped, 'reason'));
    counter('headertap.records.unconfirmed', 'log records sent but never confirmed in time (the collector may have them)', '{record}', (s) => [[s.recordsUnconfirmed]]);
    counter('headertap.export.retries', 'export attempts retried', '{attempt}', (s) => [[s.exportRetries]]);
    counter('headertap.export.timeout_retries', 'export attempts retried after a timeout (may duplicate records)', '{attempt}', (s) => [[s.exportTimeoutRetries]]);
    counter('headertap.export.failures', 'export attempts that failed', '{attempt}', (s) => [[s.exportFailures]]);
    gauge('headertap.buffer.records', 'records waiting in memory', '{record}', (s) => s.bufferRecords);
    gauge('headertap.buffer.bytes', 'approximate bytes of records waiting in memory', 'By', (s) => s.bufferBytes);
    gauge('headertap.spool.records', 'records waiting on disk (--spool-dir)', '{record}', (s) => s.spoolRecords);
    gauge('headertap.spool.bytes', 'bytes of records waiting on disk', 'By', (s) => s.spoolBytes);
    counter('headertap.spool.rejected', 'spool files skipped, never sent: owned by another user or writable by others', '{file}', (s) => [[s.spoolRejected]]);
    counter('headertap.ringbuf.lost', 'events lost in the kernel: ring buffer full, per CPU', '{event}', (s) =>
      s.ringbufLostByCpu.length ? s.ringbufLostByCpu.map((v, cpu) => [v, { cpu }] as [number, Attributes]) : [[s.ringbufLost]],
    );
    counter('headertap.capture.truncated', 'socket calls cut at the per-call copy limit', '{call}', (s) => [[s.captureTruncated]]);
    counter('headertap.capture.unreadable', 'socket calls whose buffer could not be read', '{call}', (s) => [[s.captureUnreadable]]);
    counter('headertap.messages.truncated', 'HTTP messages with incomplete headers', '{message}', (s) => [[s.truncatedMessages]]);
    counter('headertap.records.attribute_limited', 'records that left headers out to stay within --max-attributes', '{record}', (s) => [[s.attributeLimitedRecords]]);
    counter('headertap.attributes.dropped', 'attributes left out of records (their dropped_attributes_count)', '{attribute}', (s) => [[s.droppedAttributes]]);
    counter('headertap.connections.missed_start', 'connections joined mid-stream', '{connection}', (s) => [[s.missedStart]]);
    counter('headertap.parse.errors', 'HTTP parser resyncs, by kind', '{error}', (s) => byKey(s.parseErrors, 'kind'));
    counter('headertap.headers.invalid_values', 'header values holding NUL, CR or LF, which HTTP forbids (kept as sent)', '{value}', (s) => [[s.invalidHeaderValues]]);
    counter('headertap.connections.tunneled', 'connections switched away from HTTP (101, CONNECT): no longer parsed', '{connection}', (s) => [[s.tunnelConnections]]);
    counter('headertap.tunnel.bytes', 'bytes after a protocol switch (101, CONNECT), ignored', 'By', (s) => [[s.tunnelBytes]]);
    counter('headertap.processes.kernel_identified', 'processes gone from /proc when looked up, identified by what the kernel read at their first event', '{process}', (s) => [[s.processesFromKernel]]);
    counter('headertap.processes.unidentified', 'processes identified by neither /proc nor the kernel: executable name from comm, OTEL_* environment unknown', '{process}', (s) => [[s.processesUnidentified]]);
    counter('headertap.loader.restarts', 'times the eBPF loader was restarted', '{restart}', (s) => [[s.loaderRestarts]]);
    counter('headertap.config.reloads', 'config file reloads put in force (file change or SIGHUP)', '{reload}', (s) => [[s.configReloads]]);
    counter('headertap.routes.overflowed', 'records whose route went to the overflow route /** (--max-routes reached for their workload)', '{record}', (s) => [[s.routesOverflowed]]);
    counter('headertap.metrics.overflowed', 'request-metric measurements sent to the overflow series otel.metric.overflow=true (--metric-cardinality-limit)', '{measurement}', (s) => [[s.metricsOverflowed]]);
    counter('headertap.config.reload_failures', 'config file reloads refused: the rules in force stayed', '{reload}', (s) => [[s.configReloadFailures]]);
  }

  /** Exports the final values, then stops. */
  async shutdown(timeoutMs = 5000): Promise<void> {
    await Promise.race([this._provider.shutdown().catch(() => {}), new Promise((r) => setTimeout(r, timeoutMs).unref())]);
  }
}
