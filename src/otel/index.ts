export { ExchangeMapper, EVENT_NAME, splitTarget, splitAuthority, type ExchangeRecord, type MapperOptions } from './attributes';
export { HeaderRules, DEFAULT_CAPTURE_HEADERS, DEFAULT_REDACT_HEADERS, REDACTED, type HeaderRulesConfig } from './headers';
export { extractSpanContext } from './trace-context';
export { resolveExportTarget, parseProtocol, OTLP_PROTOCOLS, type ExportTarget, type OtlpProtocol } from './endpoint';
export { LogPipeline, flattenSdkRecord, createExporter, type PipelineOptions } from './pipeline';
export { DeliveryProcessor, DELIVERY_DEFAULTS, DROP_REASONS, type DeliveryCounters, type DeliveryOptions, type DropReason } from './delivery';
export { Spool } from './spool';
export { SelfMetrics, metricsUrl, type AgentStats } from './self-metrics';
