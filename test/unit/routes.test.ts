import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { HttpExchange } from '../../src/http';
import { DEFAULT_CAPTURE_HEADERS, DEFAULT_REDACT_HEADERS, ExchangeMapper, HeaderRules } from '../../src/otel';
import { attributeOf } from '../../src/otel/record';
import type { ProcessInfo } from '../../src/workload';
import { compileRoutePattern, heuristicRoute, isIdSegment, LiveRoutes, OVERFLOW_ROUTE, Routes } from '../../src/otel/routes';
import { spanName } from '../../src/otel/spans';
import { prng } from '../helpers/prng';

type Gen = () => string;

function corpus(seed: number) {
  const r = prng(seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)];
  const int = (lo: number, hi: number) => lo + Math.floor(r() * (hi - lo));
  const chars = (alphabet: string, n: number) => Array.from({ length: n }, () => alphabet[Math.floor(r() * alphabet.length)]).join('');
  const hex = (n: number) => chars('0123456789abcdef', n);
  const uuid = () => `${hex(8)}-${hex(4)}-4${hex(3)}-a${hex(3)}-${hex(12)}`;
  const b64url = (n: number) => chars('ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_', n);
  const ulid = () => chars('0123456789ABCDEFGHJKMNPQRSTVWXYZ', 26);
  const words = ['red', 'shoes', 'winter', 'sale', 'classic', 'denim', 'jacket', 'linen', 'summer', 'dress', 'running', 'boots', 'wool'];
  const slug = () => `${Array.from({ length: int(3, 6) }, () => pick(words)).join('-')}-${int(100, 99999)}`;
  const date = () => `20${int(10, 30)}-${String(int(1, 13)).padStart(2, '0')}-${String(int(1, 29)).padStart(2, '0')}`;
  const email = () => `${pick(words)}.${pick(words)}${int(1, 99)}@example.com`;
  const id = () => String(int(1, 10_000_000));
  // [route the heuristic must give, a generator of paths]
  const templates: [string, Gen][] = [
    ['/', () => '/'],
    ['/health', () => '/health'],
    ['/healthz', () => '/healthz'],
    ['/metrics', () => '/metrics'],
    ['/favicon.ico', () => '/favicon.ico'],
    ['/login', () => '/login'],
    ['/oauth2/token', () => '/oauth2/token'],
    ['/api/v1/users', () => '/api/v1/users'],
    ['/api/v1/users/{id}', () => `/api/v1/users/${id()}`],
    ['/api/v1/users/{id}/orders', () => `/api/v1/users/${id()}/orders`],
    ['/api/v1/users/{id}/orders/{id}', () => `/api/v1/users/${id()}/orders/${uuid()}`],
    ['/api/v1/users/me', () => '/api/v1/users/me'],
    ['/api/v1/users/me/getUserProfile', () => '/api/v1/users/me/getUserProfile'],
    ['/api/v2/items/{id}', () => `/api/v2/items/${uuid()}`],
    ['/api/v2/items/{id}/reviews', () => `/api/v2/items/${uuid().replace(/-/g, '')}/reviews`],
    ['/api/v2/items/{id}/images/{id}', () => `/api/v2/items/${id()}/images/${id()}`],
    ['/catalog/products/{id}', () => `/catalog/products/${slug()}`],
    ['/catalog/categories/{id}', () => `/catalog/categories/${int(100, 9999)}`],
    ['/catalog/search', () => '/catalog/search'],
    ['/carts/{id}', () => `/carts/${hex(24)}`], // Mongo ObjectId
    ['/carts/{id}/items/{id}', () => `/carts/${hex(24)}/items/${int(1, 50)}`],
    ['/commits/{id}', () => `/commits/${hex(40)}`], // sha1
    ['/sessions/{id}', () => `/sessions/${b64url(22)}`],
    ['/invites/{id}/accept', () => `/invites/${b64url(32)}/accept`],
    ['/events/{id}', () => `/events/${ulid()}`],
    ['/reports/daily/{id}', () => `/reports/daily/${date()}`],
    ['/accounts/{id}/settings', () => `/accounts/${email()}/settings`],
    ['/static/js/{id}', () => `/static/js/main.${hex(8)}.js`],
    ['/static/css/site.css', () => '/static/css/site.css'],
    ['/files/{id}', () => `/files/${b64url(48)}`],
    ['/tenants/{id}/projects/{id}/builds/{id}', () => `/tenants/${hex(12)}/projects/${int(1, 900)}/builds/${int(1000, 99999)}`],
    ['/jsessionid/cart', () => `/jsessionid/cart;jsessionid=${hex(32)}`],
    ['/opentelemetry.proto.collector.trace.v1.TraceService/Export', () => '/opentelemetry.proto.collector.trace.v1.TraceService/Export'],
    ['/shop.v1.Cart/AddItem', () => '/shop.v1.Cart/AddItem'],
    ['/webhooks/stripe', () => '/webhooks/stripe'],
    ['/v1/orders/{id}/refunds/{id}', () => `/v1/orders/ord_${b64url(14)}${int(100, 999)}/refunds/re_${hex(16)}`],
  ];
  return { templates, pick };
}

