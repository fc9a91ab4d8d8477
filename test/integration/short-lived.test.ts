/**
 * Real eBPF, real programs, loopback only: processes that are gone before
 * the agent can read /proc. `OTEL_SERVICE_NAME=svc curl …` lives a few
 * milliseconds; its records must still carry its own service.name and
 * executable name, which the kernel reads in the process's own context at
 * its first data event.
 *
 * Not covered here: container.id and k8s.pod.uid of such processes (they
 * come from /proc/PID/cgroup only; README "Limits").
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { capture } from '../helpers/capture';
import { attr, byPid, requireEbpf, run, startNginx } from '../helpers/integration';

const RUNS = 20;

describe('short-lived processes keep their own resource (real eBPF)', () => {
  it(`OTEL_SERVICE_NAME=svc curl, one-shot, ${RUNS} times: every client record has service.name=svc and executable curl`, async (t) => {
    if (!requireEbpf(t)) return;
    const nginx = await startNginx(t);
    const cap = await capture(t, [nginx.port]);
    const pids: number[] = [];
    const lifetimesMs: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const started = process.hrtime.bigint();
      const c = await run('curl', ['-sS', '-o', '/dev/null', `http://127.0.0.1:${nginx.port}/short/${i}`], {
        env: { ...process.env, OTEL_SERVICE_NAME: 'svc', OTEL_RESOURCE_ATTRIBUTES: 'deployment.environment=short,team=edge' },
      });
      lifetimesMs.push(Number(process.hrtime.bigint() - started) / 1e6);
      assert.equal(c.code, 0, c.stderr);
      pids.push(c.pid);
    }
    await cap.sink.waitFor((rs) => pids.every((pid) => byPid(rs, pid).length === 1), 20000, 'one record per curl');
    const records = await cap.finish();
    lifetimesMs.sort((a, b) => a - b);
    process.stderr.write(`# curl lifetimes (spawn to exit, ms): min ${lifetimesMs[0].toFixed(1)}, median ${lifetimesMs[RUNS >> 1].toFixed(1)}, max ${lifetimesMs[RUNS - 1].toFixed(1)}\n`);
    const m = /processes identified by the kernel (\d+), unidentified (\d+)/.exec(cap.stderr());
    assert.ok(m, cap.stderr());
    process.stderr.write(`# ${m[0]}\n`);
    for (const pid of pids) {
      const [r] = byPid(records, pid);
      assert.equal(attr(r, 'headertap.role'), 'client');
      assert.equal(r.resource['service.name'], 'svc', `curl ${pid}: its own OTEL_SERVICE_NAME`);
      assert.equal(r.resource['process.executable.name'], 'curl');
      assert.equal(r.resource['deployment.environment'], 'short', 'its OTEL_RESOURCE_ATTRIBUTES too');
      assert.equal(r.resource['team'], 'edge');
    }
    assert.equal(Number(m[2]), 0, 'no process left unidentified');
  });

  it(`a process that writes one request and exits at once (bash /dev/tcp), ${RUNS} times: its record has its own service.name`, async (t) => {
    if (!requireEbpf(t)) return;
    const nginx = await startNginx(t);
    const cap = await capture(t, [nginx.port]);
    // bash times itself: from its first command to its exit right after the write.
    const script = `s=$EPOCHREALTIME; exec 3<>/dev/tcp/127.0.0.1/${nginx.port}; printf 'GET /oneshot HTTP/1.1\\r\\nHost: x\\r\\n\\r\\n' >&3; e=$EPOCHREALTIME; echo "$s $e"`;
    const pids: number[] = [];
    const livedUs: number[] = [];
    for (let i = 0; i < RUNS; i++) {
      const c = await run('/bin/bash', ['-c', script], { env: { ...process.env, OTEL_SERVICE_NAME: 'oneshot-svc' } });
      assert.equal(c.code, 0, c.stderr);
      const [s, e] = c.stdout.trim().split(' ').map((x) => Number(x.replace(',', '.')));
      livedUs.push(Math.round((e - s) * 1e6));
      pids.push(c.pid);
    }
    await cap.sink.waitFor((rs) => pids.every((pid) => byPid(rs, pid).length === 1), 20000, 'one record per bash');
    const end = await cap.agent.stop('SIGINT'); // not finish(): the unanswered requests are the point
    assert.equal(end.code, 0, end.stderr);
    livedUs.sort((a, b) => a - b);
    process.stderr.write(`# bash connect+write+exit (µs, its own clock): min ${livedUs[0]}, median ${livedUs[RUNS >> 1]}, max ${livedUs[RUNS - 1]}\n`);
    for (const pid of pids) {
      const [r] = byPid(cap.sink.records(), pid);
      assert.equal(r.body, 'GET /oneshot -> no response');
      assert.equal(r.resource['service.name'], 'oneshot-svc', `bash ${pid}: its own OTEL_SERVICE_NAME`);
      assert.equal(r.resource['process.executable.name'], 'bash');
    }
    assert.match(end.stderr, /unidentified 0/);
  });
});
