import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SeverityNumber } from '@opentelemetry/api-logs';
import type { HttpExchange, HttpRequestHead, HttpResponseHead } from '../../src/http';
import { DEFAULT_CAPTURE_HEADERS, DEFAULT_MAX_ATTRIBUTES, DEFAULT_REDACT_HEADERS, ExchangeMapper, HeaderRules } from '../../src/otel';
import { attributesObject, type AttributeValue, type ExchangeRecord } from '../../src/otel/record';
import { extractSpanContext } from '../../src/otel/trace-context';
import { splitAuthority, splitTarget, type MapperOptions } from '../../src/otel/attributes';
import type { HeaderRulesConfig } from '../../src/otel/headers';

function request(over: Partial<HttpRequestHead> = {}): HttpRequestHead {
  return {
    kind: 'request',
    method: 'GET',
    target: '/api/items?limit=5',
    version: '1.1',
    headers: ['host', 'shop.test:8080', 'user-agent', 'curl/8.0', 'x-tenant', 'acme'],
    headBytes: 80,
    startNs: 1_000_000,
    endNs: 1_000_500,
    ...over,
  };
}

function response(over: Partial<HttpResponseHead> = {}): HttpResponseHead {
  return {
    kind: 'response',
    status: 200,
    reason: 'OK',
    version: '1.1',
    headers: ['content-type', 'application/json', 'x-cache', 'HIT'],
    headBytes: 60,
    startNs: 3_000_000,
    endNs: 3_500_000,
    ...over,
  };
}

function exchange(over: Partial<HttpExchange> = {}): HttpExchange {
  return {
    role: 'client',
    connection: {
      pid: 1234,
      comm: 'curl',
      networkType: 'ipv4',
      local: { address: '127.0.0.1', port: 45678 },
      remote: { address: '127.0.0.2', port: 8080 },
      tls: false,
    },
    request: request(),
    response: response(),
    ...over,
  };
}

/** A record with its attribute list as an object, for reading. */
type Mapped = Omit<ExchangeRecord, 'attributes'> & { attributes: Record<string, AttributeValue>; list: ExchangeRecord['attributes'] };

function mapper(rules: HeaderRulesConfig = { capture: DEFAULT_CAPTURE_HEADERS, redact: DEFAULT_REDACT_HEADERS }, over: Partial<MapperOptions> = {}) {
  const m = new ExchangeMapper({
    rules: new HeaderRules(rules),
    toHrTime: (ns) => [1_700_000_000 + Math.floor(ns / 1e9), ns % 1e9],
    processInfo: (pid) => ({ pid, executableName: 'curl', containerId: 'c'.repeat(64) }),
    workloads: { hostName: 'host-a' },
    ...over,
  });
  return {
    counters: m.counters,
    map(ex: HttpExchange): Mapped {
      const rec = m.map(ex);
      return { ...rec, attributes: attributesObject(rec.attributes), list: rec.attributes };
    },
  };
}

