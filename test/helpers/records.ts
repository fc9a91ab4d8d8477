import { SeverityNumber } from '@opentelemetry/api-logs';
import type { AttributeValue, ExchangeRecord } from '../../src/otel/record';

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
    scheme: 'http',
    protocolVersion: '1.1',
  };
}

/**
 * A record numbered i (body `GET /r<i> -> 200`) with `headers` custom
 * request headers of `valueBytes` each: the load that makes a 2048-record
 * batch larger than the 4 MiB gRPC servers accept by default.
 */
export function headerHeavyRecord(i: number, headers = 12, valueBytes = 100): ExchangeRecord {
  const rec = exchangeRecord(i);
  // What every record carries besides custom headers (src/otel/attributes.ts), with typical values.
  const common: Record<string, AttributeValue> = {
    'http.request.method': 'GET',
    'url.scheme': 'http',
    'network.protocol.name': 'http',
    'network.protocol.version': '1.1',
    'server.address': '127.0.0.1',
    'server.port': 8080,
    'client.address': '127.0.0.1',
    'client.port': 40000 + (i % 20000),
    'network.peer.address': '127.0.0.1',
    'network.peer.port': 8080,
    'network.local.address': '127.0.0.1',
    'network.local.port': 40000 + (i % 20000),
    'network.transport': 'tcp',
    'network.type': 'ipv4',
    'user_agent.original': 'curl/7.88.1',
    'headertap.role': 'client',
    'headertap.duration_ns': 123456,
    'http.request.header.host': ['127.0.0.1:8080'],
    'http.request.header.user-agent': ['curl/7.88.1'],
    'http.request.header.accept': ['*/*'],
    'http.response.header.server': ['nginx/1.22.1'],
    'http.response.header.date': ['Tue, 25 Nov 2025 13:19:59 GMT'],
    'http.response.header.content-type': ['text/html'],
    'http.response.header.content-length': ['615'],
    'http.response.header.connection': ['keep-alive'],
  };
  for (const [k, v] of Object.entries(common)) rec.attributes.push(k, v);
  for (let h = 0; h < headers; h++) rec.attributes.push(`http.request.header.x-custom-${h}`, [`${h}:${i}:`.padEnd(valueBytes, 'v')]);
  return rec;
}
