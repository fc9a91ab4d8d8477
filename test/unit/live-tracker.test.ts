/**
 * The http stage when the capture filters or --max-header-bytes change while
 * connections are open (a live config reload): an exchange is reported whole
 * under the filters in force when it completes, or not at all, and is never
 * turned into a false "no response" record.
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { ConnectionTracker, type HttpExchange } from '../../src/http';
import { ConnectionSim } from '../helpers/events';

const REQ = (path: string, extra = '') => `GET ${path} HTTP/1.1\r\nHost: svc\r\n${extra}\r\n`;
const RES = `HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok`;

function tracker(ports?: number[]) {
  const exchanges: HttpExchange[] = [];
  const t = new ConnectionTracker({ maxHeaderBytes: 16384, ...(ports ? { filter: { ports } } : {}), onExchange: (e) => exchanges.push(e) });
  return { t, exchanges, paths: () => exchanges.map((e) => `${e.request.target} ${e.unanswered ?? e.response?.status}`) };
}

describe('ConnectionTracker: live filter changes', () => {
  it('forgets connections the new filters exclude: their waiting requests are dropped and counted, not reported unanswered', () => {
    const { t, paths } = tracker([8080, 9090]);
    const old = new ConnectionSim({ local: ['127.0.0.1', 40000], remote: ['127.0.0.1', 8080] });
    const kept = new ConnectionSim({ local: ['127.0.0.1', 40001], remote: ['127.0.0.1', 9090] });
    t.onData(old.data('egress', REQ('/old-done')));
    t.onData(old.data('ingress', RES));
    t.onData(old.data('egress', REQ('/old-waiting'))); // its response comes after the switch: the kernel no longer sends it
    t.onData(kept.data('egress', REQ('/kept-waiting')));

    assert.equal(t.setFilter({ ports: [9090] }), 1, 'the port 8080 connection');
    t.onData(old.data('ingress', RES)); // already on its way when the kernel switched: ignored
    t.onClose(old.close());
    t.onData(kept.data('ingress', RES));
    t.flush('agent_stopped');

    assert.deepEqual(paths(), ['/old-done 200', '/kept-waiting 200']);
    assert.equal(t.counters.unanswered, 0, 'no false "no response" record');
    assert.ok(t.counters.filtered >= 1);
  });

  it('joins newly included connections mid-stream: an answer without its request is an orphan, never a record', () => {
    const { t, paths } = tracker([8080]);
    const fresh = new ConnectionSim({ local: ['127.0.0.1', 40002], remote: ['127.0.0.1', 9090] });
    // The kernel excluded port 9090 until the switch: the request went by unseen.
    fresh.dataFrame('egress', REQ('/before-switch'));
    t.setFilter({ ports: [8080, 9090] });
    t.onData(fresh.data('ingress', RES, { skipBefore: 0 }));
    t.onData(fresh.data('egress', REQ('/after-switch')));
    t.onData(fresh.data('ingress', RES));
    assert.deepEqual(paths(), ['/after-switch 200']);
    assert.equal(t.counters.orphanResponses, 1);
  });

  it('keeps what either filter set wants while the kernel switches, so the first exchange on a new port is not lost', () => {
    const { t, paths } = tracker([8080]);
    const old = new ConnectionSim({ remote: ['127.0.0.1', 8080] });
    const fresh = new ConnectionSim({ remote: ['127.0.0.1', 9090] });
    t.onData(old.data('egress', REQ('/old')));
    t.widenFilter({ ports: [8080] }, { ports: [9090] });
    // The kernel switched before user space heard it did: it sends the new port already.
    t.onData(fresh.data('egress', REQ('/first-on-new-port')));
    t.onData(old.data('ingress', RES)); // and an answer on the old one it judged before the switch
    t.setFilter({ ports: [9090] }); // the loader's answer
    t.onData(fresh.data('ingress', RES));
    assert.deepEqual(paths(), ['/old 200', '/first-on-new-port 200']);
  });

  it('applies --pid/--comm/--cgroup as the process predicate says, to waiting requests too', () => {
    const { t, paths } = tracker();
    const nginx = new ConnectionSim({ pid: 10, comm: 'nginx' });
    const curl = new ConnectionSim({ pid: 20, comm: 'curl' });
    t.onData(nginx.data('ingress', REQ('/to-nginx')));
    t.onData(curl.data('egress', REQ('/from-curl')));
    t.setFilter({ process: (_pid, comm) => comm === 'curl' });
    t.onData(nginx.data('egress', RES));
    t.onData(curl.data('ingress', RES));
    // A later change back to everything: nginx's connection starts afresh.
    t.setFilter(undefined);
    t.onData(nginx.data('ingress', REQ('/to-nginx-again')));
    t.onData(nginx.data('egress', RES));
    assert.deepEqual(paths(), ['/from-curl 200', '/to-nginx-again 200']);
    assert.equal(t.counters.problems.gap_resync, 0, 'a forgotten connection restarts clean, no resync');
  });

  it('keeps TLS sessions whose socket is not known yet until their ports are', () => {
    const { t, paths } = tracker([443]);
    const s = new ConnectionSim({ tls: true, remote: ['127.0.0.1', 443] });
    t.onData(s.data('egress', REQ('/tls'), { noSocket: true }));
    assert.equal(t.setFilter({ ports: [443, 8443] }), 0, 'unknown ports: not forgotten');
    t.onData(s.data('ingress', RES));
    assert.deepEqual(paths(), ['/tls 200']);
  });
});

describe('ConnectionTracker: live --max-header-bytes', () => {
  it('cuts heads at the new limit from the next message on', () => {
    const { t, exchanges } = tracker();
    const c = new ConnectionSim();
    const long = `x-long: ${'a'.repeat(600)}\r\n`;
    t.onData(c.data('egress', REQ('/before', long)));
    t.onData(c.data('ingress', RES));
    t.setMaxHeaderBytes(256);
    t.onData(c.data('egress', REQ('/after', long)));
    t.onData(c.data('ingress', RES));
    assert.deepEqual(
      exchanges.map((e) => [e.request.target, e.request.truncated]),
      [
        ['/before', undefined],
        ['/after', 'header_limit'],
      ],
    );
  });
});
