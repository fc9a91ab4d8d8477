import { ROOT_CONTEXT, trace, type SpanContext, type TextMapGetter } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import type { HeaderList } from '../http';

/** Reads a flat [name, value, …] list (names already lower-case). */
const headerListGetter: TextMapGetter<HeaderList> = {
  keys(carrier) {
    const keys: string[] = [];
    for (let i = 0; i < carrier.length; i += 2) keys.push(carrier[i]);
    return keys;
  },
  get(carrier, key) {
    const k = key.toLowerCase();
    const values: string[] = [];
    for (let i = 0; i < carrier.length; i += 2) if (carrier[i] === k) values.push(carrier[i + 1]);
    return values.length === 0 ? undefined : values.length === 1 ? values[0] : values;
  },
};

const w3c = new W3CTraceContextPropagator();

/**
 * The caller's span context from a request's headers: W3C traceparent via the
 * official propagator. Invalid values give undefined, never an exception.
 */
export function extractSpanContext(headers: HeaderList): SpanContext | undefined {
  if (!headers.includes('traceparent')) return undefined;
  const ctx = w3c.extract(ROOT_CONTEXT, headers, headerListGetter);
  return trace.getSpanContext(ctx);
}
