/**
 * OTLP metrics exporters (gRPC and HTTP/protobuf), composed from the same
 * 0.223.1 parts as the logs exporters: the packaged
 * @opentelemetry/exporter-metrics-otlp-* have no 0.223.1 release (0.223.0,
 * then 0.300.0), and either would bring a second copy of the OTLP base
 * packages. Used by headertap's own counters and by the request metrics.
 */
import { OTLPExporterBase } from '@opentelemetry/otlp-exporter-base';
import { convertLegacyHttpOptions, createOtlpHttpExportDelegate } from '@opentelemetry/otlp-exporter-base/node-http';
import { convertLegacyOtlpGrpcOptions, createOtlpGrpcExportDelegate } from '@opentelemetry/otlp-grpc-exporter-base';
import { MetricsExporterMetricsHelper, ProtobufMetricsSerializer } from '@opentelemetry/otlp-transformer';
import { AggregationTemporality, InstrumentType, type PushMetricExporter, type ResourceMetrics } from '@opentelemetry/sdk-metrics';
import { exporterConfig, type ExportTarget } from './endpoint';

export type MetricsTemporality = 'cumulative' | 'delta';

/**
 * The temporality of each instrument kind for a preference, as
 * OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE defines them: delta
 * makes counters and histograms delta, up-down counters stay cumulative.
 */
export function temporalitySelector(preference: MetricsTemporality): (type: InstrumentType) => AggregationTemporality {
  if (preference === 'cumulative') return () => AggregationTemporality.CUMULATIVE;
  return (type) =>
    type === InstrumentType.UP_DOWN_COUNTER || type === InstrumentType.OBSERVABLE_UP_DOWN_COUNTER ? AggregationTemporality.CUMULATIVE : AggregationTemporality.DELTA;
}

class GrpcMetricExporter extends OTLPExporterBase<ResourceMetrics> implements PushMetricExporter {
  constructor(
    target: ExportTarget,
    userAgent: string,
    private readonly _temporality: (type: InstrumentType) => AggregationTemporality,
  ) {
    super(
      createOtlpGrpcExportDelegate(
        convertLegacyOtlpGrpcOptions({ ...exporterConfig(target), userAgent }, 'METRICS'),
        ProtobufMetricsSerializer,
        'otlp_grpc_metric_exporter',
        MetricsExporterMetricsHelper,
        undefined,
        'MetricsExportService',
        '/opentelemetry.proto.collector.metrics.v1.MetricsService/Export',
      ),
    );
  }

  selectAggregationTemporality(type: InstrumentType): AggregationTemporality {
    return this._temporality(type);
  }
}

class ProtoMetricExporter extends OTLPExporterBase<ResourceMetrics> implements PushMetricExporter {
  constructor(
    target: ExportTarget,
    userAgent: string,
    private readonly _temporality: (type: InstrumentType) => AggregationTemporality,
  ) {
    super(
      createOtlpHttpExportDelegate(
        convertLegacyHttpOptions({ ...exporterConfig(target), userAgent }, 'METRICS', 'v1/metrics', { 'Content-Type': 'application/x-protobuf' }),
        ProtobufMetricsSerializer,
        'otlp_http_metric_exporter',
        MetricsExporterMetricsHelper,
        undefined,
      ),
    );
  }

  selectAggregationTemporality(type: InstrumentType): AggregationTemporality {
    return this._temporality(type);
  }
}

/**
 * The OTLP metrics exporter for the target (endpoint, protocol, headers,
 * compression, timeout as the logs use them). `userAgent` (headertap/VERSION)
 * marks the requests as headertap's own: other agents never record them
 * (src/cli/own-exports.ts).
 */
export function createMetricExporter(target: ExportTarget, userAgent: string, temporality: MetricsTemporality = 'cumulative'): PushMetricExporter {
  const select = temporalitySelector(temporality);
  return target.protocol === 'grpc' ? new GrpcMetricExporter(target, userAgent, select) : new ProtoMetricExporter(target, userAgent, select);
}
