/**
 * Everything the agent counts, in one place: the snapshot the self-metrics
 * export, and the one-line summary printed every --stats-interval and at exit.
 */
import type { HttpCounters } from '../http';
import { DROP_REASONS, type AgentStats, type DeliveryProcessor, type MapperCounters } from '../otel';
import type { KernelCounters } from '../source';
import type { ProcessCounters } from '../workload';

export interface StatsParts {
  http: HttpCounters;
  mapper: MapperCounters;
  /** How observed processes were identified (/proc, the kernel's copy, neither). */
  processes?: ProcessCounters;
  delivery: DeliveryProcessor;
  spool?: { records: number; bytes: number; rejected?: number };
  /** Kernel totals (all loaders), when capturing live. */
  kernel?: KernelCounters;
  /** Ring-buffer losses per CPU (index = CPU), when any. */
  lostByCpu: number[];
  eventsIn: number;
  loaderRestarts: number;
  /** The rules in force (their digest) and the config reloads so far. */
  config?: { digest: string; reloads: number; failures: number };
  /** Exchanges not recorded because they were OTLP exports of headertap agents (user-space rule). */
  agentExports?: number;
  /** Records whose route went to the overflow route (--max-routes). */
  routes?: { overflowed: number };
  /** Request metrics: measurements recorded, sent to an overflow series (--metric-cardinality-limit), export requests. */
  requestMetrics?: { recorded: number; overflowed: number; exports: number; failedExports: number };
}

/** Parser resyncs by kind: HTTP/1.x problems (a missed start is not one) and HTTP/2 ones (http2_*). */
function parseErrors(h: HttpCounters): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [kind, n] of Object.entries(h.problems)) if (kind !== 'missed_start') out[kind] = n;
  for (const [kind, n] of Object.entries(h.http2Problems)) out[`http2_${kind}`] = n;
  return out;
}

/** The counters as self-metrics export them. */
export function agentStats(p: StatsParts): AgentStats {
  const d = p.delivery.counters;
  return {
    eventsIn: p.eventsIn,
    exchanges: p.http.exchanges,
    recordsExported: d.exported,
    recordsDropped: { ...d.dropped },
    recordsUnconfirmed: d.unconfirmed,
    exportRetries: d.retries,
    exportTimeoutRetries: d.retriedAfterTimeout,
    exportFailures: d.failedExports,
    bufferRecords: p.delivery.bufferedRecords,
    bufferBytes: p.delivery.bufferedBytes,
    spoolRecords: p.spool?.records ?? 0,
    spoolBytes: p.spool?.bytes ?? 0,
    spoolRejected: p.spool?.rejected ?? 0,
    ringbufLost: p.kernel?.ringbufLost ?? 0,
    ringbufLostByCpu: Array.from(p.lostByCpu, (v) => v ?? 0),
    captureTruncated: p.kernel?.truncated ?? 0,
    captureUnreadable: p.kernel?.copyFailed ?? 0,
    truncatedMessages: p.http.truncatedMessages,
    attributeLimitedRecords: p.mapper.limitedRecords,
    droppedAttributes: p.mapper.droppedAttributes,
    missedStart: p.http.problems.missed_start,
    invalidHeaderValues: p.http.invalidValues,
    tunnelConnections: p.http.tunnelConnections,
    tunnelBytes: p.http.tunnelBytes,
    processesFromKernel: p.processes?.fromKernel ?? 0,
    processesUnidentified: p.processes?.unidentified ?? 0,
    parseErrors: parseErrors(p.http),
    loaderRestarts: p.loaderRestarts,
    configReloads: p.config?.reloads ?? 0,
    configReloadFailures: p.config?.failures ?? 0,
    routesOverflowed: p.routes?.overflowed ?? 0,
    metricsOverflowed: p.requestMetrics?.overflowed ?? 0,
  };
}

/** The one-line account: what was seen, sent, held and lost, and where. */
export function summaryLine(p: StatsParts): string {
  const h = p.http;
  const resyncs = Object.values(parseErrors(h)).reduce((a, b) => a + b, 0);
  const d = p.delivery.counters;
  const dropReasons = DROP_REASONS.filter((r) => r !== 'rejected' && d.dropped[r] > 0);
  const dropped = dropReasons.reduce((n, r) => n + d.dropped[r], 0);
  const droppedDetail = dropReasons.length ? ` (${dropReasons.map((r) => `${r} ${d.dropped[r]}`).join(', ')})` : '';
  const rejected = p.spool?.rejected ? `, spool files rejected ${p.spool.rejected}` : '';
  // Sent but never answered in time: maybe stored, so neither exported nor dropped.
  const unconfirmed = d.unconfirmed ? `, unconfirmed ${d.unconfirmed}` : '';
  const afterTimeout = d.retriedAfterTimeout ? ` (${d.retriedAfterTimeout} after timeouts)` : '';
  const spooled = p.spool ? `, spooled ${p.spool.records}${rejected}` : '';
  const k = p.kernel;
  const cpus = p.lostByCpu.map((v, cpu) => (v ? `cpu${cpu} ${v}` : '')).filter(Boolean);
  const kernel = k
    ? `kernel events ${k.dataEvents + k.closeEvents}, lost ${k.ringbufLost}${cpus.length ? ` (${cpus.join(', ')})` : ''}, truncated ${k.truncated}, unreadable ${k.copyFailed}`
    : 'kernel events n/a';
  const restarts = p.loaderRestarts ? `; loader restarts ${p.loaderRestarts}` : '';
  const limited = p.mapper.limitedRecords ? `, over --max-attributes ${p.mapper.limitedRecords} (attributes left out ${p.mapper.droppedAttributes})` : '';
  const c = p.config;
  const config = c ? `; rules ${c.digest}, config reloads ${c.reloads}, reload failures ${c.failures}` : '';
  const pr = p.processes;
  const processes = pr ? `; processes identified by the kernel ${pr.fromKernel}, unidentified ${pr.unidentified}` : '';
  const agentExports = p.agentExports ? `; agent exports not recorded ${p.agentExports}` : '';
  const routes = p.routes?.overflowed ? `; routes overflowed (--max-routes) ${p.routes.overflowed}` : '';
  const m = p.requestMetrics;
  const metrics = m ? `; request metrics recorded ${m.recorded} (series overflowed ${m.overflowed}), exports ${m.exports}, failed ${m.failedExports}` : '';
  return (
    `exchanges ${h.exchanges} (unanswered ${h.unanswered}, truncated ${h.truncatedMessages}${limited}); ` +
    `records exported ${d.exported}, failed ${d.dropped.rejected}, dropped ${dropped}${droppedDetail}${unconfirmed}; ` +
    `retries ${d.retries}${afterTimeout}, buffered ${p.delivery.bufferedRecords}${spooled}; ` +
    `${kernel}; parser resyncs ${resyncs}, orphan responses ${h.orphanResponses}, missed starts ${h.problems.missed_start}, invalid header values ${h.invalidValues}; ` +
    `tls sessions ${h.tlsSessions}, ciphertext connections ${h.ciphertextConnections}, tunnels ${h.tunnelConnections} (bytes ignored ${h.tunnelBytes}); ` +
    `http/2 connections ${h.http2Connections}, records with unknown HPACK state ${h.truncatedRecords.hpack_state_unknown}${processes}${restarts}${agentExports}${routes}${metrics}${config}`
  );
}
