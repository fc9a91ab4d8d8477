/* global Buffer, setTimeout, setInterval */
/*
 * A two-service demo app traced with the OpenTelemetry SDK, for the
 * docker-compose demo: frontend -> backend over plain HTTP. Each service
 * makes its own SERVER span; the frontend wraps its call to the backend in a
 * CLIENT span and sends that span's id in `traceparent`. headertap, watching
 * the sockets, reads that header, so its records of the call (client side in
 * the frontend, server side in the backend) carry the same trace id and the
 * CLIENT span's id: in Grafana, that span's "Logs for this span" shows the
 * headers that crossed the wire.
 *
 * Environment:
 *   DEMO_ROLE            frontend | backend                      (frontend)
 *   PORT                 listen port                             (8080 / 8081)
 *   BACKEND_URL          where the frontend sends calls          (http://127.0.0.1:8081)
 *   LOADGEN_INTERVAL_MS  frontend only: call yourself this often (0: off)
 *   OTEL_SERVICE_NAME, OTEL_EXPORTER_OTLP_ENDPOINT (http://host:4318),
 *   OTEL_EXPORTER_OTLP_* as in every OpenTelemetry SDK.
 *
 * Paths: /api/items, /api/orders/<id> (200), /api/fail (500), /api/legacy
 * (the frontend "forgets" to propagate trace context: a call with no
 * traceparent, for the dashboard's missing-header panel), others 404.
 */
import http from 'node:http';
import { ROOT_CONTEXT, SpanKind, SpanStatusCode, defaultTextMapGetter, defaultTextMapSetter, trace } from '@opentelemetry/api';
import { W3CTraceContextPropagator } from '@opentelemetry/core';
import { OTLPTraceExporter } from '@opentelemetry/exporter-trace-otlp-proto';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { BasicTracerProvider, BatchSpanProcessor } from '@opentelemetry/sdk-trace-base';

const role = process.env.DEMO_ROLE || 'frontend';
const port = Number(process.env.PORT || (role === 'frontend' ? 8080 : 8081));
const backendUrl = process.env.BACKEND_URL || 'http://127.0.0.1:8081';
const loadgenMs = Number(process.env.LOADGEN_INTERVAL_MS || 0);

const provider = new BasicTracerProvider({
  resource: resourceFromAttributes({ 'service.name': process.env.OTEL_SERVICE_NAME || `demo-${role}` }),
  // The exporter reads OTEL_EXPORTER_OTLP_[TRACES_]ENDPOINT and appends /v1/traces.
  spanProcessors: [new BatchSpanProcessor(new OTLPTraceExporter(), { scheduledDelayMillis: 500 })],
});
const tracer = provider.getTracer('headertap-demo', '1.0.0');
const propagator = new W3CTraceContextPropagator();

/** Ends a span with the HTTP status, as the semantic conventions say. */
function finish(span, status, kind) {
  span.setAttribute('http.response.status_code', status);
  if (status >= 500 || (kind === SpanKind.CLIENT && status >= 400)) span.setStatus({ code: SpanStatusCode.ERROR });
  span.end();
}

/** The frontend's call to the backend, in a CLIENT span whose id goes out in traceparent. */
function callBackend(parent, path, tenant) {
  const span = tracer.startSpan(
    `GET ${path.startsWith('/api/orders/') ? '/api/orders/{id}' : path}`,
    { kind: SpanKind.CLIENT, attributes: { 'http.request.method': 'GET', 'url.full': backendUrl + path } },
    parent,
  );
  const headers = { 'x-tenant': tenant };
  // /api/legacy: a code path that drops the trace context.
  if (path !== '/api/legacy') propagator.inject(trace.setSpan(parent, span), headers, defaultTextMapSetter);
  return new Promise((resolve) => {
    const req = http.get(backendUrl + path, { headers }, (res) => {
      const chunks = [];
      res.on('data', (c) => chunks.push(c));
      res.on('end', () => {
        finish(span, res.statusCode, SpanKind.CLIENT);
        resolve({ status: res.statusCode, body: Buffer.concat(chunks) });
      });
    });
    req.on('error', (err) => {
      span.recordException(err);
      finish(span, 502, SpanKind.CLIENT);
      resolve({ status: 502, body: Buffer.from(`backend unreachable: ${err.message}\n`) });
    });
  });
}

function backendAnswer(path) {
  if (path === '/api/items' || path === '/api/legacy') return [200, { items: ['a', 'b', 'c'] }];
  if (path.startsWith('/api/orders/')) return [200, { order: path.slice('/api/orders/'.length), state: 'shipped' }];
  if (path === '/api/fail') return [500, { error: 'simulated failure' }];
  return [404, { error: 'not found' }];
}

const server = http.createServer((req, res) => {
  const path = (req.url || '/').split('?')[0];
  const parent = propagator.extract(ROOT_CONTEXT, req.headers, defaultTextMapGetter);
  const span = tracer.startSpan(
    `${req.method} ${path.startsWith('/api/orders/') ? '/api/orders/{id}' : path}`,
    { kind: SpanKind.SERVER, attributes: { 'http.request.method': req.method, 'url.path': path } },
    parent,
  );
  const reply = (status, body, type) => {
    res.writeHead(status, { 'content-type': type, 'x-demo-service': role });
    res.end(body);
    finish(span, status, SpanKind.SERVER);
  };
  if (role === 'backend') {
    const [status, body] = backendAnswer(path);
    setTimeout(() => reply(status, JSON.stringify(body) + '\n', 'application/json'), 5 + Math.random() * 20);
    return;
  }
  const tenant = String(req.headers['x-tenant'] || 'anonymous');
  void callBackend(trace.setSpan(parent, span), path, tenant).then((r) => reply(r.status, r.body, 'application/json'));
});

server.listen(port, () => process.stderr.write(`demo ${role} listening on :${port}\n`));

if (role === 'frontend' && loadgenMs > 0) {
  const paths = ['/api/items', '/api/items', '/api/orders/17', '/api/orders/42', '/api/fail', '/api/legacy', '/nope'];
  const tenants = ['acme', 'globex', 'initech'];
  const timer = setInterval(() => {
    const path = paths[Math.floor(Math.random() * paths.length)];
    const tenant = tenants[Math.floor(Math.random() * tenants.length)];
    // An untraced client (no traceparent): the frontend starts each trace.
    http.get(`http://127.0.0.1:${port}${path}`, { headers: { 'x-tenant': tenant, 'user-agent': 'demo-loadgen/1.0' } }, (res) => res.resume()).on('error', () => {});
  }, loadgenMs);
  timer.unref();
}

function stop() {
  server.close();
  void provider.shutdown().finally(() => process.exit(0));
}
process.once('SIGTERM', stop);
process.once('SIGINT', stop);
