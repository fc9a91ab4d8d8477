/**
 * Header rules as records show them: capture/exclude per side, redaction by
 * default and by custom globs, keyed hashing, secrets in query strings, URLs
 * and command lines. Each test checks the record the mapper actually built.
 */
import assert from 'node:assert/strict';
import { createHmac } from 'node:crypto';
import { readFileSync } from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { PACKAGE_ROOT } from '../../src/common/paths';
import type { HttpExchange } from '../../src/http';
import { DEFAULT_CAPTURE_HEADERS, DEFAULT_REDACT_HEADERS, ExchangeMapper, HeaderRules } from '../../src/otel';
import { attributesObject } from '../../src/otel/record';
import { redactArgs, redactQuery, redactUrl } from '../../src/otel/redact';
import type { HeaderRulesConfig } from '../../src/otel/headers';

const KEY = Buffer.from('0123456789abcdef-test-key');
const OTHER_KEY = Buffer.from('fedcba9876543210-other-key');

function rules(over: Partial<HeaderRulesConfig> = {}): HeaderRules {
  return new HeaderRules({ capture: DEFAULT_CAPTURE_HEADERS, redact: DEFAULT_REDACT_HEADERS, ...over });
}

function exchange(reqHeaders: string[], resHeaders: string[] = [], target = '/p'): HttpExchange {
  return {
    role: 'server',
    connection: {
      pid: 7,
      comm: 'srv',
      networkType: 'ipv4',
      local: { address: '127.0.0.1', port: 80 },
      remote: { address: '127.0.0.1', port: 5000 },
      tls: false,
    },
    request: { kind: 'request', method: 'GET', target, version: '1.1', headers: reqHeaders, headBytes: 10, startNs: 1, endNs: 2 },
    response: { kind: 'response', status: 200, reason: 'OK', version: '1.1', headers: resHeaders, headBytes: 10, startNs: 3, endNs: 4 },
  };
}

/** The mapped record, its attributes as an object. */
function record(r: HeaderRules, ex: HttpExchange) {
  const rec = new ExchangeMapper({
    rules: r,
    toHrTime: () => [0, 0],
    processInfo: (pid) => ({ pid, executableName: 'srv' }),
  }).map(ex);
  return { ...rec, attributes: attributesObject(rec.attributes) };
}

function headerAttrs(r: HeaderRules, ex: HttpExchange): Record<string, unknown> {
  const a = record(r, ex).attributes;
  return Object.fromEntries(Object.entries(a).filter(([k]) => k.includes('.header.')));
}

const expectedHash = (key: Buffer, value: string) => `sha256:${createHmac('sha256', key).update(value).digest('hex').slice(0, 16)}`;

describe('header rules: redaction', () => {
  it('redacts the DESIGN.md default list, in requests and responses, any case', () => {
    const secrets = ['authorization', 'proxy-authorization', 'cookie', 'x-api-key', 'x-auth-token', 'x-client-secret', 'db-password'];
    const req = secrets.flatMap((n, i) => [n, `S3CRET-${i}`]);
    const a = headerAttrs(rules(), exchange(req, ['set-cookie', 'sid=S3CRET-sc']));
    for (const n of secrets) assert.deepEqual(a[`http.request.header.${n}`], ['[REDACTED]'], n);
    assert.deepEqual(a['http.response.header.set-cookie'], ['[REDACTED]']);
    assert.ok(!JSON.stringify(record(rules(), exchange(req))).includes('S3CRET'));
  });

  it('custom --redact-headers globs replace the default list', () => {
    const a = headerAttrs(rules({ redact: ['X-Internal-*'] }), exchange(['x-internal-id', 'v1', 'authorization', 'Basic x']));
    assert.deepEqual(a['http.request.header.x-internal-id'], ['[REDACTED]']);
    assert.deepEqual(a['http.request.header.authorization'], ['Basic x'], 'the defaults are replaced, not added to');
  });
});

/**
 * The default --redact-headers list, glob by glob, with names each one must
 * hide (as a header and as a query parameter). A glob added to or removed
 * from DEFAULT_REDACT_HEADERS fails the first test until it is listed here.
 */
