export { ExchangeMapper, EVENT_NAME, splitTarget, splitAuthority, type ExchangeRecord, type MapperOptions } from './attributes';
export { HeaderRules, DEFAULT_CAPTURE_HEADERS, DEFAULT_REDACT_HEADERS, REDACTED, type HeaderRulesConfig } from './headers';
export { extractSpanContext } from './trace-context';
export { resolveExportTarget, parseProtocol, OTLP_PROTOCOLS, type ExportTarget, type OtlpProtocol, type OtlpSignal } from './endpoint';
export { LogPipeline, flattenSdkRecord, createExporter, BATCH_DEFAULTS, type PipelineCounters, type PipelineOptions } from './pipeline';
export { SpanPipeline, createSpanExporter, spanName, spanOutcome, SPAN_BATCH_DEFAULTS, type SpanCounters, type SpanPipelineOptions } from './spans';