describe('ExchangeMapper', () => {
  it('maps an exchange to the contract: event name, body, severity, time, attributes', () => {
    const rec = mapper().map(exchange());
    assert.equal(rec.eventName, 'headertap.http.exchange');
    assert.equal(rec.body, 'GET /api/items -> 200');
    assert.equal(rec.severityNumber, SeverityNumber.INFO);
    assert.equal(rec.severityText, 'INFO');
    assert.deepEqual(rec.timestamp, [1_700_000_000, 1_000_000]);
    assert.deepEqual(rec.attributes, {
      'http.request.method': 'GET',
      'url.path': '/api/items',
      'url.query': 'limit=5',
      'url.scheme': 'http',
      'network.protocol.name': 'http',
      'network.protocol.version': '1.1',
      'http.response.status_code': 200,
      'server.address': 'shop.test',
      'server.port': 8080,
      'url.full': 'http://shop.test:8080/api/items?limit=5',
      'client.address': '127.0.0.1',
      'client.port': 45678,
      'network.peer.address': '127.0.0.2',
      'network.peer.port': 8080,
      'network.local.address': '127.0.0.1',
      'network.local.port': 45678,
      'network.transport': 'tcp',
      'network.type': 'ipv4',
      'user_agent.original': 'curl/8.0',
      'headertap.role': 'client',
      'headertap.duration_ns': 2_500_000,
      'http.request.header.host': ['shop.test:8080'],
      'http.request.header.user-agent': ['curl/8.0'],
      'http.request.header.x-tenant': ['acme'],
      'http.response.header.content-type': ['application/json'],
      'http.response.header.x-cache': ['HIT'],
    });
    assert.equal(rec.spanContext, undefined);
    assert.equal(rec.droppedAttributesCount, 0);
    assert.deepEqual(rec.list.filter((_, i) => i % 2 === 0), Object.keys(rec.attributes), 'each key once, in this order');
    // What a consumer reads without parsing attributes back.
    assert.equal(rec.role, 'client');
    assert.equal(rec.method, 'GET');
    assert.equal(rec.status, 200);
    assert.equal(rec.durationNs, 2_500_000);
  });

  it('puts the observed process on the record\'s resource, and its attributes only there', () => {
    const rec = mapper().map(exchange());
    assert.deepEqual(rec.resource?.attributes, {
      'service.name': 'curl',
      'process.pid': 1234,
      'process.executable.name': 'curl',
      'container.id': 'c'.repeat(64),
      'host.name': 'host-a',
    });
    for (const key of Object.keys(rec.resource!.attributes)) assert.equal(rec.attributes[key], undefined, `${key} is not on the record too`);
  });

  it('leaves out a record attribute the process also sets as its own resource attribute', () => {
    const m = mapper(undefined, {
      processInfo: (pid) => ({ pid, executableName: 'app', resourceAttributes: { 'network.type': 'ipv4', 'url.full': 'set-by-app', 'error.type': 'set-by-app', 'deployment.environment.name': 'prod' } }),
    });
    const rec = m.map(exchange({ response: response({ status: 500 }) }));
    for (const key of ['url.full', 'error.type']) assert.equal(rec.attributes[key], undefined, `${key}: the resource's wins`);
    assert.equal(rec.resource?.attributes['network.type'], 'ipv4');
    assert.equal(rec.resource?.attributes['deployment.environment.name'], 'prod');
    assert.equal(rec.attributes['network.type'], undefined);
    assert.equal(rec.attributes['network.transport'], 'tcp', 'the others stay');
  });

  it('on the server side the client is the peer and the server is this end', () => {
    const ex = exchange({ role: 'server', request: request({ headers: [] }) });
    ex.connection = { ...ex.connection, local: { address: '10.0.0.1', port: 80 }, remote: { address: '10.0.0.9', port: 5555 } };
    const a = mapper().map(ex).attributes;
    assert.equal(a['server.address'], '10.0.0.1', 'no Host header: the socket');
    assert.equal(a['server.port'], 80);
    assert.equal(a['client.address'], '10.0.0.9');
    assert.equal(a['client.port'], 5555);
    assert.equal(a['headertap.role'], 'server');
  });

  it('keeps repeated headers as one array in wire order and redacts secrets by default', () => {
    const req = request({
      headers: ['authorization', 'Bearer abc.def', 'cookie', 'sid=1', 'x-auth-token', 't0k', 'accept', 'a', 'accept', 'b'],
    });
    const res = response({ headers: ['set-cookie', 'a=1', 'set-cookie', 'b=2', 'x-client-secret', 's'] });
    const a = mapper().map(exchange({ request: req, response: res })).attributes;
    assert.deepEqual(a['http.request.header.authorization'], ['[REDACTED]']);
    assert.deepEqual(a['http.request.header.cookie'], ['[REDACTED]']);
    assert.deepEqual(a['http.request.header.x-auth-token'], ['[REDACTED]']);
    assert.deepEqual(a['http.request.header.accept'], ['a', 'b']);
    assert.deepEqual(a['http.response.header.set-cookie'], ['[REDACTED]', '[REDACTED]']);
    assert.deepEqual(a['http.response.header.x-client-secret'], ['[REDACTED]']);
    assert.ok(!JSON.stringify(a).includes('abc.def'));
  });

  it('applies --capture-headers and --redact-headers globs case-insensitively', () => {
    const m = mapper({ capture: ['X-Tenant*', 'user-agent'], redact: ['USER-*'] });
    const a = m.map(exchange()).attributes;
    assert.deepEqual(
      Object.keys(a).filter((k) => k.includes('.header.')),
      ['http.request.header.user-agent', 'http.request.header.x-tenant'],
    );
    assert.deepEqual(a['http.request.header.user-agent'], ['[REDACTED]']);
    assert.equal(a['user_agent.original'], '[REDACTED]', 'a redacted header is redacted wherever it appears');
  });

  it('severity follows the outcome: WARN for 4xx, ERROR for 5xx and for no response', () => {
    const m = mapper();
    assert.equal(m.map(exchange({ response: response({ status: 404 }) })).severityText, 'WARN');
    assert.equal(m.map(exchange({ response: response({ status: 503 }) })).severityNumber, SeverityNumber.ERROR);
    const none = m.map(exchange({ response: undefined, unanswered: 'connection_closed' }));
    assert.equal(none.severityText, 'ERROR');
    assert.equal(none.body, 'GET /api/items -> no response');
    assert.equal(none.attributes['headertap.unanswered_reason'], 'connection_closed');
    assert.equal(none.attributes['http.response.status_code'], undefined);
    assert.equal(none.attributes['headertap.duration_ns'], undefined);
  });

  it('url.full on client records only: rebuilt from scheme, host, port, path and the redacted query, never with userinfo', () => {
    const m = mapper();
    const full = (over: Partial<HttpExchange>) => m.map(exchange(over)).attributes['url.full'];
    assert.equal(full({ role: 'server' }), undefined, 'semantic conventions: url.full is for clients');
    assert.equal(
      full({ request: request({ target: '/cb?access_token=abc&x=1&X-Amz-Credential=AKIA%2F1&sig=s1' }) }),
      'http://shop.test:8080/cb?access_token=[REDACTED]&x=1&X-Amz-Credential=[REDACTED]&sig=[REDACTED]',
      'the same query as url.query',
    );
    assert.equal(full({ request: request({ target: 'http://alice:pw@proxy.test/x?q=1' }) }), 'http://proxy.test/x?q=1', 'absolute form: no userinfo');
    assert.equal(full({ request: request({ headers: ['host', 'alice@shop.test:8080'] }) }), 'http://shop.test:8080/api/items?limit=5', 'nor from a Host');
    assert.equal(full({ request: request({ headers: ['host', 'shop.test'] }) }), 'http://shop.test/api/items?limit=5', "a Host without a port: the scheme's own");
    const tls = exchange({ request: request({ headers: ['host', 'shop.test:443'] }) });
    tls.connection = { ...tls.connection, tls: true };
    assert.equal(m.map(tls).attributes['url.full'], 'https://shop.test/api/items?limit=5', "the scheme's own port is left out");
    const v6 = exchange({ request: request({ target: '/', headers: [] }) });
    v6.connection = { ...v6.connection, networkType: 'ipv6', local: { address: '::1', port: 40000 }, remote: { address: '::1', port: 8443 } };
    assert.equal(m.map(v6).attributes['url.full'], 'http://[::1]:8443/', 'no Host: the peer, an IPv6 address in brackets');
    assert.equal(full({ request: request({ method: 'CONNECT', target: 'shop.test:443' }) }), undefined, 'CONNECT names no URL');
    assert.equal(full({ request: request({ method: 'OPTIONS', target: '*' }) }), undefined);
    assert.equal(full({ request: request({ target: '' }) }), undefined, 'a target that could not be decoded');
    assert.equal(mapper({ capture: DEFAULT_CAPTURE_HEADERS, redact: ['host'] }).map(exchange()).attributes['url.full'], 'http://127.0.0.2:8080/api/items?limit=5', 'a secret Host is not used');
  });

  it('error.type on the record, as semantic conventions say for each side; none when the exchange did not fail', () => {
    const m = mapper();
    const outcome = (over: Partial<HttpExchange>) => {
      const rec = m.map(exchange(over));
      assert.equal(rec.errorType, rec.attributes['error.type'], 'the typed field and the attribute agree');
      return rec.attributes['error.type'];
    };
    assert.equal(outcome({}), undefined, '200');
    assert.equal(outcome({ response: response({ status: 404 }) }), '404', 'a client fails on 4xx');
    assert.equal(outcome({ role: 'server', response: response({ status: 404 }) }), undefined, "a 4xx is the caller's error, not the server's");
    assert.equal(outcome({ role: 'server', response: response({ status: 503 }) }), '503');
    assert.equal(outcome({ response: response({ status: 500 }) }), '500');
    assert.equal(outcome({ response: undefined, unanswered: 'connection_closed' }), 'connection_closed', 'no response: why');
    assert.equal(outcome({ role: 'server', response: undefined, unanswered: 'stream_reset' }), 'stream_reset');
    assert.equal(outcome({ response: undefined }), '_OTHER');
    assert.equal(outcome({ response: response({ status: 0 }) }), '_OTHER', 'a status that could not be read');
  });

  it('reports an unknown method as _OTHER with the original kept', () => {
    const a = mapper().map(exchange({ request: request({ method: 'PURGE' }) })).attributes;
    assert.equal(a['http.request.method'], '_OTHER');
    assert.equal(a['http.request.method_original'], 'PURGE');
  });

  it('marks truncated headers with the reason', () => {
    const a = mapper().map(exchange({ response: response({ truncated: 'header_limit' }) })).attributes;
    assert.equal(a['headertap.truncated'], true);
    assert.equal(a['headertap.truncated_reason'], 'header_limit');
    assert.equal(mapper().map(exchange()).attributes['headertap.truncated'], undefined, 'absent when complete');
  });

  it('takes trace context from traceparent', () => {
    const tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
    const rec = mapper().map(exchange({ request: request({ headers: ['traceparent', tp] }) }));
    assert.deepEqual(rec.spanContext, {
      traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
      spanId: '00f067aa0ba902b7',
      traceFlags: 1,
      isRemote: true,
    });
  });

  it('HTTP/1.0 requests report protocol version 1.0', () => {
    const a = mapper().map(exchange({ request: request({ version: '1.0', headers: [] }), response: response({ version: '1.0' }) })).attributes;
    assert.equal(a['network.protocol.version'], '1.0');
    assert.equal(a['headertap.response.protocol_version'], undefined, 'both sides spoke 1.0: said once');
    assert.equal(a['server.address'], '127.0.0.2', 'no Host: the remote end of a client socket');
  });

  for (const role of ['client', 'server'] as const) {
    it(`${role} side: a server answering HTTP/1.0 to a 1.1 request: each side's version as sent`, () => {
      const a = mapper().map(exchange({ role, response: response({ version: '1.0' }) })).attributes;
      assert.equal(a['network.protocol.version'], '1.1', 'the request line');
      assert.equal(a['headertap.response.protocol_version'], '1.0', 'the status line');
    });
  }

  it('a request without a response has only the request line\'s version', () => {
    const a = mapper().map(exchange({ response: undefined, unanswered: 'connection_closed' })).attributes;
    assert.equal(a['network.protocol.version'], '1.1');
    assert.equal(a['headertap.response.protocol_version'], undefined);
  });
});


