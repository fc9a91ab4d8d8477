import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, trace, TraceFlags } from '@opentelemetry/api';
import { SeverityNumber } from '@opentelemetry/api-logs';
import { ProtobufLogsSerializer, ProtobufTraceSerializer } from '@opentelemetry/otlp-transformer';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { InMemoryLogRecordExporter, LoggerProvider, SimpleLogRecordProcessor } from '@opentelemetry/sdk-logs';
import { BasicTracerProvider, InMemorySpanExporter, SimpleSpanProcessor } from '@opentelemetry/sdk-trace-base';
import { decodeLogsRequest, decodeTracesRequest } from '../../src/receiver/decode';

describe('receiver: OTLP logs decoding (proto/)', () => {
  it('decodes exactly what the official serializer writes, event_name and trace ids included', () => {
    const memory = new InMemoryLogRecordExporter();
    const provider = new LoggerProvider({
      resource: resourceFromAttributes({ 'service.name': 'svc', 'host.name': 'h1' }),
      processors: [new SimpleLogRecordProcessor({ exporter: memory })],
    });
    const ctx = trace.setSpanContext(ROOT_CONTEXT, {
      traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
      spanId: '00f067aa0ba902b7',
      traceFlags: TraceFlags.SAMPLED,
      isRemote: true,
    });
    provider.getLogger('headertap', '1.2.3').emit({
      eventName: 'headertap.http.exchange',
      timestamp: [1_700_000_000, 123_456_789],
      severityNumber: SeverityNumber.WARN,
      severityText: 'WARN',
      body: 'GET /x -> 404',
      attributes: {
        'http.response.status_code': 404,
        'headertap.truncated': true,
        ratio: 0.5,
        'http.request.header.accept': ['a', 'b'],
        big: 2 ** 40,
      },
      context: ctx,
    });
    const bytes = ProtobufLogsSerializer.serializeRequest(memory.getFinishedLogRecords());
    assert.ok(bytes && bytes.length > 0);
    const [rec, ...rest] = decodeLogsRequest(bytes);
    assert.equal(rest.length, 0);
    assert.equal(rec.time, '2023-11-14T22:13:20.123456789Z');
    assert.equal(rec.event_name, 'headertap.http.exchange');
    assert.equal(rec.severity_text, 'WARN');
    assert.equal(rec.severity_number, 13);
    assert.equal(rec.body, 'GET /x -> 404');
    assert.equal(rec.trace_id, '4bf92f3577b34da6a3ce929d0e0e4736');
    assert.equal(rec.span_id, '00f067aa0ba902b7');
    assert.equal(rec.trace_flags, 1);
    assert.deepEqual(rec.resource, { 'service.name': 'svc', 'host.name': 'h1' });
    assert.deepEqual(rec.scope, { name: 'headertap', version: '1.2.3' });
    assert.deepEqual(rec.attributes, {
      'http.response.status_code': 404,
      'headertap.truncated': true,
      ratio: 0.5,
      'http.request.header.accept': ['a', 'b'],
      big: 2 ** 40,
    });
  });

  it('throws on bytes that are not an OTLP request (the server answers INVALID_ARGUMENT)', () => {
    assert.throws(() => decodeLogsRequest(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f])));
  });
});

describe('receiver: OTLP trace decoding (proto/)', () => {
  it('decodes exactly what the official serializer writes: ids, parent, kind, times, status, attributes', async () => {
    const memory = new InMemorySpanExporter();
    const provider = new BasicTracerProvider({
      resource: resourceFromAttributes({ 'service.name': 'svc' }),
      spanProcessors: [new SimpleSpanProcessor(memory)],
    });
    const parent = trace.setSpanContext(ROOT_CONTEXT, {
      traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
      spanId: '00f067aa0ba902b7',
      traceFlags: TraceFlags.SAMPLED,
      isRemote: true,
    });
    const span = provider
      .getTracer('headertap', '1.2.3')
      .startSpan('GET', { kind: SpanKind.SERVER, startTime: [1_700_000_000, 5], attributes: { 'http.request.header.x': ['a', 'b'], n: 7 } }, parent);
    span.setStatus({ code: SpanStatusCode.ERROR, message: 'boom' });
    span.end([1_700_000_001, 10]);
    const bytes = ProtobufTraceSerializer.serializeRequest(memory.getFinishedSpans()); // before shutdown empties it
    await provider.shutdown();
    assert.ok(bytes && bytes.length > 0);
    const [s, ...rest] = decodeTracesRequest(bytes);
    assert.equal(rest.length, 0);
    assert.equal(s.trace_id, '4bf92f3577b34da6a3ce929d0e0e4736');
    assert.equal(s.parent_span_id, '00f067aa0ba902b7');
    assert.equal(s.span_id, span.spanContext().spanId);
    assert.equal(s.trace_flags, 1);
    assert.equal(s.name, 'GET');
    assert.equal(s.kind, 'SERVER');
    assert.equal(s.start_time, '2023-11-14T22:13:20.000000005Z');
    assert.equal(s.end_time, '2023-11-14T22:13:21.000000010Z');
    assert.equal(s.duration_ns, 1_000_000_005);
    assert.deepEqual(s.status, { code: 'ERROR', message: 'boom' });
    assert.deepEqual(s.resource, { 'service.name': 'svc' });
    assert.deepEqual(s.scope, { name: 'headertap', version: '1.2.3' });
    assert.deepEqual(s.attributes, { 'http.request.header.x': ['a', 'b'], n: 7 });
  });

  it('throws on bytes that are not an OTLP trace request', () => {
    assert.throws(() => decodeTracesRequest(Buffer.from([0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f])));
  });
});