const DEFAULT_LIST_EXAMPLES: Record<string, string[]> = {
  authorization: ['authorization'],
  'proxy-authorization': ['proxy-authorization'],
  cookie: ['cookie'],
  'set-cookie': ['set-cookie'],
  'x-api-key': ['x-api-key'],
  '*token*': ['x-auth-token', 'access_token', 'x-amz-security-token', 'x-csrftoken', 'private-token', 'id_token'],
  '*secret*': ['x-client-secret', 'client_secret'],
  '*password*': ['db-password', 'password'],
  '*auth*': ['x-authorization', 'x-auth', 'oauth_signature', 'authentication-info'],
  '!www-authenticate': [],
  '!proxy-authenticate': [],
  '*cookie*': ['set-cookie2', 'x-forwarded-cookie'],
  '*api-key*': ['x-goog-api-key', 'api-key', 'x-api-key-id'],
  '*api_key*': ['api_key', 'x_api_key'],
  '*apikey*': ['apikey', 'x-apikey'],
  key: ['key'],
  '*session*': ['x-session-id', 'session', 'jsessionid', 'x-session-token'],
  '*sessid*': ['phpsessid', 'sessid'],
  sid: ['sid'],
  '*csrf*': ['x-csrf', 'csrf', '_csrf'],
  '*xsrf*': ['x-xsrf-header', 'xsrf'],
  '*passwd*': ['passwd', 'x-passwd'],
  '*passphrase*': ['passphrase'],
  pwd: ['pwd'],
  pass: ['pass'],
  '*credential*': ['x-amz-credential', 'credentials'],
  '!access-control-allow-credentials': [],
  '*signature*': ['x-amz-signature', 'x-goog-signature', 'signature', 'x-hub-signature-256'],
  sig: ['sig'],
  '*private*key*': ['private-key', 'private_key', 'privatekey'],
  '*access*key*': ['x-access-key', 'aws_access_key_id', 'accesskey', 'awsaccesskeyid'],
  '*subscription*key*': ['ocp-apim-subscription-key', 'subscription-key'],
  '*jwt*': ['x-jwt-assertion', 'jwt'],
  '*oidc*': ['x-amzn-oidc-data', 'x-amzn-oidc-identity'],
  '*saml*': ['samlresponse', 'samlrequest'],
  dpop: ['dpop'],
};

/** Names that carry no secret and must stay readable with the default list. */
const KEPT_BY_DEFAULT = [
  'host', 'user-agent', 'accept', 'accept-encoding', 'content-type', 'content-length', 'cache-control', 'etag', 'vary',
  'traceparent', 'tracestate', 'x-request-id', 'x-forwarded-for', 'x-tenant', 'www-authenticate', 'proxy-authenticate',
  'access-control-allow-headers', 'access-control-allow-credentials', 'sec-websocket-key', 'idempotency-key', 'keep-alive', 'q', 'page', 'limit', 'monkey', 'passenger-id',
];

