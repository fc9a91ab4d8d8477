export { ExchangeMapper, EVENT_NAME, splitTarget, splitAuthority, type ExchangeRecord, type MapperOptions } from './attributes';
export {
  HeaderRules,
  HeaderAction,
  DEFAULT_CAPTURE_HEADERS,
  DEFAULT_REDACT_HEADERS,
  HASH_PREFIX_HEX,
  REDACTED,
  resolveRedactGlobs,
  type HeaderRulesConfig,
  type HeaderSide,
} from './headers';
export { redactArgs, redactHeaderValue, redactQuery, redactUrl } from './redact';
export { extractSpanContext, extractTraceContext, MAX_TRACE_HEADER_BYTES, type TraceContextFormat } from './trace-context';
export {
  resolveExportTarget,
  parseProtocol,
  parseCompression,
  OTLP_PROTOCOLS,
  OTLP_COMPRESSIONS,
  DEFAULT_COMPRESSION,
  type ExportTarget,
  type OtlpCompression,
  type OtlpProtocol,
  type OtlpSignal,
} from './endpoint';
export { LogPipeline, flattenSdkRecord, createExporter, type PipelineOptions } from './pipeline';
export { DeliveryProcessor, DELIVERY_DEFAULTS, DROP_REASONS, type DeliveryCounters, type DeliveryOptions, type DropReason } from './delivery';
export { Spool } from './spool';
export { SelfMetrics, type AgentStats } from './self-metrics';
export { WorkloadLoggers, PerWorkload, workloadAttributes, DEFAULT_MAX_WORKLOADS, type WorkloadCounters, type WorkloadOptions } from './workloads';
export { SpanPipeline, createSpanExporter, spanName, spanOutcome, SPAN_BATCH_DEFAULTS, type SpanCounters, type SpanPipelineOptions } from './spans';