describe('heuristic routes: id-like segments become {id}', () => {
  it('collapses numbers, UUIDs, hex, base64 tokens, long random strings, e-mails and dates', () => {
    for (const seg of [
      '42',
      '0',
      'f47ac10b-58cc-4372-a567-0e02b2c3d479',
      'f47ac10b58cc4372a5670e02b2c3d479',
      '5f1d7a3b9c2e4d6f8a0b1c2d',
      'deadbeef01',
      'order-12345',
      '2024-05-01',
      'dGhpcyBpcyBhIHRva2Vu',
      'QmFzZTY0VXJsVG9rZW5fLTEyMzQ',
      'a'.repeat(33),
      'how-to-build-a-rest-api-in-node-js-quickly',
      'jane.doe@example.com',
      '01HZX3Q9B7K2M4N6P8R0S2T4V6',
    ]) {
      assert.equal(isIdSegment(seg), true, seg);
    }
  });

  it('keeps names: versions, words, camelCase, short mixed names', () => {
    for (const seg of ['api', 'v1', 'v2', 'oauth2', 'ipv6', 's3', 'users', 'me', 'getUserProfile', 'getUserProfileSettings', 'favicon.ico', 'site.css', 'TraceService', 'AddItem', 'x509']) {
      assert.equal(isIdSegment(seg), seg === 'x509', seg); // three digits anywhere: an id, even in x509 (documented)
    }
  });

  it('cuts ;params (session ids) and caps the depth', () => {
    assert.equal(heuristicRoute('/cart;jsessionid=ABC123'), '/cart');
    assert.equal(heuristicRoute('/'), '/');
    assert.equal(heuristicRoute('/a/'), '/a/');
    const deep = `/${Array.from({ length: 20 }, (_, i) => `s${String.fromCharCode(97 + i)}`).join('/')}`;
    const route = heuristicRoute(deep);
    assert.ok(route.endsWith('/**'), route);
    assert.equal(route.split('/').length, 14); // '' + 12 segments + '**'
  });

  it('gives a 5000-path corpus of realistic traffic a few dozen routes, each the expected one', () => {
    const { templates, pick } = corpus(18);
    const routes = new Routes({ rules: [] });
    const workload = proc('shop');
    const key = {};
    const distinct = new Set<string>();
    const distinctPaths = new Set<string>();
    for (let i = 0; i < 5000; i++) {
      const [expected, gen] = pick(templates);
      const path = gen();
      distinctPaths.add(path);
      const route = routes.routeFor(workload, key, path);
      assert.equal(route, expected, `${path} -> ${route}, expected ${expected}`);
      distinct.add(route!);
    }
    assert.equal(distinct.size, templates.length);
    assert.equal(routes.counters.overflowed, 0);
    assert.ok(distinctPaths.size > 2500, `the corpus has ${distinctPaths.size} distinct paths`);
    // The figure the README quotes.
    console.log(`# route corpus: 5000 paths (${distinctPaths.size} distinct) -> ${distinct.size} routes, 0 overflowed`);
  });
});

