/**
 * A span as plain JSON, the way the embedded receiver prints what it got
 * over the OTLP trace service (`headertap run --emit-spans` sends them).
 * Times use the same RFC 3339 form as FlatRecord, so a span's start and its
 * log record's time compare as strings.
 */
import { visible } from './escape';
import type { FlatValue } from './flat-record';

export type FlatSpanKind = 'UNSPECIFIED' | 'INTERNAL' | 'SERVER' | 'CLIENT' | 'PRODUCER' | 'CONSUMER';
export type FlatStatusCode = 'UNSET' | 'OK' | 'ERROR';

export interface FlatSpan {
  trace_id: string;
  span_id: string;
  /** Absent for a root span. */
  parent_span_id?: string;
  trace_state?: string;
  /** W3C trace flags (low byte of the OTLP flags field). */
  trace_flags: number;
  name: string;
  kind: FlatSpanKind;
  start_time: string;
  end_time: string;
  /** end - start in nanoseconds. */
  duration_ns: number;
  status: { code: FlatStatusCode; message?: string };
  resource: Record<string, FlatValue>;
  scope?: { name: string; version?: string };
  attributes: Record<string, FlatValue>;
}

/** Two readable lines: time, kind, name, duration, status; then the ids (escaped as toPretty's). */
export function toPrettySpan(s: FlatSpan): string {
  const ms = (s.duration_ns / 1e6).toFixed(2);
  const svc = s.resource['service.name'];
  return [
    `${s.start_time} SPAN  ${s.kind} ${s.name}  ${ms} ms  status=${s.status.code}${svc !== undefined ? `  service=${String(svc)}` : ''}`,
    `  trace_id=${s.trace_id} span_id=${s.span_id}${s.parent_span_id ? ` parent_span_id=${s.parent_span_id}` : ''}`,
  ]
    .map(visible)
    .join('\n');
}
