import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SeverityNumber } from '@opentelemetry/api-logs';
import type { HttpExchange, HttpRequestHead, HttpResponseHead } from '../../src/http';
import { DEFAULT_CAPTURE_HEADERS, DEFAULT_REDACT_HEADERS, ExchangeMapper, HeaderRules } from '../../src/otel';

function request(over: Partial<HttpRequestHead> = {}): HttpRequestHead {
  return {
    kind: 'request',
    version: '2',
    method: 'GET',
    target: '/api/items?limit=5',
    authority: 'shop.test:8443',
    scheme: 'https',
    headers: ['user-agent', 'nghttp2/1.52.0', 'x-tenant', 'acme'],
    headBytes: 40,
    startNs: 1_000_000,
    endNs: 1_000_500,
    ...over,
  };
}

function response(over: Partial<HttpResponseHead> = {}): HttpResponseHead {
  return {
    kind: 'response',
    version: '2',
    status: 200,
    reason: '',
    headers: ['content-type', 'text/plain'],
    headBytes: 10,
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
      comm: 'nghttp',
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

const GRPC_REQUEST = request({
  method: 'POST',
  target: '/helloworld.Greeter/SayHello',
  scheme: 'http',
  headers: ['content-type', 'application/grpc', 'te', 'trailers', 'x-tenant', 'acme'],
});

function mapper(redact = DEFAULT_REDACT_HEADERS) {
  return new ExchangeMapper({
    rules: new HeaderRules({ capture: DEFAULT_CAPTURE_HEADERS, redact }),
    toHrTime: (ns) => [1_700_000_000, ns],
    processInfo: (pid) => ({ pid, executableName: 'nghttp' }),
  });
}

describe('ExchangeMapper: HTTP/2', () => {
  it('maps pseudo-headers to the same attributes as HTTP/1 and never as header attributes', () => {
    const rec = mapper().map(exchange());
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
    assert.equal(a['rpc.system'], undefined, 'not gRPC');
  });

  it('leaves out what HPACK could not decode instead of guessing, and says why', () => {
    const rec = mapper().map(
      exchange({
        request: request({ method: '', target: '', authority: undefined, truncated: 'hpack_state_unknown' }),
        response: response({ status: 0 }),
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
    const a = mapper(['host']).map(exchange()).attributes;
    assert.equal(a['server.address'], '127.0.0.2');
  });
});

describe('ExchangeMapper: gRPC', () => {
  it('adds rpc.* from :path and grpc-status from the trailers', () => {
    const rec = mapper().map(
      exchange({
        request: GRPC_REQUEST,
        response: response({ headers: ['content-type', 'application/grpc', 'grpc-status', '0', 'grpc-message', ''] }),
      }),
    );
    const a = rec.attributes;
    assert.equal(a['rpc.system'], 'grpc');
    assert.equal(a['rpc.system.name'], 'grpc');
    assert.equal(a['rpc.service'], 'helloworld.Greeter');
    assert.equal(a['rpc.method'], 'SayHello');
    assert.equal(a['rpc.grpc.status_code'], 0);
    assert.equal(a['rpc.status_code'], 'OK');
    assert.deepEqual(a['http.response.header.grpc-status'], ['0']);
    assert.deepEqual(a['http.request.header.x-tenant'], ['acme'], 'metadata stays as headers');
    assert.equal(rec.body, 'POST /helloworld.Greeter/SayHello -> 200 grpc OK');
    assert.equal(rec.severityText, 'INFO');
  });

  it('a non-OK status is an error for the client; for the server only server-side codes are', () => {
    const notFound = response({ headers: ['content-type', 'application/grpc', 'grpc-status', '5', 'grpc-message', 'no%20such'] });
    const client = mapper().map(exchange({ request: GRPC_REQUEST, response: notFound }));
    assert.equal(client.attributes['rpc.grpc.status_code'], 5);
    assert.equal(client.attributes['rpc.status_code'], 'NOT_FOUND');
    assert.equal(client.severityNumber, SeverityNumber.ERROR);
    assert.equal(client.body, 'POST /helloworld.Greeter/SayHello -> 200 grpc NOT_FOUND');
    assert.equal(mapper().map(exchange({ role: 'server', request: GRPC_REQUEST, response: notFound })).severityText, 'WARN');
    const internal = response({ headers: ['grpc-status', '13'] });
    assert.equal(mapper().map(exchange({ role: 'server', request: GRPC_REQUEST, response: internal })).severityText, 'ERROR');
  });

  it('a call still going (no trailers) or with no response has no status code', () => {
    const a = mapper().map(exchange({ request: GRPC_REQUEST, response: response({ headers: ['content-type', 'application/grpc'] }) })).attributes;
    assert.equal(a['rpc.method'], 'SayHello');
    assert.equal(a['rpc.grpc.status_code'], undefined);
    const none = mapper().map(exchange({ request: GRPC_REQUEST, response: undefined, unanswered: 'stream_reset' }));
    assert.equal(none.attributes['rpc.service'], 'helloworld.Greeter');
    assert.equal(none.attributes['headertap.unanswered_reason'], 'stream_reset');
    assert.equal(none.severityText, 'ERROR');
  });

  it('is not gRPC over HTTP/1 (grpc-web) nor for other content types', () => {
    const h1 = request({ version: '1.1', headers: ['content-type', 'application/grpc-web'] });
    assert.equal(mapper().map(exchange({ request: h1 })).attributes['rpc.system'], undefined);
    const json = request({ method: 'POST', target: '/a/b', headers: ['content-type', 'application/json'] });
    assert.equal(mapper().map(exchange({ request: json })).attributes['rpc.system'], undefined);
    const plus = request({ method: 'POST', target: '/a.B/C', headers: ['content-type', 'application/grpc+proto'] });
    assert.equal(mapper().map(exchange({ request: plus })).attributes['rpc.method'], 'C');
  });
});
