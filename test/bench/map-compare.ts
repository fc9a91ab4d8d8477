/**
 * The mapper alone, this build against another built checkout, in one
 * process: the recording's exchanges are parsed once, then both builds'
 * mappers (default rules, as the agent makes them) map all of them, in
 * alternating order, round after round. Prints the least CPU per record of
 * each and the ratio. The stages bench measures the map stage as a
 * difference of two cumulative runs, too noisy for a change of a few
 * percent; this is the A/B for one.
 *
 *   node dist/test/bench/map-compare.js FILE.htrec OTHER_DIST [ROUNDS]
 *
 * OTHER_DIST is the other checkout's dist/ (e.g. main's, built); ROUNDS
 * defaults to 12, the first 2 are warm-up. HTTP/2 connections are masked in
 * recordings (README, Secrets), so gRPC mapping is not in it.
 */
import * as path from 'node:path';
import { ConnectionTracker, type HttpExchange } from '../../src/http';
import type { ExchangeMapper } from '../../src/otel';
import { readRecording, type SourceEvent } from '../../src/source';
import { eventsOf } from '../../src/source/recording';
import { defaultMapper } from './lib/mapping';

const WARM_UP = 2;

function exchangesOf(file: string): HttpExchange[] {
  const out: HttpExchange[] = [];
  const { clock } = defaultMapper();
  const tracker = new ConnectionTracker({ maxHeaderBytes: 16384, onExchange: (ex) => out.push(ex) });
  for (const ev of eventsOf(readRecording(file)) as Iterable<SourceEvent>) {
    if (ev.kind === 'data') tracker.onData(ev);
    else if (ev.kind === 'close') tracker.onClose(ev);
    else if (ev.kind === 'ready' || ev.kind === 'stats') clock.setOffset(ev.realtimeOffsetNs);
  }
  tracker.flush();
  return out;
}

/** CPU µs to map every exchange once. */
function timeMap(mapper: ExchangeMapper, exchanges: HttpExchange[]): number {
  const t0 = process.cpuUsage();
  let n = 0;
  for (const ex of exchanges) n += mapper.map(ex).attributes.length;
  const t = process.cpuUsage(t0);
  if (n < 0) throw new Error('unreachable'); // keeps the results alive
  return t.user + t.system;
}

function main(): void {
  const [file, otherDist, roundsArg] = process.argv.slice(2);
  const rounds = Number(roundsArg ?? 12);
  if (!file || !otherDist || !(rounds > WARM_UP)) {
    process.stderr.write('usage: node dist/test/bench/map-compare.js FILE.htrec OTHER_DIST [ROUNDS > 2]\n');
    process.exit(2);
  }
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const other = require(path.resolve(otherDist, 'test', 'bench', 'lib', 'mapping.js')) as { defaultMapper: typeof defaultMapper };
  const exchanges = exchangesOf(file);
  const mappers = { this: defaultMapper().mapper, other: other.defaultMapper().mapper };
  const best = { this: Infinity, other: Infinity };
  for (let round = 0; round < rounds; round++) {
    for (const name of round % 2 ? (['this', 'other'] as const) : (['other', 'this'] as const)) {
      const us = timeMap(mappers[name], exchanges);
      if (round >= WARM_UP) best[name] = Math.min(best[name], us / exchanges.length);
    }
  }
  process.stdout.write(
    `${exchanges.length} exchanges, least of ${rounds - WARM_UP} rounds, us/record: other ${best.other.toFixed(3)}, this ${best.this.toFixed(3)}; ` +
      `this/other ${(best.this / best.other).toFixed(2)}\n`,
  );
}

main();
