import { jsonLine, visible } from './escape';

/**
 * A log record as plain JSON, the shape headertap prints: `run --console`
 * builds it from headertap's record, `receive` from decoded OTLP. One shape, so
 * what the agent prints and what a collector receives can be compared line
 * for line.
 */
export type FlatValue = string | number | boolean | null | FlatValue[] | { [key: string]: FlatValue };

export interface FlatRecord {
  time: string;
  observed_time?: string;
  severity_text?: string;
  severity_number?: number;
  event_name?: string;
  body?: FlatValue;
  trace_id?: string;
  span_id?: string;
  trace_flags?: number;
  resource: Record<string, FlatValue>;
  scope?: { name: string; version?: string };
  attributes: Record<string, FlatValue>;
  dropped_attributes_count?: number;
}

/** [seconds, nanoseconds] since the epoch to RFC 3339 with nanoseconds. */
export function formatTime(sec: number, ns: number): string {
  const iso = new Date(sec * 1000).toISOString(); // …T03:59:12.000Z
  return `${iso.slice(0, 19)}.${String(ns).padStart(9, '0')}Z`;
}

/** Nanoseconds since the epoch (as a bigint or decimal string) to RFC 3339. */
export function formatUnixNano(nanos: bigint): string {
  return formatTime(Number(nanos / 1_000_000_000n), Number(nanos % 1_000_000_000n));
}

/** One JSON line (--format jsonl, --console); controls a terminal would act on are \u escapes. */
export function toJsonLine(rec: FlatRecord): string {
  return jsonLine(rec);
}

function show(v: FlatValue | undefined): string {
  if (typeof v === 'string') return v;
  return JSON.stringify(v);
}

function durationText(ns: FlatValue | undefined): string | undefined {
  if (typeof ns !== 'number') return undefined;
  return ns >= 1e6 ? `${(ns / 1e6).toFixed(2)} ms` : `${(ns / 1e3).toFixed(1)} µs`;
}

const SHOWN_INLINE = new Set([
  'http.request.method',
  'http.response.status_code',
  'url.path',
  'url.query',
  'url.scheme',
  'network.protocol.name',
  'network.protocol.version',
  'network.local.address',
  'network.local.port',
  'network.peer.address',
  'network.peer.port',
  'network.transport',
  'network.type',
  'client.address',
  'client.port',
  'server.address',
  'server.port',
  'process.pid',
  'process.executable.name',
  'headertap.role',
  'headertap.duration_ns',
  'user_agent.original',
]);

/**
 * A readable block: summary line, who/where, trace ids, then headers in wire
 * order. Every line is passed through visible(): whatever the record holds,
 * the block is exactly these lines, and no byte of it moves the cursor.
 */
export function toPretty(rec: FlatRecord): string {
  const a = rec.attributes;
  const lines: string[] = [];
  lines.push(`${rec.time} ${(rec.severity_text ?? '').padEnd(5)} ${show(rec.body)}`);

  const who: string[] = [];
  if (a['headertap.role'] !== undefined) who.push(String(a['headertap.role']));
  // The observed process is the record's resource (records of headertap before it carried it themselves).
  const exe = a['process.executable.name'] ?? rec.resource['process.executable.name'];
  if (exe !== undefined) who.push(`${show(exe)}[${show(a['process.pid'] ?? rec.resource['process.pid'])}]`);
  const svc = rec.resource['service.name'];
  if (svc !== undefined) who.push(`service=${show(svc)}`);
  const dur = durationText(a['headertap.duration_ns']);
  if (dur) who.push(dur);
  if (who.length) lines.push(`  ${who.join('  ')}`);

  if (a['network.local.address'] !== undefined) {
    const proto = `${show(a['url.scheme'])} HTTP/${show(a['network.protocol.version'])}`;
    lines.push(
      `  ${show(a['network.local.address'])}:${show(a['network.local.port'])} -> ` +
        `${show(a['network.peer.address'])}:${show(a['network.peer.port'])}  ${proto}`,
    );
  }
  if (rec.trace_id) lines.push(`  trace_id=${rec.trace_id} span_id=${rec.span_id ?? ''}`);
  if (a['url.query'] !== undefined) lines.push(`  query: ${show(a['url.query'])}`);

  const rest: string[] = [];
  for (const [key, value] of Object.entries(a)) {
    if (key.startsWith('http.request.header.') || key.startsWith('http.response.header.')) continue;
    if (!SHOWN_INLINE.has(key)) rest.push(`${key}=${show(value)}`);
  }
  if (rest.length) lines.push(`  ${rest.join('  ')}`);
  for (const [prefix, arrow] of [
    ['http.request.header.', '>'],
    ['http.response.header.', '<'],
  ] as const) {
    for (const [key, value] of Object.entries(a)) {
      if (!key.startsWith(prefix)) continue;
      const name = key.slice(prefix.length);
      for (const v of Array.isArray(value) ? value : [value]) lines.push(`  ${arrow} ${name}: ${show(v)}`);
    }
  }
  return lines.map(visible).join('\n');
}
