/**
 * Live reload: how long after a --config file is written the first record
 * under the new rules is made, and what capture does meanwhile. The real
 * agent (real eBPF) follows a config file while a paced client sends
 * numbered requests to two Node servers; the file is rewritten K times,
 * switching the captured header globs (user space), then the port filter
 * (the kernel). Every record is decoded from the OTLP the agent exported.
 *
 * Per switch: from the write (the rename over the file) to the first record
 * mapped under the new rules (its observed time, when the agent emitted it)
 * and to its arrival at the receiver; the last record under the old rules;
 * requests lost, doubled or recorded half under each rule set; the longest
 * pause between two records around the switch against the usual one.
 *
 *   node dist/test/bench/reload.js [--switches K] [--rate REQ_PER_S]
 *
 * Needs root; run under the eBPF lock (flock /tmp/headertap-ebpf.lock).
 */
import { mkdtempSync, renameSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import type { FlatRecord } from '../../src/common/flat-record';
import { startOtlpSink } from '../helpers/otlp-sink';
import { HEADERTAP, freePort } from './lib/setup';
import { killAll, sleep, start, stop, waitFor, waitForPort } from './lib/procs';

const APP_CPU = '0';
const TOOL_CPU = '1';

const NODE_SERVER = `require('http').createServer((q, s) => s.end('ok')).listen(Number(process.argv[1]), '127.0.0.1');`;

/** Paced requests to the ports in turn (seq % ports), keep-alive, until a line on stdin; prints the count sent. */
const CLIENT = `
const http = require('http');
const ports = process.argv[1].split(',').map(Number), gapMs = 1000 / Number(process.argv[2]);
const agents = ports.map(() => new http.Agent({ keepAlive: true, maxSockets: 1 }));
let seq = 0, stop = false;
process.stdin.on('data', () => (stop = true));
const t0 = Date.now();
(async () => {
  while (!stop) {
    const i = seq++, k = i % ports.length;
    await new Promise((resolve) => {
      http.get({ host: '127.0.0.1', port: ports[k], path: '/r/' + i, agent: agents[k], headers: { 'x-seq': String(i), 'x-old': 'o', 'x-new': 'n' } }, (res) => {
        res.resume();
        res.on('end', resolve);
      }).on('error', resolve);
    });
    const wait = t0 + seq * gapMs - Date.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
  }
  process.stdout.write('sent ' + seq + '\\n');
  process.exit(0);
})();
`;

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(name);
  return i > 0 ? Number(process.argv[i + 1]) : fallback;
}

/** RFC 3339 with nanoseconds to milliseconds since the epoch (with the fraction). */
function ms(time: string | undefined): number {
  if (!time) return NaN;
  return Date.parse(time.slice(0, 19) + 'Z') + Number(time.slice(20, 29)) / 1e6;
}

const seqOf = (r: FlatRecord) => Number((r.attributes['http.request.header.x-seq'] as string[] | undefined)?.[0] ?? NaN);
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const fmt = (xs: number[]) => `median ${median(xs).toFixed(1)}, min ${Math.min(...xs).toFixed(1)}, max ${Math.max(...xs).toFixed(1)}`;

interface Switch {
  writtenMs: number;
  /** Records of this switch's window: from the write to the next one. */
  isNew(r: FlatRecord): boolean;
}

