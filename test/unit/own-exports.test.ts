import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { isAgentExport } from '../../src/cli/own-exports';
import type { HttpExchange } from '../../src/http';

function exchange(method: string, target: string, headers: string[], version = '2'): HttpExchange {
  return {
    role: 'server',
    connection: { pid: 1, comm: 'otelcol', tls: false },
    request: { kind: 'request', method, target, version, headers, headBytes: 100, startNs: 0, endNs: 0 },
  };
}

describe("another agent's OTLP exports are never recorded (user-space rule)", () => {
  it('OTLP/gRPC and OTLP/HTTP exports of every signal with a headertap user agent, at either end', () => {
    const ua = ['user-agent', 'headertap/0.1.0 channel/2 OTel-OTLP-Exporter-JavaScript/0.223.1 grpc-node-js/1.14.3'];
    for (const service of ['logs.v1.LogsService', 'metrics.v1.MetricsService', 'trace.v1.TraceService']) {
      const ex = exchange('POST', `/opentelemetry.proto.collector.${service}/Export`, ['content-type', 'application/grpc', ...ua]);
      assert.equal(isAgentExport(ex), true, service);
      assert.equal(isAgentExport({ ...ex, role: 'client' }), true);
    }
    for (const target of ['/v1/logs', '/v1/metrics', '/v1/traces', '/otlp/v1/logs', 'http://collector:4318/v1/logs']) {
      assert.equal(isAgentExport(exchange('POST', target, ['host', 'c', 'user-agent', 'headertap/1.2.3 OTel-OTLP-Exporter-JavaScript/0.223.1'], '1.1')), true, target);
    }
  });

  it("everything else is traffic like any other: other exporters, other paths, other methods, a user agent HPACK left out", () => {
    const grpcPath = '/opentelemetry.proto.collector.logs.v1.LogsService/Export';
    assert.equal(isAgentExport(exchange('POST', grpcPath, ['user-agent', 'OTel-OTLP-Exporter-Go/1.28.0'])), false, "an application's own exporter");
    assert.equal(isAgentExport(exchange('POST', grpcPath, ['content-type', 'application/grpc'])), false, 'no user agent known');
    assert.equal(isAgentExport(exchange('POST', '/api/v1/logsearch', ['user-agent', 'headertap/0.1.0'], '1.1')), false);
    assert.equal(isAgentExport(exchange('GET', '/v1/logs', ['user-agent', 'headertap/0.1.0'], '1.1')), false);
    assert.equal(isAgentExport(exchange('POST', '/v1/logs', ['user-agent', 'curl/8.0 headertap/0.1.0'], '1.1')), false);
    assert.equal(isAgentExport(exchange('POST', '/demo.Greeter/SayHello', ['user-agent', 'headertap/0.1.0'])), false);
  });
});