function proc(serviceName: string, executableName = 'node'): ProcessInfo {
  return { pid: 1, executableName, serviceName };
}

describe('route patterns from the config', () => {
  it('match {name} one segment, {name...} and ** the rest, literals exactly', () => {
    const p = compileRoutePattern('/api/items/{id}');
    assert.equal(p.test('/api/items/42'), true);
    assert.equal(p.test('/api/items/42/reviews'), false);
    assert.equal(p.test('/api/items/'), false);
    const rest = compileRoutePattern('/static/**');
    assert.equal(rest.test('/static'), true);
    assert.equal(rest.test('/static/js/app.js'), true);
    assert.equal(rest.test('/staticfoo'), false);
    assert.equal(compileRoutePattern('/docs/{path...}').test('/docs/a/b/c'), true);
    assert.equal(compileRoutePattern('/files/{name}.json').test('/files/report.json'), true);
    assert.equal(compileRoutePattern('/files/{name}.json').test('/files/report.xml'), false);
    assert.equal(compileRoutePattern('/a.b/*').test('/aXb/1'), false); // '.' is literal
  });

  it('refuses patterns that are not paths, with the reason', () => {
    assert.throws(() => compileRoutePattern('api/items'), /does not start with '\/'/);
    assert.throws(() => compileRoutePattern('/a/**/b'), /must come last/);
    assert.throws(() => compileRoutePattern('/a/{x'), /not a \{name\} placeholder/);
    assert.throws(() => compileRoutePattern('/a?b=1'), /a route is a path/);
  });

  it('apply to the workloads they match, before the heuristic; others get the heuristic', () => {
    const routes = new Routes({
      rules: [
        { match: { serviceNames: ['shop'] }, patterns: ['/api/items/{item}', '/products/{sku}'] },
        { patterns: ['/health/**'] },
      ],
    });
    assert.equal(routes.routeFor(proc('shop'), {}, '/api/items/42'), '/api/items/{item}');
    assert.equal(routes.routeFor(proc('shop'), {}, '/products/red-shoes'), '/products/{sku}');
    assert.equal(routes.routeFor(proc('shop'), {}, '/health/live'), '/health/**');
    assert.equal(routes.routeFor(proc('cart'), {}, '/api/items/42'), '/api/items/{id}');
    assert.equal(routes.routeFor(proc('cart'), {}, '/products/red-shoes'), '/products/red-shoes');
    assert.equal(routes.routeFor(proc('cart'), {}, '/health/ready'), '/health/**');
    assert.equal(routes.routeFor(proc('cart'), {}, '*'), undefined);
  });

  it('scoped by port, apply to connections on that port only', () => {
    const routes = new Routes({ rules: [{ match: { ports: [8080] }, patterns: ['/p/{x}'] }] });
    const conn = (port: number) => ({ local: { address: '127.0.0.1', port }, remote: { address: '127.0.0.1', port: 40000 } }) as never;
    const key = {};
    assert.equal(routes.routeFor(proc('a'), key, '/p/name', conn(8080)), '/p/{x}');
    assert.equal(routes.routeFor(proc('a'), key, '/p/name', conn(9090)), '/p/name');
  });
});