async function main(): Promise<void> {
  const switches = arg('--switches', 10);
  const rate = arg('--rate', 400);
  const dir = mkdtempSync(path.join(tmpdir(), 'ht-bench-reload-'));
  const config = path.join(dir, 'headertap.yaml');
  const save = (text: string) => {
    writeFileSync(`${config}.tmp`, text);
    const before = Date.now();
    renameSync(`${config}.tmp`, config);
    return before;
  };
  const ports = [await freePort(), await freePort()];
  for (const p of ports) start(process.execPath, ['-e', NODE_SERVER, String(p)], { cpus: APP_CPU });
  await Promise.all(ports.map((p) => waitForPort(p)));

  const arrivals = new Map<FlatRecord, number>();
  const sink = await startOtlpSink('grpc');
  const header = (globs: string) => `port: [${ports.join(', ')}]\ncapture-headers: [x-seq, ${globs}]\n`;
  const port = (p: number) => `port: ${p}\ncapture-headers: [x-seq]\n`;
  writeFileSync(config, header('x-old'));
  const agent = start(process.execPath, [HEADERTAP, 'run', '--config', config, '--endpoint', sink.endpoint, '--stats-interval', '0'], { cpus: TOOL_CPU });
  await waitFor(agent, /headertap ready/);
  const client = start(process.execPath, ['-e', CLIENT, ports.join(','), String(rate)], { cpus: TOOL_CPU, stdio: ['pipe', 'pipe', 'pipe'] });
  const stamp = setInterval(() => {
    const now = Date.now();
    for (const r of sink.records()) if (!arrivals.has(r)) arrivals.set(r, now);
  }, 2);

  // Phase 1: header globs (user space), then phase 2: the port filter (kernel).
  const plan: { text: string; isNew(r: FlatRecord): boolean; kind: 'header' | 'port' }[] = [];
  for (let i = 0; i < switches; i++) {
    const next = i % 2 === 0 ? 'x-new' : 'x-old';
    plan.push({ text: header(next), kind: 'header', isNew: (r) => r.attributes[`http.request.header.${next}`] !== undefined });
  }
  plan.push({ text: port(ports[0]), kind: 'port', isNew: () => false }); // settle on one port first
  for (let i = 0; i < switches; i++) {
    const p = ports[(i + 1) % 2];
    plan.push({ text: port(p), kind: 'port', isNew: (r) => r.attributes['server.port'] === p });
  }
  const done: (Switch & { kind: string })[] = [];
  await sleep(1500);
  for (const step of plan) {
    const writtenMs = save(step.text);
    done.push({ writtenMs, isNew: step.isNew, kind: step.kind });
    await sleep(1500);
  }
  client.child.stdin!.end('stop\n');
  await waitFor(client, /sent (\d+)/);
  const sent = Number(/sent (\d+)/.exec(client.output())![1]);
  await sleep(2000);
  clearInterval(stamp);
  for (const r of sink.records()) if (!arrivals.has(r)) arrivals.set(r, Date.now());
  await stop(agent, 'SIGINT');
  await sink.stop();
  killAll();

  const records = sink.records();
  const byObserved = [...records].sort((a, b) => ms(a.observed_time) - ms(b.observed_time));
  const effect: Record<string, number[]> = { header: [], port: [] };
  const delivered: Record<string, number[]> = { header: [], port: [] };
  const lastOld: Record<string, number[]> = { header: [], port: [] };
  const uncaught: number[] = [];
  const holes: number[] = [];
  const servers = records.filter((r) => r.attributes['headertap.role'] === 'server');
  done.forEach((s, i) => {
    if (i === switches) return; // the settling step
    const end = done[i + 1]?.writtenMs ?? Infinity;
    const inWindow = byObserved.filter((r) => ms(r.observed_time) >= s.writtenMs - 1000 && ms(r.observed_time) < end);
    const firstNew = inWindow.find((r) => ms(r.observed_time) >= s.writtenMs && s.isNew(r));
    const olds = inWindow.filter((r) => !s.isNew(r) && ms(r.observed_time) >= s.writtenMs);
    if (!firstNew) return;
    effect[s.kind].push(ms(firstNew.observed_time) - s.writtenMs);
    delivered[s.kind].push(arrivals.get(firstNew)! - s.writtenMs);
    lastOld[s.kind].push(olds.length ? ms(olds[olds.length - 1].observed_time) - s.writtenMs : 0);
    if (s.kind === 'port') {
      // Requests sent between the last one recorded on the old port and the first on the new one,
      // and requests to the new port missing after its first (every second request goes there).
      const olds = servers.filter((r) => !s.isNew(r) && ms(r.time) < end && ms(r.time) >= s.writtenMs - 1000).map(seqOf);
      const news = servers.filter((r) => s.isNew(r) && ms(r.time) >= s.writtenMs && ms(r.time) < end).map(seqOf);
      if (olds.length && news.length) uncaught.push(Math.min(...news) - Math.max(...olds) - 1);
      if (news.length) holes.push((Math.max(...news) - Math.min(...news)) / 2 + 1 - new Set(news).size);
    }
  });

  // Whole-run accounting, per side: phase 1 must have every request once, wholly old or new.
  const phase1End = done[switches].writtenMs;
  const lines: string[] = [];
  for (const side of ['client', 'server']) {
    const mine = records.filter((r) => r.attributes['headertap.role'] === side);
    const p1 = mine.filter((r) => ms(r.time) < phase1End - 200);
    const seqs = p1.map(seqOf).sort((a, b) => a - b);
    const maxSeq = seqs[seqs.length - 1];
    const missing = maxSeq + 1 - new Set(seqs).size;
    const doubled = seqs.length - new Set(seqs).size;
    const half = p1.filter((r) => (r.attributes['http.request.header.x-old'] !== undefined) === (r.attributes['http.request.header.x-new'] !== undefined)).length;
    const unanswered = mine.filter((r) => r.attributes['headertap.unanswered_reason'] !== undefined).length;
    lines.push(`  ${side}: header phase ${seqs.length} records for requests 0..${maxSeq}: missing ${missing}, doubled ${doubled}, half old/half new ${half}; unanswered (whole run) ${unanswered}`);
  }

  process.stdout.write(
    [
      `reload bench: ${switches} header switches then ${switches} port switches, ${rate} req/s, ${sent} requests; CPU ${APP_CPU}: servers, CPU ${TOOL_CPU}: agent + client`,
      `  write -> first record under the new rules (ms): header globs ${fmt(effect.header)}; port filter ${fmt(effect.port)}`,
      `  write -> that record at the receiver (ms): header globs ${fmt(delivered.header)}; port filter ${fmt(delivered.port)}`,
      `  write -> last record under the old rules (ms): header globs ${fmt(lastOld.header)}; port filter ${fmt(lastOld.port)}`,
      ...lines,
      `  port switches: requests sent between the last recorded on the old port and the first on the new one: ${fmt(uncaught)}; requests to the new port missing after its first one: ${fmt(holes)}`,
    ].join('\n') + '\n',
  );
}

main().catch(async (err) => {
  process.stderr.write(`reload bench: ${(err as Error).stack ?? String(err)}\n`);
  killAll();
  process.exit(1);
});
