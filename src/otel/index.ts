export { ExchangeMapper, DEFAULT_MAX_ATTRIBUTES, type MapperCounters } from './attributes';
export { HeaderRules, DEFAULT_CAPTURE_HEADERS, DEFAULT_REDACT_HEADERS, resolveRedactGlobs } from './headers';
export { resolveExportTarget, OTLP_COMPRESSIONS, type ExportTarget, type OtlpCompression } from './endpoint';
export { LogPipeline } from './pipeline';
export { DeliveryProcessor, DELIVERY_DEFAULTS, DROP_REASONS } from './delivery';
export { Spool } from './spool';
import type * as SelfMetricsModule from './self-metrics';
import type * as SpansModule from './spans';

export type { AgentStats, SelfMetrics } from './self-metrics';
export type { SpanPipeline } from './spans';

/*
 * The metrics SDK and the trace exporters are loaded when a run needs them,
 * not with the agent: --emit-spans is off by default and self-metrics start
 * after the ready line. Start-up time (test/bench/startup.ts).
 */
export function loadSelfMetrics(): typeof SelfMetricsModule.SelfMetrics {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('./self-metrics') as typeof SelfMetricsModule).SelfMetrics;
}

export function loadSpanPipeline(): typeof SpansModule.SpanPipeline {
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  return (require('./spans') as typeof SpansModule).SpanPipeline;
}
export { CaptureRules, LiveRules, MAX_SCOPED_RULES, type RulesFor, type ScopedList, type ScopedRule, type WorkloadMatch } from './scoped-rules';