describe('--max-routes: distinct routes per workload are capped', () => {
  it('sends new routes past the cap to /** and counts each record; known routes keep matching', () => {
    const routes = new Routes({ rules: [], maxRoutes: 3 });
    const w = proc('shop');
    const key = {};
    assert.equal(routes.routeFor(w, key, '/a'), '/a');
    assert.equal(routes.routeFor(w, key, '/b/1'), '/b/{id}');
    assert.equal(routes.routeFor(w, key, '/c'), '/c');
    assert.equal(routes.routeFor(w, key, '/d'), OVERFLOW_ROUTE);
    assert.equal(routes.routeFor(w, key, '/d'), OVERFLOW_ROUTE);
    assert.equal(routes.routeFor(w, key, '/b/2'), '/b/{id}');
    assert.equal(routes.counters.overflowed, 2);
    // another workload has a cap of its own
    assert.equal(routes.routeFor(proc('cart'), {}, '/d'), '/d');
  });

  it('keeps a flood of distinct random path words within the cap', () => {
    const routes = new Routes({ rules: [], maxRoutes: 50 });
    const r = prng(7);
    const key = {};
    const seen = new Set<string>();
    for (let i = 0; i < 20_000; i++) seen.add(routes.routeFor(proc('x'), key, `/w/${Math.floor(r() * 1e6).toString(36).replace(/\d/g, 'q')}`)!);
    assert.ok(seen.size <= 51, `${seen.size} routes`);
    assert.ok(seen.has(OVERFLOW_ROUTE));
    assert.ok(routes.counters.overflowed > 19_000);
  });

  it('a live swap starts the routes over and keeps the counters', () => {
    const counters = { overflowed: 0 };
    const live = new LiveRoutes(new Routes({ rules: [], maxRoutes: 1 }, counters));
    const key = {};
    live.routeFor(proc('a'), key, '/a');
    assert.equal(live.routeFor(proc('a'), key, '/b'), OVERFLOW_ROUTE);
    live.swap(new Routes({ rules: [{ patterns: ['/b'] }], maxRoutes: 10 }, counters));
    assert.equal(live.routeFor(proc('a'), key, '/b'), '/b');
    assert.equal(counters.overflowed, 1);
  });
});

describe('span names with routes', () => {
  it('are "METHOD route" when there is a route, the method alone otherwise', () => {
    assert.equal(spanName({ method: 'GET', route: '/api/items/{id}' }), 'GET /api/items/{id}');
    assert.equal(spanName({ method: 'BREW', route: '/pot' }), 'HTTP /pot');
    assert.equal(spanName({ method: 'GET' }), 'GET');
  });
});

describe('ExchangeMapper with routes', () => {
  const ex = (role: 'client' | 'server', target: string): HttpExchange => ({
    role,
    connection: { pid: 7, comm: 'node', networkType: 'ipv4', local: { address: '127.0.0.1', port: 8080 }, remote: { address: '127.0.0.1', port: 40000 }, tls: false },
    request: { kind: 'request', method: 'GET', target, version: '1.1', headers: ['host', 'shop'], headBytes: 40, startNs: 1000, endNs: 1100 },
    response: { kind: 'response', status: 200, reason: 'OK', version: '1.1', headers: [], headBytes: 20, startNs: 2000, endNs: 2100 },
  });
  const m = new ExchangeMapper({
    rules: new HeaderRules({ capture: DEFAULT_CAPTURE_HEADERS, redact: DEFAULT_REDACT_HEADERS }),
    toHrTime: (ns) => [0, ns],
    processInfo: (pid) => ({ pid, executableName: 'node', serviceName: 'shop' }),
    workloads: { hostName: 'h' },
    routes: new Routes({ rules: [{ match: { serviceNames: ['shop'] }, patterns: ['/api/items/{item}'] }] }),
  });

  it('sets http.route on the server side and url.template on the client side, and the record field', () => {
    const server = m.map(ex('server', '/api/items/42?x=1'));
    assert.equal(attributeOf(server.attributes, 'http.route'), '/api/items/{item}');
    assert.equal(attributeOf(server.attributes, 'url.template'), undefined);
    assert.equal(server.route, '/api/items/{item}');
    const client = m.map(ex('client', '/users/9f8e7d6c5b4a'));
    assert.equal(attributeOf(client.attributes, 'url.template'), '/users/{id}');
    assert.equal(attributeOf(client.attributes, 'http.route'), undefined);
    assert.equal(spanName(server), 'GET /api/items/{item}');
  });

  it('leaves the route out without routes configured', () => {
    const plain = new ExchangeMapper({
      rules: new HeaderRules({ capture: DEFAULT_CAPTURE_HEADERS, redact: DEFAULT_REDACT_HEADERS }),
      toHrTime: (ns) => [0, ns],
      processInfo: (pid) => ({ pid, executableName: 'node' }),
      workloads: { hostName: 'h' },
    });
    const rec = plain.map(ex('server', '/api/items/42'));
    assert.equal(attributeOf(rec.attributes, 'http.route'), undefined);
    assert.equal(rec.route, undefined);
  });
});
