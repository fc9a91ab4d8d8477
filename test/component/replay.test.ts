/**
 * The user-space pipeline on a real capture (test/fixtures/curl-nginx.htrec,
 * recorded with --record from curl, curl over IPv6, a python keep-alive
 * client and two pipelined requests against nginx). No root needed.
 */
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { PACKAGE_ROOT } from '../../src/common/paths';
import { ConnectionTracker, type HttpExchange } from '../../src/http';
import { ReplaySource, readRecording, type SourceEvent } from '../../src/source';
import { eventsOf } from '../../src/source/recording';
import { startOtlpSink } from '../helpers/otlp-sink';

const FIXTURE = path.join(PACKAGE_ROOT, 'test', 'fixtures', 'curl-nginx.htrec');
const HEADERTAP = path.join(PACKAGE_ROOT, 'bin', 'headertap');

describe('replaying a recorded capture', () => {
  it('the tracker finds every exchange of the recording, both sides, in order', () => {
    const exchanges: HttpExchange[] = [];
    const tracker = new ConnectionTracker({ maxHeaderBytes: 16384, onExchange: (e) => exchanges.push(e) });
    let ready = 0;
    for (const ev of eventsOf(readRecording(FIXTURE))) {
      if (ev.kind === 'data') tracker.onData(ev);
      else if (ev.kind === 'close') tracker.onClose(ev);
      else if (ev.kind === 'ready') ready++;
    }
    tracker.flush();
    assert.equal(ready, 1);
    const line = (e: HttpExchange) => `${e.role} ${e.connection.comm} ${e.request.target} ${e.response?.status}`;
    const clients = exchanges.filter((e) => e.role === 'client').map(line);
    const servers = exchanges.filter((e) => e.role === 'server').map(line);
    assert.deepEqual(clients, [
      'client curl /api/orders?id=7 200',
      'client curl /v6 200',
      'client python3 /py/0 200',
      'client python3 /py/1 200',
      'client python3 /py/2 200',
      'client python3 /pipe/1 200',
      'client python3 /pipe/2 200',
    ]);
    assert.deepEqual(
      servers.map((s) => s.replace(/^server nginx /, '')),
      clients.map((c) => c.replace(/^client \S+ /, '')),
    );
    assert.equal(tracker.counters.orphanResponses, 0);
    assert.equal(tracker.counters.unanswered, 0);
    const v6 = exchanges.find((e) => e.request.target === '/v6')!;
    assert.equal(v6.connection.networkType, 'ipv6');
    assert.equal(v6.connection.remote?.address, '::1');
  });

  it('headertap run --replay exports the same records over OTLP/gRPC without root', async () => {
    const sink = await startOtlpSink('grpc');
    after(() => sink.stop());
    const child = spawn(process.execPath, [HEADERTAP, 'run', '--replay', FIXTURE, '--endpoint', sink.endpoint], {
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    let stderr = '';
    child.stderr.on('data', (c: Buffer) => (stderr += c.toString()));
    const code = await new Promise<number | null>((resolve) => child.once('close', resolve));
    assert.equal(code, 0, stderr);
    assert.match(stderr, /^headertap ready: replaying /m);
    assert.match(stderr, /^headertap stopped: exchanges 14 .*records exported 14, failed 0, dropped 0/m);
    const records = sink.records();
    assert.equal(records.length, 14);
    const orders = records.filter((r) => r.attributes['url.path'] === '/api/orders');
    assert.equal(orders.length, 2);
    for (const r of orders) {
      assert.equal(r.trace_id, '0af7651916cd43dd8448eb211c80319c');
      assert.equal(r.span_id, 'b7ad6b7169203331');
      assert.equal(r.attributes['url.query'], 'id=7');
      assert.deepEqual(r.attributes['http.request.header.x-custom'], ['recorded']);
      assert.deepEqual(r.attributes['http.response.header.x-served-by'], ['nginx-fixture']);
      assert.match(r.time, /^2026-/, 'kernel times became wall-clock times');
    }
  });

  it('a replay waits while the next stage says it is full, then goes on', async () => {
    let open = false;
    const seen: SourceEvent[] = [];
    const source = new ReplaySource(readRecording(FIXTURE), { sliceSize: 2, canTake: () => open });
    await source.start((ev) => seen.push(ev));
    await new Promise((r) => setTimeout(r, 30));
    assert.deepEqual(seen.map((e) => e.kind), ['ready'], 'nothing but the ready event while full');
    open = true;
    assert.deepEqual(await source.ended, { reason: 'finished' });
    assert.equal(seen.length, [...eventsOf(readRecording(FIXTURE))].length);
  });
});
