import {
  ROOT_CONTEXT,
  isSpanContextValid,
  trace,
  type SpanContext,
  type TextMapGetter,
  type TextMapPropagator,
} from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { B3Propagator, B3_CONTEXT_HEADER, X_B3_FLAGS, X_B3_PARENT_SPAN_ID, X_B3_SAMPLED, X_B3_SPAN_ID, X_B3_TRACE_ID } from '@opentelemetry/propagator-b3';
import { JaegerPropagator, UBER_TRACE_ID_HEADER } from '@opentelemetry/propagator-jaeger';
import type { HeaderList } from '../http';

/**
 * Longest trace header value looked at. Real ones are 55 (traceparent), at
 * most 68 (b3) or about 70 (uber-trace-id) bytes; anything far longer is
 * garbage or an attack and is ignored rather than run through regexes.
 */
export const MAX_TRACE_HEADER_BYTES = 256;

/**
 * Reads a flat [name, value, …] list for the propagators. Names on the list
 * are lower-case (the parser lower-cases them); the key asked for is
 * lower-cased too, so lookups are case-insensitive. Values above
 * MAX_TRACE_HEADER_BYTES count as absent. keys() is empty: headertap takes no
 * baggage (uberctx-*) from requests.
 */
function headerGetter(hidden?: string): TextMapGetter<HeaderList> {
  return {
    keys: () => [],
    get(carrier, key) {
      const k = key.toLowerCase();
      if (k === hidden) return undefined;
      const values: string[] = [];
      for (let i = 0; i < carrier.length; i += 2) {
        if (carrier[i] === k && carrier[i + 1].length <= MAX_TRACE_HEADER_BYTES) values.push(carrier[i + 1]);
      }
      return values.length === 0 ? undefined : values.length === 1 ? values[0] : values;
    },
  };
}

const getter = headerGetter();
/** B3Propagator reads `b3` whenever it is present; hiding it makes it read X-B3-*. */
const getterWithoutB3Single = headerGetter(B3_CONTEXT_HEADER);

interface Format {
  /** A header whose presence means this format may apply. */
  header: string;
  propagator: TextMapPropagator;
  getter: TextMapGetter<HeaderList>;
}

/** In order of precedence (DESIGN.md): W3C, B3 single, B3 multi, Jaeger. */
const FORMATS: Format[] = [
  { header: 'traceparent', propagator: new W3CTraceContextPropagator(), getter },
  { header: B3_CONTEXT_HEADER, propagator: new B3Propagator(), getter },
  { header: X_B3_TRACE_ID, propagator: new B3Propagator(), getter: getterWithoutB3Single },
  { header: UBER_TRACE_ID_HEADER, propagator: new JaegerPropagator(), getter },
];

/** Header names that can carry trace context (cheap pre-check before any propagator runs). */
const TRACE_HEADERS = new Set(FORMATS.map((f) => f.header));

/**
 * Every header of the trace-context formats headertap reads (W3C trace
 * context with tracestate, B3 single and multi, Jaeger), lower-case: a record
 * that must leave headers out keeps these first.
 */
export const TRACE_CONTEXT_HEADERS: ReadonlySet<string> = new Set([
  'traceparent',
  'tracestate',
  B3_CONTEXT_HEADER,
  X_B3_TRACE_ID,
  X_B3_SPAN_ID,
  X_B3_PARENT_SPAN_ID,
  X_B3_SAMPLED,
  X_B3_FLAGS,
  UBER_TRACE_ID_HEADER,
]);

/** The trace-context formats headertap reads, by the header that carries them. */
export type TraceContextFormat = 'traceparent' | 'b3' | 'x-b3' | 'uber-trace-id';
const FORMAT_NAMES: TraceContextFormat[] = ['traceparent', 'b3', 'x-b3', 'uber-trace-id'];

/**
 * The caller's span context from a request's headers, using the official
 * OpenTelemetry propagators: W3C `traceparent`, else B3 single-header `b3`,
 * else B3 multi-header `X-B3-TraceId`/`X-B3-SpanId`/`X-B3-Sampled`, else
 * Jaeger `uber-trace-id`. A format whose value is invalid is skipped and the
 * next one tried; nothing here throws.
 */
export function extractTraceContext(headers: HeaderList): { spanContext: SpanContext; format: TraceContextFormat } | undefined {
  let present: Set<string> | undefined;
  for (let i = 0; i < headers.length; i += 2) {
    if (TRACE_HEADERS.has(headers[i])) (present ??= new Set()).add(headers[i]);
  }
  if (!present) return undefined;
  for (let f = 0; f < FORMATS.length; f++) {
    const { header, propagator, getter: g } = FORMATS[f];
    if (!present.has(header)) continue;
    let sc: SpanContext | undefined;
    try {
      sc = trace.getSpanContext(propagator.extract(ROOT_CONTEXT, headers, g));
    } catch {
      sc = undefined; // a propagator choking on a value is an invalid value, nothing more
    }
    // Jaeger pads and does not check ids itself; all-zero ids are invalid in every format.
    if (sc && isSpanContextValid(sc)) {
      const { traceId, spanId, traceFlags, isRemote } = sc;
      return { spanContext: { traceId, spanId, traceFlags, isRemote }, format: FORMAT_NAMES[f] };
    }
  }
  return undefined;
}

/** The span context alone; see extractTraceContext. */
export function extractSpanContext(headers: HeaderList): SpanContext | undefined {
  return extractTraceContext(headers)?.spanContext;
}
