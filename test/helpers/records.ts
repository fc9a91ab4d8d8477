import { SeverityNumber } from '@opentelemetry/api-logs';
import type { ExchangeRecord } from '../../src/otel/record';

/** A small exchange record numbered i (body `GET /r<i> -> 200`), for pipeline and delivery tests. */
export function exchangeRecord(i: number): ExchangeRecord {
  return {
    eventName: 'headertap.http.exchange',
    timestamp: [1_700_000_000, i],
    observedTimestamp: [1_700_000_001, i],
    severityNumber: SeverityNumber.INFO,
    severityText: 'INFO',
    body: `GET /r${i} -> 200`,
    attributes: ['url.path', `/r${i}`, 'http.request.header.x-i', [String(i)], 'http.response.status_code', 200],
    droppedAttributesCount: 0,
    spanContext: { traceId: 'a'.repeat(32), spanId: 'b'.repeat(16), traceFlags: 1, isRemote: true },
    role: 'client',
    method: 'GET',
    status: 200,
  };
}