describe('ExchangeMapper: attribute budget (--max-attributes)', () => {
  const TP = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
  /** n request headers x-h0…, with traceparent, tracestate and x-tenant late in the list. */
  function manyHeaders(n: number): string[] {
    const h: string[] = [];
    for (let i = 0; i < n; i++) h.push(`x-h${i}`, `v${i}`);
    h.push('traceparent', TP, 'tracestate', 'v=1', 'x-tenant', 'acme');
    return h;
  }
  const resourceSize = (rec: Mapped) => Object.keys(rec.resource!.attributes).length;

  it('keeps a record with 300 headers within 128 - 9 attributes counting its resource, and says how many it left out and why', () => {
    const m = mapper();
    const rec = m.map(exchange({ request: request({ headers: manyHeaders(300) }) }));
    const count = Object.keys(rec.attributes).length;
    assert.equal(count + resourceSize(rec), DEFAULT_MAX_ATTRIBUTES);
    assert.equal(DEFAULT_MAX_ATTRIBUTES, 119, "Loki's 128 entries less the 9 it adds from the record and scope");
    // 303 request headers and 2 response headers would have been 305 header attributes.
    const headers = Object.keys(rec.attributes).filter((k) => k.includes('.header.')).length;
    assert.equal(rec.droppedAttributesCount, 305 - headers);
    assert.equal(rec.attributes['headertap.truncated'], true);
    assert.equal(rec.attributes['headertap.truncated_reason'], 'attribute_limit');
    assert.deepEqual(rec.attributes['http.request.header.traceparent'], [TP], 'trace context is kept first');
    assert.deepEqual(rec.attributes['http.request.header.tracestate'], ['v=1']);
    assert.equal(rec.attributes['url.path'], '/api/items', 'attributes other than headers stay');
    assert.equal(rec.attributes['http.response.status_code'], 200);
    assert.deepEqual(rec.spanContext?.traceId, '4bf92f3577b34da6a3ce929d0e0e4736');
    // Equal rank: request headers in wire order, the first ones kept.
    assert.deepEqual(rec.attributes['http.request.header.x-h0'], ['v0']);
    assert.equal(rec.attributes['http.request.header.x-h299'], undefined);
    assert.equal(rec.attributes['http.response.header.x-cache'], undefined, 'response headers after request ones');
    assert.deepEqual(m.counters, { limitedRecords: 1, droppedAttributes: rec.droppedAttributesCount });
  });

  it('keeps the headers of earlier --capture-headers globs first', () => {
    const rec = mapper({ capture: ['x-tenant', 'x-cache', '*'], redact: [] }).map(
      exchange({ request: request({ headers: manyHeaders(300) }), response: response({ headers: ['content-type', 'text/plain', 'x-cache', 'HIT'] }) }),
    );
    assert.deepEqual(rec.attributes['http.request.header.x-tenant'], ['acme']);
    assert.deepEqual(rec.attributes['http.response.header.x-cache'], ['HIT'], 'a response header named early in the globs beats request headers matched by *');
    assert.deepEqual(rec.attributes['http.request.header.traceparent'], [TP]);
    assert.equal(rec.attributes['http.response.header.content-type'], undefined);
  });

  it('adds its reason to one the parser gave, and keeps the record in the list order it was built', () => {
    const rec = mapper().map(exchange({ request: request({ headers: manyHeaders(200), truncated: 'header_limit' }) }));
    assert.equal(rec.attributes['headertap.truncated_reason'], 'header_limit,attribute_limit');
    assert.equal(Object.keys(rec.attributes).length + resourceSize(rec), DEFAULT_MAX_ATTRIBUTES);
    const keys = rec.list.filter((_, i) => i % 2 === 0) as string[];
    assert.equal(new Set(keys).size, keys.length, 'each key once');
    const firstHeader = keys.findIndex((k) => k.includes('.header.'));
    assert.ok(keys.slice(firstHeader).every((k) => k.includes('.header.')), 'headers after the other attributes');
  });

  it('leaves a record alone that fits, and honours a smaller or larger budget', () => {
    const m = mapper(undefined, { maxAttributes: 40 });
    const small = m.map(exchange());
    assert.equal(small.droppedAttributesCount, 0);
    assert.equal(small.attributes['headertap.truncated'], undefined);
    const cut = m.map(exchange({ request: request({ headers: manyHeaders(30) }) }));
    assert.equal(Object.keys(cut.attributes).length + resourceSize(cut), 40);
    const roomy = mapper(undefined, { maxAttributes: 1000 }).map(exchange({ request: request({ headers: manyHeaders(300) }) }));
    assert.equal(roomy.droppedAttributesCount, 0);
    assert.deepEqual(roomy.attributes['http.request.header.x-h299'], ['v299']);
  });

  it('with a budget smaller than the attributes besides headers, still never exceeds it', () => {
    const rec = mapper(undefined, { maxAttributes: 10 }).map(exchange());
    assert.equal(Object.keys(rec.attributes).length + resourceSize(rec), 10);
    assert.equal(rec.attributes['headertap.truncated_reason'], 'attribute_limit');
    assert.equal(rec.attributes['http.request.method'], 'GET', 'the first attributes are kept');
    assert.equal(rec.droppedAttributesCount, 21 + 5 - 3, '21 others and 5 headers, of which 3 kept (the 2 marks are new)');
  });
});

