import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { UsageError } from '../../src/common/errors';
import { resolveExportTarget } from '../../src/otel';

describe('resolveExportTarget', () => {
  it('defaults to OTLP/gRPC on localhost:4317, and :4318/v1/logs for http/protobuf', () => {
    assert.deepEqual(resolveExportTarget({}, {}), { protocol: 'grpc', url: 'http://localhost:4317', compression: 'gzip' });
    assert.deepEqual(resolveExportTarget({ protocol: 'http/protobuf' }, {}), {
      protocol: 'http/protobuf',
      url: 'http://localhost:4318/v1/logs',
      compression: 'gzip',
    });
  });

  it('treats --endpoint as a base URL: /v1/logs is appended for HTTP only', () => {
    assert.equal(resolveExportTarget({ endpoint: 'http://c:4317' }, {}).url, 'http://c:4317');
    assert.equal(resolveExportTarget({ endpoint: 'https://c/otlp/', protocol: 'http/protobuf' }, {}).url, 'https://c/otlp/v1/logs');
  });

  it('reads the OTEL_EXPORTER_OTLP_* environment with signal-specific precedence, flags winning', () => {
    const env = {
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://base:4318',
    };
    assert.deepEqual(resolveExportTarget({}, env), { protocol: 'http/protobuf', url: 'http://base:4318/v1/logs', compression: 'gzip' });
    const logs = { ...env, OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: 'http://logs:9999/custom', OTEL_EXPORTER_OTLP_LOGS_PROTOCOL: 'grpc' };
    assert.deepEqual(resolveExportTarget({}, logs), { protocol: 'grpc', url: 'http://logs:9999/custom', compression: 'gzip' });
    assert.deepEqual(resolveExportTarget({ endpoint: 'http://flag:4317', protocol: 'grpc' }, logs), {
      protocol: 'grpc',
      url: 'http://flag:4317',
      compression: 'gzip',
    });
  });

  it('resolves the traces target (--emit-spans) the same way, with /v1/traces and OTEL_EXPORTER_OTLP_TRACES_*', () => {
    assert.deepEqual(resolveExportTarget({}, {}, 'traces'), { protocol: 'grpc', url: 'http://localhost:4317', compression: 'gzip' });
    assert.deepEqual(resolveExportTarget({ protocol: 'http/protobuf' }, {}, 'traces'), {
      protocol: 'http/protobuf',
      url: 'http://localhost:4318/v1/traces',
      compression: 'gzip',
    });
    assert.equal(resolveExportTarget({ endpoint: 'https://c/otlp/', protocol: 'http/protobuf' }, {}, 'traces').url, 'https://c/otlp/v1/traces');
    const env = {
      OTEL_EXPORTER_OTLP_ENDPOINT: 'http://base:4318',
      OTEL_EXPORTER_OTLP_PROTOCOL: 'http/protobuf',
      OTEL_EXPORTER_OTLP_LOGS_ENDPOINT: 'http://logs:1/l',
      OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'grpc',
      OTEL_EXPORTER_OTLP_TRACES_ENDPOINT: 'http://traces:4317',
    };
    assert.deepEqual(resolveExportTarget({}, env, 'traces'), { protocol: 'grpc', url: 'http://traces:4317', compression: 'gzip' });
    assert.deepEqual(resolveExportTarget({}, env, 'logs'), { protocol: 'http/protobuf', url: 'http://logs:1/l', compression: 'gzip' });
    assert.throws(
      () => resolveExportTarget({}, { OTEL_EXPORTER_OTLP_TRACES_PROTOCOL: 'http/json' }, 'traces'),
      (e: unknown) => e instanceof UsageError && /OTEL_EXPORTER_OTLP_TRACES_PROTOCOL 'http\/json'/.test(e.message),
    );
  });

  it('gzips requests unless --compression or OTEL_EXPORTER_OTLP_[SIGNAL_]COMPRESSION says otherwise', () => {
    assert.equal(resolveExportTarget({}, {}).compression, 'gzip');
    assert.equal(resolveExportTarget({}, { OTEL_EXPORTER_OTLP_COMPRESSION: 'none' }).compression, 'none');
    const env = { OTEL_EXPORTER_OTLP_COMPRESSION: 'none', OTEL_EXPORTER_OTLP_METRICS_COMPRESSION: 'gzip' };
    assert.equal(resolveExportTarget({}, env, 'metrics').compression, 'gzip', 'the signal-specific variable wins');
    assert.equal(resolveExportTarget({}, env, 'logs').compression, 'none');
    assert.equal(resolveExportTarget({ compression: 'gzip' }, env, 'logs').compression, 'gzip', 'the flag wins');
    assert.throws(
      () => resolveExportTarget({}, { OTEL_EXPORTER_OTLP_LOGS_COMPRESSION: 'zstd' }),
      (e: unknown) => e instanceof UsageError && /OTEL_EXPORTER_OTLP_LOGS_COMPRESSION 'zstd' is not a supported compression; use gzip or none/.test(e.message),
    );
  });

  it('the export timeout: --export-timeout, else OTEL_EXPORTER_OTLP_[SIGNAL_]TIMEOUT in milliseconds, else the exporter default', () => {
    assert.equal(resolveExportTarget({}, {}).timeoutMs, undefined);
    const env = { OTEL_EXPORTER_OTLP_TIMEOUT: '30000', OTEL_EXPORTER_OTLP_LOGS_TIMEOUT: '5000' };
    assert.equal(resolveExportTarget({}, env).timeoutMs, 5000, 'the signal-specific variable wins');
    assert.equal(resolveExportTarget({}, env, 'metrics').timeoutMs, 30000);
    assert.equal(resolveExportTarget({ timeoutMs: 2500 }, env).timeoutMs, 2500, 'the flag wins');
    assert.throws(
      () => resolveExportTarget({}, { OTEL_EXPORTER_OTLP_TIMEOUT: '10s' }),
      (e: unknown) => e instanceof UsageError && /OTEL_EXPORTER_OTLP_TIMEOUT '10s' is not a timeout; expected milliseconds from 1 to 3600000/.test(e.message),
    );
  });

  it('rejects bad endpoints and protocols with a message naming the source and the fix', () => {
    const cases: [Parameters<typeof resolveExportTarget>, RegExp][] = [
      [[{ endpoint: 'collector:4317' }, {}], /--endpoint 'collector:4317' has scheme 'collector'; use http:\/\//],
      [[{ endpoint: 'not a url' }, {}], /--endpoint 'not a url' is not a URL; use http:\/\/HOST:PORT/],
      [[{ endpoint: 'ftp://x:1' }, {}], /scheme 'ftp'/],
      [[{ protocol: 'http/json' }, {}], /--protocol 'http\/json' is not a supported protocol \(http\/json is not supported\); use grpc or http\/protobuf/],
      [[{}, { OTEL_EXPORTER_OTLP_ENDPOINT: '::bad' }], /OTEL_EXPORTER_OTLP_ENDPOINT '::bad' is not a URL/],
    ];
    for (const [args, re] of cases) {
      assert.throws(() => resolveExportTarget(...args), (e: unknown) => e instanceof UsageError && re.test(e.message));
    }
  });
});
