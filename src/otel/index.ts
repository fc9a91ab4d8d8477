export { ExchangeMapper, DEFAULT_MAX_ATTRIBUTES, type MapperCounters } from './attributes';
export { HeaderRules, DEFAULT_CAPTURE_HEADERS, DEFAULT_REDACT_HEADERS, resolveRedactGlobs } from './headers';
export { resolveExportTarget, OTLP_COMPRESSIONS, type ExportTarget, type OtlpCompression } from './endpoint';
export { LogPipeline } from './pipeline';
export { DeliveryProcessor, DELIVERY_DEFAULTS, DROP_REASONS } from './delivery';
export { Spool } from './spool';
export { SelfMetrics, type AgentStats } from './self-metrics';
export { SpanPipeline } from './spans';
export { CaptureRules, LiveRules, MAX_SCOPED_RULES, type RulesFor, type ScopedList, type ScopedRule, type WorkloadMatch } from './scoped-rules';