/** An HTTP/2 exchange as the http stage reports it: pseudo-headers in the head's fields. */
function h2Request(over: Partial<HttpRequestHead> = {}): HttpRequestHead {
  return request({
    version: '2',
    authority: 'shop.test:8443',
    scheme: 'https',
    headers: ['user-agent', 'nghttp2/1.52.0', 'x-tenant', 'acme'],
    ...over,
  });
}

function h2Response(over: Partial<HttpResponseHead> = {}): HttpResponseHead {
  return response({ version: '2', reason: '', headers: ['content-type', 'text/plain'], ...over });
}

function h2Exchange(over: Partial<HttpExchange> = {}): HttpExchange {
  return exchange({ request: h2Request(), response: h2Response(), ...over });
}

const GRPC_REQUEST = h2Request({
  method: 'POST',
  target: '/helloworld.Greeter/SayHello',
  scheme: 'http',
  headers: ['content-type', 'application/grpc', 'te', 'trailers', 'x-tenant', 'acme'],
});

describe('ExchangeMapper: HTTP/2', () => {
  it('maps pseudo-headers to the same attributes as HTTP/1 and never as header attributes', () => {
    const rec = mapper().map(h2Exchange());
    const a = rec.attributes;
    assert.equal(rec.body, 'GET /api/items -> 200');
    assert.equal(a['http.request.method'], 'GET');
    assert.equal(a['url.path'], '/api/items');
    assert.equal(a['url.query'], 'limit=5');
    assert.equal(a['url.scheme'], 'https', ':scheme wins over the socket');
    assert.equal(a['server.address'], 'shop.test');
    assert.equal(a['server.port'], 8443);
    assert.equal(a['network.protocol.version'], '2');
    assert.equal(a['http.response.status_code'], 200);
    assert.deepEqual(
      Object.keys(a).filter((k) => k.includes('.header.')),
      ['http.request.header.user-agent', 'http.request.header.x-tenant', 'http.response.header.content-type'],
    );
    assert.equal(a['rpc.system.name'], undefined, 'not gRPC');
  });

  it('leaves out what HPACK could not decode instead of guessing, and says why', () => {
    const rec = mapper().map(
      h2Exchange({
        request: h2Request({ method: '', target: '', authority: undefined, truncated: 'hpack_state_unknown' }),
        response: h2Response({ status: 0 }),
      }),
    );
    const a = rec.attributes;
    assert.equal(a['http.request.method'], undefined);
    assert.equal(a['url.path'], undefined);
    assert.equal(a['http.response.status_code'], undefined);
    assert.equal(a['server.address'], '127.0.0.2', 'no :authority: the peer');
    assert.equal(a['headertap.truncated'], true);
    assert.equal(a['headertap.truncated_reason'], 'hpack_state_unknown');
    assert.equal(rec.body, '? ? -> ?');
    assert.equal(rec.severityText, 'INFO');
  });

  it('does not use a redacted :authority (host globs) for server.address', () => {
    const a = mapper({ capture: DEFAULT_CAPTURE_HEADERS, redact: ['host'] }).map(h2Exchange()).attributes;
    assert.equal(a['server.address'], '127.0.0.2');
  });
});

