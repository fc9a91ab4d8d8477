/**
 * headertap's own log record: what the mapper makes of an HTTP exchange, once,
 * and what every consumer reads: the OTLP encoder (straight into the delivery
 * buffer), `--console`, `--emit-spans` and the counters. No OpenTelemetry SDK
 * object stands in between; the fields are those of the OpenTelemetry log
 * data model, typed with the API's types, and the encoder writes them exactly
 * as the SDK's serializer would (test/unit/otlp-logs.test.ts).
 *
 * Attributes are a flat list, key, value, key, value…, in the order they are
 * sent, each key once. A record carries 30 to 100 of them, most header names
 * that change from record to record: as object properties that means a
 * dictionary-mode object per record (V8 gives up on hidden classes after a
 * dozen computed keys), several times the cost of the list to build, walk and
 * collect. attributeOf() and attributesObject() read it.
 *
 * To add something for a consumer (a route, a metric dimension), add a typed
 * field here and set it in the mapper, rather than parsing attributes back.
 */
import type { HrTime, SpanContext } from '@opentelemetry/api';
import type { AnyValue, SeverityNumber } from '@opentelemetry/api-logs';
import type { Resource } from '@opentelemetry/resources';
import type { Role } from '../http';

/** The values headertap's mapper makes. */
export type AttributeValue = string | number | boolean | string[];

/** key, value, key, value…: each key (a string) once, in the order they are sent. */
export type AttributeList<V = AttributeValue> = (string | V)[];

/** The fields of one OTLP LogRecord, as the encoder reads them. */
export interface LogRecordData<V = AnyValue> {
  /** When the event happened. */
  timestamp: HrTime;
  /** When headertap made the record. */
  observedTimestamp: HrTime;
  severityNumber?: SeverityNumber;
  severityText?: string;
  eventName?: string;
  body?: AnyValue;
  attributes: AttributeList<V>;
  /** OTLP dropped_attributes_count: attributes left out of this record. */
  droppedAttributesCount: number;
  /** A valid span context (trace and span id), or none. */
  spanContext?: SpanContext;
}

/** One request/response pair (or unanswered request) as a log record. */
export interface ExchangeRecord extends LogRecordData<AttributeValue> {
  eventName: string;
  severityNumber: SeverityNumber;
  severityText: string;
  body: string;
  /** The observed process's resource; none: headertap's own. */
  resource?: Resource;
  role: Role;
  /** The request method as sent ('' when it could not be decoded). */
  method: string;
  /** The HTTP status; undefined when there was no response, 0 when it could not be decoded. */
  status?: number;
  /** rpc.system.name, for an RPC call ('grpc'). */
  rpcSystem?: string;
  /** rpc.method (`Service/Method`, or _OTHER), for an RPC call whose :path could be decoded. */
  rpcMethod?: string;
  /** The gRPC status, for a gRPC call that has one. */
  grpcStatus?: number;
  /** First request byte to the response head's last byte; undefined without a response. */
  durationNs?: number;
  /** Why there is no response (headertap.unanswered_reason). */
  unanswered?: string;
  /** error.type: set when the exchange failed (src/otel/attributes.ts errorType). */
  errorType?: string;
  /** The low-cardinality path (http.route on the server side, url.template on the client side; src/otel/routes.ts). */
  route?: string;
  /** url.scheme, as on the attributes. */
  scheme: string;
  /** network.protocol.version: the request's, as on the attributes. */
  protocolVersion: string;
  /** server.address and server.port, as on the attributes (either may be unknown). */
  serverAddress?: string;
  serverPort?: number;
  /** --metric-headers in force and the request's values for them (after redaction and hashing), for the request metrics. */
  metricHeaders?: { names: readonly string[]; values: (string | undefined)[] };
}

/** The value of `key` in a list, or undefined. */
export function attributeOf<V>(list: AttributeList<V>, key: string): V | undefined {
  for (let i = 0; i < list.length; i += 2) if (list[i] === key) return list[i + 1] as V;
  return undefined;
}

/** The list as an object (for the APIs that take one: spans, JSON). */
export function attributesObject<V>(list: AttributeList<V>): Record<string, V> {
  const out: Record<string, V> = {};
  for (let i = 0; i < list.length; i += 2) out[list[i] as string] = list[i + 1] as V;
  return out;
}

/** Attributes in the list. */
export function attributeCount(list: AttributeList<unknown>): number {
  return list.length >> 1;
}
