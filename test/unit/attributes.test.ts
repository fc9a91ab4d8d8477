import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { SeverityNumber } from '@opentelemetry/api-logs';
import type { HttpExchange, HttpRequestHead, HttpResponseHead } from '../../src/http';
import {
  DEFAULT_CAPTURE_HEADERS,
  DEFAULT_REDACT_HEADERS,
  ExchangeMapper,
  HeaderRules,
  extractSpanContext,
  splitAuthority,
  splitTarget,
} from '../../src/otel';

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

function mapper(rules = { capture: DEFAULT_CAPTURE_HEADERS, redact: DEFAULT_REDACT_HEADERS }) {
  return new ExchangeMapper({
    rules: new HeaderRules(rules),
    toHrTime: (ns) => [1_700_000_000 + Math.floor(ns / 1e9), ns % 1e9],
    processInfo: (pid) => ({ pid, executableName: 'curl', containerId: 'c'.repeat(64) }),
  });
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
      'client.address': '127.0.0.1',
      'client.port': 45678,
      'network.peer.address': '127.0.0.2',
      'network.peer.port': 8080,
      'network.local.address': '127.0.0.1',
      'network.local.port': 45678,
      'network.transport': 'tcp',
      'network.type': 'ipv4',
      'user_agent.original': 'curl/8.0',
      'process.pid': 1234,
      'process.executable.name': 'curl',
      'container.id': 'c'.repeat(64),
      'headertap.role': 'client',
      'headertap.duration_ns': 2_500_000,
      'http.request.header.host': ['shop.test:8080'],
      'http.request.header.user-agent': ['curl/8.0'],
      'http.request.header.x-tenant': ['acme'],
      'http.response.header.content-type': ['application/json'],
      'http.response.header.x-cache': ['HIT'],
    });
    assert.equal(rec.spanContext, undefined);
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
    const a = mapper().map(exchange({ request: request({ version: '1.0', headers: [] }) })).attributes;
    assert.equal(a['network.protocol.version'], '1.0');
    assert.equal(a['server.address'], '127.0.0.2', 'no Host: the remote end of a client socket');
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