describe('ExchangeMapper: gRPC (semantic conventions 1.45)', () => {
  const OK = h2Response({ headers: ['content-type', 'application/grpc', 'grpc-status', '0', 'grpc-message', ''] });
  const DEPRECATED = ['rpc.system', 'rpc.service', 'rpc.grpc.status_code'];

  it('adds rpc.system.name, the fully qualified rpc.method and rpc.status_code by name, from :path and the trailers', () => {
    const rec = mapper().map(h2Exchange({ request: GRPC_REQUEST, response: OK }));
    const a = rec.attributes;
    assert.equal(a['rpc.system.name'], 'grpc');
    assert.equal(a['rpc.method'], 'helloworld.Greeter/SayHello');
    assert.equal(a['rpc.status_code'], 'OK');
    assert.equal(a['rpc.method_original'], undefined, 'only when rpc.method is _OTHER');
    for (const k of DEPRECATED) assert.equal(a[k], undefined, `${k} only with rpc/dup`);
    assert.deepEqual(a['http.response.header.grpc-status'], ['0']);
    assert.deepEqual(a['http.request.header.x-tenant'], ['acme'], 'metadata stays as headers');
    assert.equal(rec.body, 'POST /helloworld.Greeter/SayHello -> 200 grpc OK');
    assert.equal(rec.severityText, 'INFO');
    assert.equal(rec.rpcSystem, 'grpc');
    assert.equal(rec.rpcMethod, 'helloworld.Greeter/SayHello');
  });

  it('with OTEL_SEMCONV_STABILITY_OPT_IN=rpc/dup also the deprecated names; rpc.method keeps the stable value', () => {
    const a = mapper(undefined, { rpcDup: true }).map(h2Exchange({ request: GRPC_REQUEST, response: OK })).attributes;
    assert.equal(a['rpc.system'], 'grpc');
    assert.equal(a['rpc.system.name'], 'grpc');
    assert.equal(a['rpc.service'], 'helloworld.Greeter');
    assert.equal(a['rpc.method'], 'helloworld.Greeter/SayHello');
    assert.equal(a['rpc.grpc.status_code'], 0);
    assert.equal(a['rpc.status_code'], 'OK');
  });

  it('UNIMPLEMENTED (a method the server does not know): rpc.method _OTHER, what was asked in rpc.method_original', () => {
    const unimplemented = h2Response({ headers: ['content-type', 'application/grpc', 'grpc-status', '12'] });
    const request = h2Request({ ...GRPC_REQUEST, target: '/helloworld.Greeter/Nope' });
    const rec = mapper(undefined, { rpcDup: true }).map(h2Exchange({ role: 'server', request, response: unimplemented }));
    assert.equal(rec.attributes['rpc.method'], '_OTHER');
    assert.equal(rec.attributes['rpc.method_original'], 'helloworld.Greeter/Nope');
    assert.equal(rec.attributes['rpc.status_code'], 'UNIMPLEMENTED');
    assert.equal(rec.attributes['rpc.service'], 'helloworld.Greeter', 'rpc/dup: the service as before');
    assert.equal(rec.rpcMethod, '_OTHER');
    assert.equal(rec.severityText, 'ERROR', 'a server error');
  });

  it('a :path that is not /Service/Method: rpc.method _OTHER; one that could not be decoded: no rpc.method', () => {
    for (const [target, original] of [
      ['/justone', 'justone'],
      ['/a/b/c', 'a/b/c'],
      ['/a.B/C?x=1', 'a.B/C?x=1'],
    ]) {
      const a = mapper().map(h2Exchange({ request: h2Request({ ...GRPC_REQUEST, target }), response: OK })).attributes;
      assert.equal(a['rpc.method'], '_OTHER', target);
      assert.equal(a['rpc.method_original'], original, target);
    }
    const rec = mapper().map(h2Exchange({ request: h2Request({ ...GRPC_REQUEST, target: '' }), response: OK }));
    assert.equal(rec.attributes['rpc.method'], undefined);
    assert.equal(rec.attributes['rpc.method_original'], undefined);
    assert.equal(rec.attributes['rpc.system.name'], 'grpc');
    assert.equal(rec.rpcMethod, undefined);
  });

  it('a non-OK status is an error for the client; for the server only server-side codes are', () => {
    const notFound = h2Response({ headers: ['content-type', 'application/grpc', 'grpc-status', '5', 'grpc-message', 'no%20such'] });
    const client = mapper().map(h2Exchange({ request: GRPC_REQUEST, response: notFound }));
    assert.equal(client.attributes['rpc.status_code'], 'NOT_FOUND');
    assert.equal(client.attributes['rpc.method'], 'helloworld.Greeter/SayHello');
    assert.equal(client.severityNumber, SeverityNumber.ERROR);
    assert.equal(client.body, 'POST /helloworld.Greeter/SayHello -> 200 grpc NOT_FOUND');
    assert.equal(mapper().map(h2Exchange({ role: 'server', request: GRPC_REQUEST, response: notFound })).severityText, 'WARN');
    const internal = h2Response({ headers: ['grpc-status', '13'] });
    assert.equal(mapper().map(h2Exchange({ role: 'server', request: GRPC_REQUEST, response: internal })).severityText, 'ERROR');
    const unnamed = mapper().map(h2Exchange({ request: GRPC_REQUEST, response: h2Response({ headers: ['grpc-status', '42'] }) }));
    assert.equal(unnamed.attributes['rpc.status_code'], '42', 'a code gRPC does not name: its number');
  });

  it('error.type of a call: any non-OK code for the client, the server errors for the server, by name', () => {
    const m = mapper();
    const status = (code: string) => h2Response({ headers: ['content-type', 'application/grpc', 'grpc-status', code] });
    const errorOf = (role: 'client' | 'server', code: string) => m.map(h2Exchange({ role, request: GRPC_REQUEST, response: status(code) })).attributes['error.type'];
    assert.deepEqual(
      ['0', '5', '13', '14', '12', '16', '42'].map((c) => [errorOf('client', c), errorOf('server', c)]),
      [
        [undefined, undefined],
        ['NOT_FOUND', undefined],
        ['INTERNAL', 'INTERNAL'],
        ['UNAVAILABLE', 'UNAVAILABLE'],
        ['UNIMPLEMENTED', 'UNIMPLEMENTED'],
        ['UNAUTHENTICATED', undefined],
        ['42', undefined],
      ],
    );
    const noStatus = m.map(h2Exchange({ request: GRPC_REQUEST, response: h2Response({ status: 503, headers: ['content-type', 'application/grpc'] }) }));
    assert.equal(noStatus.attributes['error.type'], '503', 'no grpc-status: the HTTP status decides');
    const none = m.map(h2Exchange({ request: GRPC_REQUEST, response: undefined, unanswered: 'stream_reset' }));
    assert.equal(none.attributes['error.type'], 'stream_reset');
  });

  it('a call still going (no trailers) or with no response has no status code', () => {
    const a = mapper().map(h2Exchange({ request: GRPC_REQUEST, response: h2Response({ headers: ['content-type', 'application/grpc'] }) })).attributes;
    assert.equal(a['rpc.method'], 'helloworld.Greeter/SayHello');
    assert.equal(a['rpc.status_code'], undefined);
    const none = mapper().map(h2Exchange({ request: GRPC_REQUEST, response: undefined, unanswered: 'stream_reset' }));
    assert.equal(none.attributes['rpc.method'], 'helloworld.Greeter/SayHello', 'no answer: taken as known');
    assert.equal(none.attributes['headertap.unanswered_reason'], 'stream_reset');
    assert.equal(none.severityText, 'ERROR');
  });

  it('is not gRPC over HTTP/1 (grpc-web) nor for other content types', () => {
    const h1 = h2Request({ version: '1.1', headers: ['content-type', 'application/grpc-web'] });
    const plain = mapper().map(h2Exchange({ request: h1 }));
    assert.equal(plain.attributes['rpc.system.name'], undefined);
    assert.equal(plain.rpcSystem, undefined);
    const json = h2Request({ method: 'POST', target: '/a/b', headers: ['content-type', 'application/json'] });
    assert.equal(mapper().map(h2Exchange({ request: json })).attributes['rpc.system.name'], undefined);
    const plus = h2Request({ method: 'POST', target: '/a.B/C', headers: ['content-type', 'application/grpc+proto'] });
    assert.equal(mapper().map(h2Exchange({ request: plus })).attributes['rpc.method'], 'a.B/C');
  });
});