describe('header rules: the default redaction list', () => {
  it('is exactly the documented list: DESIGN.md\'s first eight globs first, then the additions', () => {
    assert.deepEqual([...DEFAULT_REDACT_HEADERS], Object.keys(DEFAULT_LIST_EXAMPLES));
    assert.deepEqual(DEFAULT_REDACT_HEADERS.slice(0, 8), ['authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-api-key', '*token*', '*secret*', '*password*']);
  });

  it("hides the query parameters semantic conventions 1.45 call sensitive (url.full), in url.query and url.full, as sent", () => {
    // model/url/registry.yaml, url.full: redacted by default.
    const SEMCONV_SENSITIVE = ['X-Amz-Signature', 'X-Amz-Credential', 'X-Amz-Security-Token', 'AWSAccessKeyId', 'Signature', 'sig', 'X-Goog-Signature'];
    const query = SEMCONV_SENSITIVE.map((k) => `${k}=S3CRET-${k}`).join('&') + '&Expires=1700000000';
    const expected = SEMCONV_SENSITIVE.map((k) => `${k}=[REDACTED]`).join('&') + '&Expires=1700000000';
    const rec = record(rules(), { ...exchange([], [], `/bucket/key?${query}`), role: 'client' });
    assert.equal(rec.attributes['url.query'], expected);
    assert.equal(rec.attributes['url.full'], `http://127.0.0.1:5000/bucket/key?${expected}`, 'a client record: the same query in url.full');
    assert.ok(!JSON.stringify(rec.attributes).includes('S3CRET'));
  });

  it('is the list the README shows as the --redact-headers default', () => {
    const row = readFileSync(path.join(PACKAGE_ROOT, 'README.md'), 'utf8')
      .split('\n')
      .find((l) => l.startsWith('| `--redact-headers GLOBS` |'))!;
    assert.equal(/`([^`]+)` \|$/.exec(row)?.[1], DEFAULT_REDACT_HEADERS.join(','));
  });

  it('hides every listed name, as a header on either side and as a query parameter, in any case', () => {
    const r = rules();
    for (const [glob, names] of Object.entries(DEFAULT_LIST_EXAMPLES)) {
      for (const name of names) {
        const value = `S3CRET-${name}`;
        const a = headerAttrs(r, exchange([name, value], [name, value]));
        assert.deepEqual(a[`http.request.header.${name}`], ['[REDACTED]'], `${glob}: request header ${name}`);
        assert.deepEqual(a[`http.response.header.${name}`], ['[REDACTED]'], `${glob}: response header ${name}`);
        assert.ok(r.isSecret(name.toUpperCase()), `${glob}: ${name} in upper case`);
        const rec = record(r, exchange([], [], `/p?${name}=${value}&q=1`));
        assert.equal(rec.attributes['url.query'], `${name}=[REDACTED]&q=1`, `${glob}: query parameter ${name}`);
      }
    }
  });

  it('keeps names that carry no secret, among them the authentication challenges (!www-authenticate, !proxy-authenticate)', () => {
    const r = rules();
    for (const name of KEPT_BY_DEFAULT) assert.equal(r.isSecret(name), false, name);
    const a = headerAttrs(r, exchange([], ['www-authenticate', 'Bearer realm="api", error="invalid_token"']));
    assert.deepEqual(a['http.response.header.www-authenticate'], ['Bearer realm="api", error="invalid_token"']);
  });

  it('an exception (!glob) wins over every redact glob, but not over --hash-headers', () => {
    const r = rules({ redact: [...DEFAULT_REDACT_HEADERS, '!x-session-affinity'], hash: ['www-authenticate'], hashKey: KEY });
    assert.equal(r.isSecret('x-session-affinity'), false);
    assert.equal(r.isSecret('x-session-id'), true);
    assert.equal(r.hash('v'), expectedHash(KEY, 'v'));
    assert.equal(r.isSecret('www-authenticate'), true, 'hashing is asked for explicitly');
  });
});

describe('header rules: URLs and paths with a query inside any header value', () => {
  it('redacts the query of a path or URL in X-Forwarded-Uri, X-Original-URL or any header, by the url.query rules', () => {
    const a = headerAttrs(
      rules(),
      exchange([
        'x-forwarded-uri', '/cb?access_token=AT-S3CRET&state=xyz',
        'x-original-url', '/v1/maps?key=K-S3CRET&q=paris',
        'x-rewrite-url', 'https://api.test/x?api_key=AK-S3CRET#frag',
        'x-custom', 'see /a?sig=SIG-S3CRET and <b?x=1>',
        'x-plain', 'no url here, 100% sure?',
      ]),
    );
    assert.deepEqual(a['http.request.header.x-forwarded-uri'], ['/cb?access_token=[REDACTED]&state=xyz']);
    assert.deepEqual(a['http.request.header.x-original-url'], ['/v1/maps?key=[REDACTED]&q=paris']);
    assert.deepEqual(a['http.request.header.x-rewrite-url'], ['https://api.test/x?api_key=[REDACTED]#frag']);
    assert.deepEqual(a['http.request.header.x-custom'], ['see /a?sig=[REDACTED] and <b?x=1>']);
    assert.deepEqual(a['http.request.header.x-plain'], ['no url here, 100% sure?']);
  });

  it('hashes once: a hashed parameter of a URL value is the hash of the value as sent', () => {
    const r = rules({ hash: ['session'], hashKey: KEY });
    const a = headerAttrs(r, exchange(['x-forwarded-uri', 'https://u:PW-S3CRET@h.test/cb?session=abc', 'x-next', 'go=https://v:PW2-S3CRET@h.test/?session=def']));
    assert.deepEqual(a['http.request.header.x-forwarded-uri'], [`https://h.test/cb?session=${expectedHash(KEY, 'abc')}`]);
    assert.deepEqual(a['http.request.header.x-next'], [`go=https://h.test/?session=${expectedHash(KEY, 'def')}`]);
  });

  it('drops credentials of a URL nested in the query of a path', () => {
    const a = headerAttrs(rules(), exchange(['x-forwarded-uri', '/login?next=https://u:PW-S3CRET@app.test/&token=T-S3CRET']));
    assert.deepEqual(a['http.request.header.x-forwarded-uri'], ['/login?next=https://app.test/&token=[REDACTED]']);
  });
});

describe('header rules: capture and exclude, per side', () => {
  it('--exclude-headers drops names --capture-headers would keep, both sides', () => {
    const a = headerAttrs(rules({ exclude: ['x-debug-*'] }), exchange(['x-debug-a', '1', 'x-keep', '2'], ['x-debug-b', '3']));
    assert.deepEqual(Object.keys(a), ['http.request.header.x-keep']);
  });

  it('request/response capture lists replace --capture-headers for their side; excludes add up', () => {
    const r = rules({ capture: ['x-*'], captureResponse: ['server', 'x-*'], exclude: ['x-secret-ish'], excludeRequest: ['x-b'] });
    const a = headerAttrs(r, exchange(['x-a', '1', 'x-b', '2', 'server', 'no', 'x-secret-ish', '3'], ['server', 'nginx', 'x-c', '4', 'x-secret-ish', '5']));
    assert.deepEqual(Object.keys(a), ['http.request.header.x-a', 'http.response.header.server', 'http.response.header.x-c']);
  });
});

