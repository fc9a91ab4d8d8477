export { ExchangeMapper, DEFAULT_MAX_ATTRIBUTES, type MapperCounters } from './attributes';
export { HeaderRules, DEFAULT_CAPTURE_HEADERS, DEFAULT_REDACT_HEADERS, resolveRedactGlobs } from './headers';
export { resolveExportTarget, OTLP_COMPRESSIONS, type ExportTarget, type OtlpCompression } from './endpoint';
export { LogPipeline } from './pipeline';
export { DeliveryProcessor, DELIVERY_DEFAULTS, DROP_REASONS } from './delivery';
export { Spool } from './spool';
import type * as SelfMetricsModule from './self-metrics';
import type * as SpansModule from './spans';
import type * as RequestMetricsModule from './request-metrics';

export type { AgentStats, SelfMetrics } from './self-metrics';
export type { SpanPipeline } from './spans';
export type { RequestMetrics, RequestMetricsCounters } from './request-metrics';

/*
 * The metrics SDK and the trace exporters are loaded when a run needs them,
 * not with the agent: --emit-spans is off by default, self-metrics start
 * after the ready line, and --no-request-metrics needs no metrics SDK.
 * Start-up time (test/bench/startup.ts).
 */
export function loadSelfMetrics(): typeof SelfMetricsModule.SelfMetrics {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('./self-metrics') as typeof SelfMetricsModule).SelfMetrics;
}

export function loadSpanPipeline(): typeof SpansModule.SpanPipeline {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('./spans') as typeof SpansModule).SpanPipeline;
}

export function loadRequestMetrics(): typeof RequestMetricsModule.RequestMetrics {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('./request-metrics') as typeof RequestMetricsModule).RequestMetrics;
}
export { CaptureRules, LiveRules, MAX_SCOPED_RULES, type RulesFor, type ScopedList, type ScopedRule, type WorkloadMatch } from './scoped-rules';
export { Routes, LiveRoutes, compileRoutePattern, heuristicRoute, DEFAULT_MAX_ROUTES, MAX_ROUTE_RULES, OVERFLOW_ROUTE, type RouteRule, type RouteCounters } from './routes';
export { MetricHeaders, MAX_METRIC_HEADERS, DEFAULT_CARDINALITY_LIMIT } from './metric-headers';
export type { MetricsTemporality } from './metric-exporters';
