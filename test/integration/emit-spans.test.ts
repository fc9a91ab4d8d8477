/**
 * --emit-spans with real eBPF: curl and nginx on loopback, the agent exporting
 * logs and traces to one real OTLP receiver; the spans and log records of the
 * same exchange, decoded from what the receiver got, share the trace id.
 *
 * Not covered here: linking the client span to the server span of the same
 * call (both are children of the caller's header span).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import type { FlatRecord } from '../../src/common/flat-record';
import type { FlatSpan } from '../../src/common/flat-span';
import { attr, requireEbpf, run, startAgent, startNginx } from '../helpers/integration';
import { startOtlpSink } from '../helpers/otlp-sink';

const TRACE_ID = '0af7651916cd43dd8448eb211c80319c';
const CALLER_SPAN_ID = 'b7ad6b7169203331';

/** The span one process made for one path. */
function spanFor(spans: FlatSpan[], r: FlatRecord): FlatSpan {
  const found = spans.filter(
    (s) => s.resource['process.pid'] === r.resource['process.pid'] && s.attributes['url.path'] === attr(r, 'url.path'),
  );
  assert.equal(found.length, 1, `one span for ${String(attr(r, 'headertap.role'))} ${String(attr(r, 'url.path'))}`);
  return found[0];
}

describe('--emit-spans: spans next to the log records (real eBPF)', () => {
  for (const transport of ['grpc', 'http'] as const) {
    it(`exports one span per exchange sharing the records' trace ids over ${transport === 'grpc' ? 'OTLP/gRPC' : 'OTLP/HTTP'}`, async (t) => {
      if (!requireEbpf(t)) return;
      const nginx = await startNginx(t);
      const sink = await startOtlpSink(transport);
      t.after(() => sink.stop());
      const protocol = transport === 'grpc' ? 'grpc' : 'http/protobuf';
      const agent = await startAgent(t, ['--endpoint', sink.endpoint, '--protocol', protocol, '--port', String(nginx.port), '--emit-spans']);
      assert.match(agent.stderr(), /spans to http:\/\/127\.0\.0\.1:\d+/);

      const traced = await run('curl', ['-sS', '-H', `traceparent: 00-${TRACE_ID}-${CALLER_SPAN_ID}-01`, `http://127.0.0.1:${nginx.port}/traced`]);
      const untraced = await run('curl', ['-sS', `http://127.0.0.1:${nginx.port}/untraced`]);
      assert.equal(traced.code, 0, traced.stderr);
      assert.equal(untraced.code, 0, untraced.stderr);
      await sink.waitFor((rs) => rs.length >= 4, 15000, 'client and server records of both requests');
      await sink.waitForSpans((ss) => ss.length >= 4, 15000, 'client and server spans of both requests');
      const end = await agent.stop();
      assert.equal(end.code, 0, end.stderr);
      assert.match(end.stderr, /; spans exported 4, failed 0, dropped 0\n/);

      const records = sink.records();
      const spans = sink.spans();
      assert.equal(records.length, 4, 'nothing extra arrived');
      assert.equal(spans.length, 4, 'one span per record, nothing extra');
      assert.ok(sink.batches.some((b) => b.signal === 'traces') && sink.batches.some((b) => b.signal === 'logs'));

      for (const r of records) {
        const s = spanFor(spans, r);
        const role = attr(r, 'headertap.role');
        assert.equal(s.kind, role === 'client' ? 'CLIENT' : 'SERVER');
        assert.equal(s.name, `GET ${String(attr(r, 'url.path'))}`, 'named after the route (the heuristic keeps these paths)');
        assert.equal(s.status.code, 'UNSET', '200 is not an error');
        assert.equal(s.start_time, r.time, 'the span starts when the request did');
        assert.equal(s.duration_ns, attr(r, 'headertap.duration_ns'), 'and lasts until the response head');
        assert.deepEqual(s.attributes['http.request.header.user-agent'], attr(r, 'http.request.header.user-agent'));
        assert.deepEqual(s.attributes['http.response.header.x-served-by'], ['nginx-test']);
        assert.equal(s.trace_id, r.trace_id, 'span and record share the trace id');
        assert.deepEqual(s.resource, r.resource, "the span is under the record's workload resource");
        if (attr(r, 'url.path') === '/traced') {
          assert.equal(r.trace_id, TRACE_ID);
          assert.equal(r.span_id, CALLER_SPAN_ID, "the record keeps the caller's span id");
          assert.equal(s.parent_span_id, CALLER_SPAN_ID, 'the header span is the parent');
          assert.notEqual(s.span_id, CALLER_SPAN_ID);
        } else {
          assert.match(s.trace_id, /^[0-9a-f]{32}$/);
          assert.notEqual(s.trace_id, TRACE_ID);
          assert.equal(s.parent_span_id, undefined, 'no trace context: a new trace');
          assert.equal(r.span_id, s.span_id, 'the record points at the new span');
        }
      }
      const untracedIds = records.filter((r) => attr(r, 'url.path') === '/untraced').map((r) => r.trace_id);
      assert.notEqual(untracedIds[0], untracedIds[1], 'each side of an untraced call starts its own trace');
    });
  }

  it('exports no spans without --emit-spans', async (t) => {
    if (!requireEbpf(t)) return;
    const nginx = await startNginx(t);
    const sink = await startOtlpSink('grpc');
    t.after(() => sink.stop());
    const agent = await startAgent(t, ['--endpoint', sink.endpoint, '--port', String(nginx.port)]);
    const curl = await run('curl', ['-sS', `http://127.0.0.1:${nginx.port}/plain`]);
    assert.equal(curl.code, 0, curl.stderr);
    await sink.waitFor((rs) => rs.length >= 2, 15000, 'the two records');
    const end = await agent.stop();
    assert.equal(end.code, 0, end.stderr);
    assert.doesNotMatch(end.stderr, /spans exported/);
    assert.deepEqual(sink.spans(), []);
    assert.ok(sink.records().every((r) => r.trace_id === undefined), 'records without trace context stay without ids');
  });
});