describe('header rules: keyed hashing', () => {
  it('shows sha256:<16 hex> of HMAC-SHA256(key, value): same value, same hash', () => {
    const r = rules({ hash: ['x-session'], hashKey: KEY });
    const a = headerAttrs(r, exchange(['x-session', 'tok-1', 'x-session', 'tok-1', 'x-session', 'tok-2']));
    const [h1, h1again, h2] = a['http.request.header.x-session'] as string[];
    assert.match(h1, /^sha256:[0-9a-f]{16}$/);
    assert.equal(h1, expectedHash(KEY, 'tok-1'));
    assert.equal(h1again, h1, 'stable: users can group by it');
    assert.notEqual(h2, h1);
  });

  it('another key gives another hash', () => {
    const a = rules({ hash: ['x-session'], hashKey: KEY }).hash('tok-1');
    const b = rules({ hash: ['x-session'], hashKey: OTHER_KEY }).hash('tok-1');
    assert.notEqual(a, b);
    assert.equal(b, expectedHash(OTHER_KEY, 'tok-1'));
  });

  it('wins over --redact-headers, so a default-redacted header can be grouped by', () => {
    const a = headerAttrs(rules({ hash: ['authorization'], hashKey: KEY }), exchange(['authorization', 'Bearer abc']));
    assert.deepEqual(a['http.request.header.authorization'], [expectedHash(KEY, 'Bearer abc')]);
  });

  it('refuses hash globs without a key', () => {
    assert.throws(() => rules({ hash: ['x'] }), /hash key/);
  });
});

describe('secrets outside header values', () => {
  it('redacts query parameters by the same globs in url.query (and hashes them when asked)', () => {
    const r = rules({ hash: ['session'], hashKey: KEY });
    const rec = record(r, exchange([], [], '/cb?code=1&access_token=AT-S3CRET&Password=P-S3CRET&session=abc&x'));
    assert.equal(rec.attributes['url.query'], `code=1&access_token=[REDACTED]&Password=[REDACTED]&session=${expectedHash(KEY, 'abc')}&x`);
    assert.equal(rec.body, 'GET /cb -> 200', 'the body has the path only');
    assert.equal(redactQuery('my%5Ftoken=S&a%zz=1', rules()), 'my%5Ftoken=[REDACTED]&a%zz=1', 'names are percent-decoded; bad escapes do not throw');
    assert.equal(redactQuery('plain=1&b=2', rules()), 'plain=1&b=2');
  });

  it('never exports credentials in URLs: request targets, Referer, Location, URLs inside values', () => {
    const rec = record(
      rules(),
      exchange(
        ['referer', 'https://u:PW-S3CRET@app.test/page?token=T-S3CRET&q=1#f', 'link', '<http://a:LINK-S3CRET@x.test/n?api_token=LT>; rel=next'],
        ['location', '/login?next=%2F&reset_token=R-S3CRET'],
        'http://proxyuser:PROXY-S3CRET@origin.test:8080/x?y=1',
      ),
    );
    const a = rec.attributes;
    assert.deepEqual(a['http.request.header.referer'], ['https://app.test/page?token=[REDACTED]&q=1#f']);
    assert.deepEqual(a['http.request.header.link'], ['<http://x.test/n?api_token=[REDACTED]>; rel=next']);
    assert.deepEqual(a['http.response.header.location'], ['/login?next=%2F&reset_token=[REDACTED]']);
    assert.equal(a['server.address'], 'origin.test');
    assert.doesNotMatch(JSON.stringify(rec), /S3CRET/);
    assert.equal(redactUrl('postgres://app:pw@db:5432/x', rules()), 'postgres://db:5432/x');
  });

  it('hides secret arguments of a command line', () => {
    assert.deepEqual(
      redactArgs(['app', '--db-password=P1', '--token', 'T1', '-v', 'API_SECRET=S1', '--url', 'http://u:P2@h/x', '--name', 'svc'], rules()),
      ['app', '--db-password=[REDACTED]', '--token', '[REDACTED]', '-v', 'API_SECRET=[REDACTED]', '--url', 'http://h/x', '--name', 'svc'],
    );
    assert.deepEqual(
      redactArgs(['curl', '-H', 'Authorization: Bearer B1', '-HCookie: c=C1', '-H', 'X-Tenant: acme', '-u', 'bob:U1', '--user=amy:U2', 'http://h:80/x?y=1'], rules()),
      ['curl', '-H', 'Authorization: [REDACTED]', '-HCookie: [REDACTED]', '-H', 'X-Tenant: acme', '-u', 'bob:[REDACTED]', '--user=amy:[REDACTED]', 'http://h:80/x?y=1'],
    );
  });
});