describe('extractSpanContext', () => {
  it('ignores invalid, oversized and all-zero traceparents without throwing', () => {
    for (const bad of [
      'garbage',
      '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7',
      '00-00000000000000000000000000000000-00f067aa0ba902b7-01',
      '00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01',
      'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01',
      '00-' + 'a'.repeat(5000),
    ]) {
      assert.equal(extractSpanContext(['traceparent', bad]), undefined, bad.slice(0, 40));
    }
  });

  it('uses the first of repeated traceparent headers', () => {
    const sc = extractSpanContext([
      'traceparent',
      '00-11111111111111111111111111111111-2222222222222222-00',
      'traceparent',
      '00-33333333333333333333333333333333-4444444444444444-01',
    ]);
    assert.equal(sc?.traceId, '11111111111111111111111111111111');
    assert.equal(sc?.traceFlags, 0);
  });
});

describe('splitTarget / splitAuthority', () => {
  it('splits origin-form, absolute-form (dropping credentials), authority-form and *', () => {
    assert.deepEqual(splitTarget('/a/b?x=1&y=2', 'GET'), { path: '/a/b', query: 'x=1&y=2' });
    assert.deepEqual(splitTarget('/a?', 'GET'), { path: '/a' });
    assert.deepEqual(splitTarget('http://user:pw@proxy.test:3128/p?q=1#frag', 'GET'), {
      path: '/p',
      query: 'q=1',
      authority: 'proxy.test:3128',
    });
    assert.deepEqual(splitTarget('http://h.test', 'GET'), { path: '/', authority: 'h.test' });
    assert.deepEqual(splitTarget('db.test:5432', 'CONNECT'), { authority: 'db.test:5432' });
    assert.deepEqual(splitTarget('*', 'OPTIONS'), { path: '*' });
  });

  it('parses host, host:port and bracketed IPv6', () => {
    assert.deepEqual(splitAuthority('h.test'), { host: 'h.test' });
    assert.deepEqual(splitAuthority('h.test:81'), { host: 'h.test', port: 81 });
    assert.deepEqual(splitAuthority('[::1]:8443'), { host: '::1', port: 8443 });
    assert.deepEqual(splitAuthority('[2001:db8::1]'), { host: '2001:db8::1' });
    assert.equal(splitAuthority('bad:host:1'), undefined);
    assert.deepEqual(splitAuthority('h:99999'), { host: 'h' });
  });
});
