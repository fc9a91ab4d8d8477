import type * as Yaml from 'yaml';
import { UsageError } from '../common/errors';
import {
  DEFAULT_CAPTURE_HEADERS,
  DEFAULT_MAX_ATTRIBUTES,
  DEFAULT_REDACT_HEADERS,
  DELIVERY_DEFAULTS,
  MAX_SCOPED_RULES,
  OTLP_COMPRESSIONS,
  resolveRedactGlobs,
  type OtlpCompression,
  compileRoutePattern,
  DEFAULT_MAX_ROUTES,
  MAX_ROUTE_RULES,
  type RouteRule,
  DEFAULT_CARDINALITY_LIMIT,
  MAX_METRIC_HEADERS,
  type MetricsTemporality,
  type ScopedList,
  type ScopedRule,
  type WorkloadMatch,
} from '../otel';
import { LOADER_LIMITS } from '../source';
import { cgroup2Mount } from '../workload';
import { PathProblem, readSmallFile } from './files';

/** The environment variable holding the --hash-headers key when --hash-key-file is not given. */
export const HASH_KEY_ENV = 'HEADERTAP_HASH_KEY';


/** Everything `headertap run` is told, after flags, config file and defaults are merged. */
export interface RunOptions {
  endpoint?: string;
  protocol?: string;
  compression?: OtlpCompression;
  console: boolean;
  pid: number[];
  comm: string[];
  port: number[];
  captureHeaders: string[];
  excludeHeaders: string[];
  captureRequestHeaders?: string[];
  captureResponseHeaders?: string[];
  excludeRequestHeaders: string[];
  excludeResponseHeaders: string[];
  redactHeaders: string[];
  hashHeaders: string[];
  hashKeyFile?: string;
  processCommandLine: boolean;
  cgroup: string[];
  maxHeaderBytes: number;
  /** Attributes of a record together with its resource's, at most. */
  maxAttributes: number;
  /** Capture TLS plaintext with uprobes on OpenSSL (--no-tls turns it off). */
  tls: boolean;
  /** Stop a process that opens a libssl not probed yet until it is (--no-tls-hold turns it off). */
  tlsHold: boolean;
  /** --service-name; when not given, OTEL_SERVICE_NAME and the rest decide (src/cli/identity.ts). */
  serviceName?: string;
  emitSpans: boolean;
  embeddedReceiver: boolean;
  format: 'pretty' | 'jsonl';
  record?: string;
  replay?: string;
  verbose: boolean;
  bufferRecords: number;
  bufferBytes: number;
  spoolDir?: string;
  spoolMaxBytes: number;
  maxRequestBytes: number;
  /** Seconds; absent: OTEL_EXPORTER_OTLP_[LOGS_]TIMEOUT, else 10. */
  exportTimeout?: number;
  shutdownTimeout: number;
  statsInterval: number;
  selfMetrics: boolean;
  ringbufKb: number;
  /** Header rules for some workloads (config file only: `rules:`). */
  rules: ScopedRule[];
  /** Route patterns per workload (config file only: `routes:`). */
  routes: RouteRule[];
  /** Distinct routes per workload at most. */
  maxRoutes: number;
  /** Export request duration histograms (--no-request-metrics turns them off). */
  requestMetrics: boolean;
  /** Absent: OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE, else cumulative. */
  metricsTemporality?: MetricsTemporality;
  /** Seconds between metric exports; absent: OTEL_METRIC_EXPORT_INTERVAL (ms), else 60. */
  metricsInterval?: number;
  /** Request headers whose values become metric attributes (lower case). */
  metricHeaders: string[];
  /** Series per metric and workload at most, the overflow series included. */
  metricCardinalityLimit: number;
}

type Parser<T> = (raw: unknown, where: string) => T;

/** One option of `run`: its flag, its config key, how values are checked. */
export interface OptionSpec {
  /** Config key and flag name (kebab-case). */
  key: string;
  /** RunOptions property. */
  prop: keyof RunOptions;
  /** Commander flag syntax; none for keys only a config file can set. */
  flag?: string;
  help: string;
  repeatable?: boolean;
  parse: Parser<unknown>;
  default?: unknown;
  /**
   * A change in the --config file takes effect while running (src/cli/reload.ts).
   * Without it a changed value is reported as needing a restart. To make a key
   * live, set this and give the part of the agent that reads it a LivePart
   * there (e.g. --metric-headers: compile the globs in prepare, swap one
   * reference in commit, read that reference once per record).
   */
  live?: true;
}

function str(raw: unknown, where: string): string {
  if (typeof raw === 'string') return raw;
  if (typeof raw === 'number') return String(raw);
  throw new UsageError(`${where}: expected a string, got ${JSON.stringify(raw)}`);
}

function integer(min: number, max: number, what: string): Parser<number> {
  return (raw, where) => {
    const s = str(raw, where).trim();
    const n = Number(s);
    if (!/^\d+$/.test(s) || n < min || n > max) {
      throw new UsageError(`${where} '${s}' is not a valid ${what}; expected an integer from ${min} to ${max}`);
    }
    return n;
  };
}

/**
 * A list from repeated flags, comma-separated values (unless split is
 * false), or a YAML sequence. Empty items are skipped, except for filters
 * (`filter` set): an empty --comm or --port would silently mean "no
 * filter", so it is refused, naming what to give instead.
 */
function list<T>(item: Parser<T>, split = true, filter?: { what: string; example: string }): Parser<T[]> {
  return (raw, where) => {
    const items = Array.isArray(raw) ? raw : [raw];
    const out: T[] = [];
    for (const it of items) {
      for (const part of typeof it === 'string' && split ? it.split(',') : [it]) {
        if (typeof part === 'string' && part.trim() === '') {
          if (!filter) continue;
          const flag = where.startsWith('--config') ? `the key` : where;
          throw new UsageError(
            `${where} '${it as string}' has an empty ${filter.what}; give one, e.g. ${filter.example}, or leave ${flag} out to capture all traffic`,
          );
        }
        out.push(item(typeof part === 'string' ? part.trim() : part, where));
      }
    }
    return out;
  };
}

const SIZE_UNITS: Record<string, number> = { '': 1, k: 1 << 10, kib: 1 << 10, m: 1 << 20, mib: 1 << 20, g: 1 << 30, gib: 1 << 30 };

/** A byte size: a plain integer or one with a binary unit (64MiB, 512k, 1G). */
function size(min: number, max: number): Parser<number> {
  return (raw, where) => {
    const s = str(raw, where).trim();
    const m = /^(\d+)\s*([a-zA-Z]*)$/.exec(s);
    const unit = m ? SIZE_UNITS[m[2].toLowerCase()] : undefined;
    const n = m && unit ? Number(m[1]) * unit : NaN;
    if (!(n >= min && n <= max)) {
      throw new UsageError(`${where} '${s}' is not a valid size; expected bytes from ${min} to ${max}, optionally with a unit (KiB, MiB, GiB), e.g. 64MiB`);
    }
    return n;
  };
}

/** Seconds, with up to three decimals (0.5, 10). */
function seconds(min: number, max: number): Parser<number> {
  return (raw, where) => {
    const s = str(raw, where).trim();
    const n = Number(s);
    if (!/^\d+(\.\d{1,3})?$/.test(s) || n < min || n > max) {
      throw new UsageError(`${where} '${s}' is not a valid number of seconds; expected ${min} to ${max}, e.g. 10 or 2.5`);
    }
    return n;
  };
}

function powerOfTwo(min: number, max: number, what: string): Parser<number> {
  const base = integer(min, max, what);
  return (raw, where) => {
    const n = base(raw, where);
    if (n & (n - 1)) throw new UsageError(`${where} '${n}' is not a power of two; e.g. ${min}, ${min * 2}, ${min * 4}`);
    return n;
  };
}

function bool(raw: unknown, where: string): boolean {
  if (typeof raw === 'boolean') return raw;
  if (raw === 'true') return true;
  if (raw === 'false') return false;
  throw new UsageError(`${where}: expected true or false, got ${JSON.stringify(raw)}`);
}

function oneOf<T extends string>(...values: T[]): Parser<T> {
  return (raw, where) => {
    const s = str(raw, where);
    if (!(values as string[]).includes(s)) throw new UsageError(`${where} '${s}' is not one of: ${values.join(', ')}`);
    return s as T;
  };
}

const comm: Parser<string> = (raw, where) => {
  const s = str(raw, where);
  if (s.length === 0 || Buffer.byteLength(s) > 15) {
    throw new UsageError(`${where} '${s}' is not a process name; expected 1 to 15 bytes as in /proc/PID/comm`);
  }
  return s;
};

const glob: Parser<string> = (raw, where) => {
  const s = str(raw, where).trim();
  if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z?[\]]+$/.test(s)) {
    throw new UsageError(`${where} '${s}' is not a header-name glob; use letters, digits, '-', '*' and '?', e.g. x-tenant-*`);
  }
  return s;
};

/** A header name, as it is sent (no globs); lower-cased. */
const headerName: Parser<string> = (raw, where) => {
  const s = str(raw, where).trim();
  if (!/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/.test(s) || /[*?]/.test(s)) {
    throw new UsageError(`${where} '${s}' is not a header name; give names as sent, without globs, e.g. x-tenant`);
  }
  return s.toLowerCase();
};

/** A --redact-headers entry: a glob, +GLOB (added to the default list) or !GLOB (never redacted). */
const redactGlob: Parser<string> = (raw, where) => {
  const s = str(raw, where).trim();
  const prefix = s[0] === '+' || s[0] === '!' ? s[0] : '';
  const rest = s.slice(prefix.length);
  if (prefix && !rest) throw new UsageError(`${where} '${s}' needs a glob after '${prefix}', e.g. ${prefix}x-internal-*`);
  if (rest[0] === '+' || rest[0] === '!') {
    throw new UsageError(`${where} '${s}' has more than one '+' or '!' prefix; write +GLOB to add to the default list, !GLOB to never redact a name`);
  }
  return prefix + glob(rest, where);
};

/** A YAML mapping, with every key in `known` (an unknown one is named with a suggestion). */
function mapping(raw: unknown, where: string, known: readonly string[]): Record<string, unknown> {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw new UsageError(`${where}: expected a mapping with keys ${known.join(', ')}`);
  }
  const m = raw as Record<string, unknown>;
  for (const key of Object.keys(m)) {
    if (known.includes(key)) continue;
    const hint = suggest(key, known);
    // "--config F: key 'rules[0]'" → "--config F has an unknown key 'rules[0].captur-headers'"
    const at = /^(.*): key '([^']*)'$/.exec(where);
    const what = at ? `${at[1]} has an unknown key '${at[2]}.${key}'` : `${where} has an unknown key '${key}'`;
    throw new UsageError(`${what}${hint ? ` (did you mean '${hint}'?)` : ''}; keys there are ${known.join(', ')}`);
  }
  return m;
}

const workloadName: Parser<string> = (raw, where) => {
  const s = str(raw, where).trim();
  if (!s || /[\s\0]/.test(s)) throw new UsageError(`${where} '${s}' is not a name glob; e.g. payments or checkout-*`);
  return s;
};

/** A cgroup v2 path as /proc/PID/cgroup shows it after `0::` (a directory under the cgroup2 mount is taken relative to it). */
const cgroupScope: Parser<string> = (raw, where) => {
  const s = str(raw, where).trim();
  const mount = cgroup2Mount();
  const rel = mount && (s === mount || s.startsWith(`${mount}/`)) ? s.slice(mount.length) || '/' : s;
  if (!rel.startsWith('/') || rel.includes('\0')) {
    throw new UsageError(`${where} '${s}' is not a cgroup path; use one as /proc/PID/cgroup shows it after '0::', e.g. /system.slice/payments.service`);
  }
  return rel;
};

/** `rules:` keys: the header-list flags a scope can set, and where they go in a ScopedRule. */
const SCOPED_KEYS: Record<string, ScopedList> = {
  'capture-headers': 'capture',
  'exclude-headers': 'exclude',
  'capture-request-headers': 'captureRequest',
  'capture-response-headers': 'captureResponse',
  'exclude-request-headers': 'excludeRequest',
  'exclude-response-headers': 'excludeResponse',
  'redact-headers': 'redact',
  'hash-headers': 'hash',
};
const MATCH_KEYS = ['service-name', 'executable', 'cgroup', 'port'] as const;

/** A rule's `match:` (`at(key)` names a key under the rule). */
function workloadMatch(raw: unknown, at: (key: string) => string): WorkloadMatch {
  const mm = mapping(raw, at('match'), MATCH_KEYS);
  const match: WorkloadMatch = {};
  const given = (key: string) => mm[key] !== undefined && mm[key] !== null;
  const under = (key: string) => at(`match.${key}`);
  if (given('service-name')) match.serviceNames = list(workloadName)(mm['service-name'], under('service-name'));
  if (given('executable')) match.executables = list(workloadName)(mm.executable, under('executable'));
  if (given('cgroup')) match.cgroups = list(cgroupScope, false)(mm.cgroup, under('cgroup'));
  if (given('port')) match.ports = list(integer(1, 65535, 'port'))(mm.port, under('port'));
  if (!Object.values(match).some((v) => (v as readonly unknown[]).length > 0)) {
    throw new UsageError(`${at('match')}: names no workload; give service-name, executable, cgroup or port`);
  }
  return match;
}

/** `routes:` in the config file: a list of {match (optional), patterns} (README, "Routes"). */
const routeRules: Parser<RouteRule[]> = (raw, where) => {
  if (!Array.isArray(raw)) throw new UsageError(`${where}: expected a list of route rules, e.g. "- patterns: [/api/items/{id}]"`);
  if (raw.length > MAX_ROUTE_RULES) throw new UsageError(`${where}: ${raw.length} route rules; at most ${MAX_ROUTE_RULES}`);
  const at = (i: number, key?: string) => where.replace(/'([^']*)'$/, (_, k: string) => `'${k}[${i}]${key ? `.${key}` : ''}'`);
  return raw.map((item, i) => {
    const m = mapping(item, at(i), ['match', 'patterns']);
    const patterns = list(str, false)(m.patterns ?? [], at(i, 'patterns'));
    if (patterns.length === 0) throw new UsageError(`${at(i)}: needs 'patterns', a list of routes such as /api/items/{id}`);
    for (const p of patterns) {
      try {
        compileRoutePattern(p);
      } catch (err) {
        throw new UsageError(`${at(i, 'patterns')}: ${(err as Error).message}; e.g. /api/items/{id} or /static/**`);
      }
    }
    return m.match === undefined || m.match === null ? { patterns } : { match: workloadMatch(m.match, (key) => at(i, key)), patterns };
  });
};

/** `rules:` in the config file: a list of {match, <header lists>} (README, "Rules per workload"). */
const scopedRules: Parser<ScopedRule[]> = (raw, where) => {
  if (!Array.isArray(raw)) throw new UsageError(`${where}: expected a list of rules, each with a 'match' and header lists, e.g. "- match: {service-name: payments}"`);
  if (raw.length > MAX_SCOPED_RULES) throw new UsageError(`${where}: ${raw.length} rules; at most ${MAX_SCOPED_RULES}`);
  const at = (i: number, key?: string) => where.replace(/'([^']*)'$/, (_, k: string) => `'${k}[${i}]${key ? `.${key}` : ''}'`);
  return raw.map((item, i) => {
    const m = mapping(item, at(i), ['match', ...Object.keys(SCOPED_KEYS)]);
    if (m.match === undefined || m.match === null) {
      throw new UsageError(`${at(i)}: needs a 'match' naming the workloads (${MATCH_KEYS.join(', ')})`);
    }
    const rule: ScopedRule = { match: workloadMatch(m.match, (key) => at(i, key)) };
    for (const [key, prop] of Object.entries(SCOPED_KEYS)) {
      if (m[key] !== undefined && m[key] !== null) rule[prop] = list(glob)(m[key], at(i, key));
    }
    if (Object.keys(rule).length === 1) {
      throw new UsageError(`${at(i)}: sets no header list; give one of ${Object.keys(SCOPED_KEYS).join(', ')}`);
    }
    return rule;
  });
};

const nonEmpty: Parser<string> = (raw, where) => {
  const s = str(raw, where).trim();
  if (!s) throw new UsageError(`${where}: expected a non-empty value`);
  return s;
};

/** Every option of `headertap run`. Flags and config keys are the same names. */
export const RUN_OPTIONS: OptionSpec[] = [
  {
    key: 'endpoint',
    prop: 'endpoint',
    flag: '--endpoint <url>',
    help: 'OTLP endpoint base URL, like OTEL_EXPORTER_OTLP_ENDPOINT (default: from OTEL_EXPORTER_OTLP_[LOGS_]ENDPOINT, else http://localhost:4317, or :4318 for http/protobuf)',
    parse: nonEmpty,
  },
  {
    key: 'protocol',
    prop: 'protocol',
    flag: '--protocol <protocol>',
    help: 'grpc or http/protobuf (default: from OTEL_EXPORTER_OTLP_[LOGS_]PROTOCOL, else grpc)',
    parse: nonEmpty,
  },
  {
    key: 'compression',
    prop: 'compression',
    flag: '--compression <c>',
    help: 'OTLP request compression, gzip or none (default: from OTEL_EXPORTER_OTLP_[LOGS_]COMPRESSION, else gzip)',
    parse: oneOf(...OTLP_COMPRESSIONS),
  },
  { key: 'console', prop: 'console', flag: '--console', help: 'also print each record to stdout as one JSON line', parse: bool, default: false },
  {
    key: 'pid',
    live: true,
    prop: 'pid',
    flag: '--pid <N>',
    help: 'capture only process N (repeatable or comma-separated, up to 16)',
    repeatable: true,
    parse: list(integer(1, 2 ** 31 - 1, 'process id'), true, { what: 'process id', example: '--pid 1234' }),
    default: [],
  },
  {
    key: 'comm',
    live: true,
    prop: 'comm',
    flag: '--comm <NAME>',
    help: 'capture only processes named NAME, as in /proc/PID/comm (repeatable, up to 8)',
    repeatable: true,
    parse: list(comm, true, { what: 'process name', example: '--comm nginx' }),
    default: [],
  },
  {
    key: 'port',
    live: true,
    prop: 'port',
    flag: '--port <N>',
    help: 'capture only connections with port N at either end (repeatable, up to 16)',
    repeatable: true,
    parse: list(integer(1, 65535, 'port'), true, { what: 'port', example: '--port 8080' }),
    default: [],
  },
  {
    key: 'cgroup',
    live: true,
    prop: 'cgroup',
    flag: '--cgroup <path>',
    help: 'capture only processes in this cgroup v2 directory or below it (repeatable, up to 8); applied in the kernel',
    repeatable: true,
    parse: list(nonEmpty, false, { what: 'cgroup path', example: '--cgroup /sys/fs/cgroup/system.slice/nginx.service' }), // paths may hold commas
    default: [],
  },
  {
    key: 'capture-headers',
    live: true,
    prop: 'captureHeaders',
    flag: '--capture-headers <globs>',
    help: 'comma-separated, case-insensitive header-name globs to keep (default: *)',
    parse: list(glob),
    default: DEFAULT_CAPTURE_HEADERS,
  },
  {
    key: 'exclude-headers',
    live: true,
    prop: 'excludeHeaders',
    flag: '--exclude-headers <globs>',
    help: 'header-name globs never kept, even when --capture-headers matches (default: none)',
    parse: list(glob),
    default: [],
  },
  {
    key: 'capture-request-headers',
    live: true,
    prop: 'captureRequestHeaders',
    flag: '--capture-request-headers <globs>',
    help: 'like --capture-headers, for request headers only; replaces it for requests',
    parse: list(glob),
  },
  {
    key: 'capture-response-headers',
    live: true,
    prop: 'captureResponseHeaders',
    flag: '--capture-response-headers <globs>',
    help: 'like --capture-headers, for response headers only; replaces it for responses',
    parse: list(glob),
  },
  {
    key: 'exclude-request-headers',
    live: true,
    prop: 'excludeRequestHeaders',
    flag: '--exclude-request-headers <globs>',
    help: 'header-name globs never kept in requests (added to --exclude-headers)',
    parse: list(glob),
    default: [],
  },
  {
    key: 'exclude-response-headers',
    live: true,
    prop: 'excludeResponseHeaders',
    flag: '--exclude-response-headers <globs>',
    help: 'header-name globs never kept in responses (added to --exclude-headers)',
    parse: list(glob),
    default: [],
  },
  {
    key: 'redact-headers',
    live: true,
    prop: 'redactHeaders',
    flag: '--redact-headers <globs>',
    help:
      'header-name globs whose values become [REDACTED], also applied to query parameters and to the queries of URLs in header values; ' +
      `plain globs replace the default list, +GLOB adds to it, !GLOB never redacts matching names (default: ${DEFAULT_REDACT_HEADERS.join(',')})`,
    parse: (raw, where) => resolveRedactGlobs(list(redactGlob)(raw, where)),
    default: DEFAULT_REDACT_HEADERS,
  },
  {
    key: 'hash-headers',
    live: true,
    prop: 'hashHeaders',
    flag: '--hash-headers <globs>',
    help: `header-name globs whose values become sha256:<hex>, an HMAC-SHA256 keyed by --hash-key-file or ${HASH_KEY_ENV} (wins over --redact-headers; also applied to query parameters)`,
    parse: list(glob),
    default: [],
  },
  {
    key: 'hash-key-file',
    live: true,
    prop: 'hashKeyFile',
    flag: '--hash-key-file <file>',
    help: `file holding the key for --hash-headers, at least 16 bytes (default: the ${HASH_KEY_ENV} environment variable)`,
    parse: nonEmpty,
  },
  {
    key: 'process-command-line',
    prop: 'processCommandLine',
    flag: '--process-command-line',
    help: 'add process.command_line to each workload resource (argument values with secret names are redacted)',
    parse: bool,
    default: false,
  },
  {
    key: 'max-header-bytes',
    live: true,
    prop: 'maxHeaderBytes',
    flag: '--max-header-bytes <N>',
    help: 'header bytes kept per message, 256 to 1 MiB; more is marked headertap.truncated (header_limit). The kernel copies each socket call this far too, at least 16 KiB (default: 16384)',
    parse: integer(256, 1 << 20, 'byte count'),
    default: 16384,
  },
  {
    key: 'max-attributes',
    prop: 'maxAttributes',
    flag: '--max-attributes <N>',
    help: `attributes of a record together with its resource's at most; past it headers are left out, the least wanted first, and counted in dropped_attributes_count (default: ${DEFAULT_MAX_ATTRIBUTES}, within Loki's 128 structured-metadata entries)`,
    parse: integer(32, 65535, 'attribute count'),
    default: DEFAULT_MAX_ATTRIBUTES,
  },
  {
    key: 'tls',
    prop: 'tls',
    flag: '--no-tls',
    help: 'do not capture HTTPS: no uprobes on OpenSSL (default: capture TLS plaintext from libssl and programs that embed OpenSSL, e.g. node)',
    parse: bool,
    default: true,
  },
  {
    key: 'tls-hold',
    prop: 'tlsHold',
    flag: '--no-tls-hold',
    help: 'do not stop a process that opens a libssl headertap has not probed yet for the few milliseconds probing takes (default: stop it, so its first HTTPS exchange is captured; see README "HTTPS")',
    parse: bool,
    default: true,
  },
  {
    key: 'service-name',
    prop: 'serviceName',
    flag: '--service-name <name>',
    help: "service.name of headertap's own resource (default: from OTEL_SERVICE_NAME, else service.name in OTEL_RESOURCE_ATTRIBUTES, else headertap)",
    parse: nonEmpty,
  },
  {
    key: 'emit-spans',
    prop: 'emitSpans',
    flag: '--emit-spans',
    help: "also export one CLIENT/SERVER span per exchange over OTLP traces, a child of the request's trace context (headers in Jaeger)",
    parse: bool,
    default: false,
  },
  {
    key: 'embedded-receiver',
    prop: 'embeddedReceiver',
    flag: '--embedded-receiver',
    help: 'also run the OTLP receiver in this process on the endpoint address and print what it receives',
    parse: bool,
    default: false,
  },
  {
    key: 'format',
    prop: 'format',
    flag: '--format <format>',
    help: "how --embedded-receiver prints records: pretty or jsonl (default: pretty)",
    parse: oneOf('pretty', 'jsonl'),
    default: 'pretty',
  },
  {
    key: 'record',
    prop: 'record',
    flag: '--record <file>',
    help: "also write the loader's raw event stream to FILE, for --replay; secret header values, query parameters and URL credentials are masked, message bodies are kept: keep it private",
    parse: nonEmpty,
  },
  {
    key: 'replay',
    prop: 'replay',
    flag: '--replay <file>',
    help: 'read events from a --record FILE instead of the kernel (no root needed)',
    parse: nonEmpty,
  },
  { key: 'verbose', prop: 'verbose', flag: '--verbose', help: 'print debug messages, including libbpf and loader output', parse: bool, default: false },
  {
    key: 'buffer-records',
    prop: 'bufferRecords',
    flag: '--buffer-records <N>',
    help: `records held in memory while the collector is slow or down; beyond, the oldest are dropped and counted (default: ${DELIVERY_DEFAULTS.maxRecords})`,
    parse: integer(1, 10_000_000, 'record count'),
    default: DELIVERY_DEFAULTS.maxRecords,
  },
  {
    key: 'buffer-bytes',
    prop: 'bufferBytes',
    flag: '--buffer-bytes <size>',
    help: 'bytes of records held in memory at most (their OTLP-encoded size, e.g. 64MiB) (default: 64MiB)',
    parse: size(1 << 16, 2 ** 34),
    default: DELIVERY_DEFAULTS.maxBytes,
  },
  {
    key: 'spool-dir',
    prop: 'spoolDir',
    flag: '--spool-dir <dir>',
    help: 'keep records the memory buffer cannot hold, and those pending at exit, in DIR; sent when the collector is back, also after a restart',
    parse: nonEmpty,
  },
  {
    key: 'spool-max-bytes',
    prop: 'spoolMaxBytes',
    flag: '--spool-max-bytes <size>',
    help: 'size of --spool-dir at most; beyond, the oldest records are deleted and counted (default: 1GiB)',
    parse: size(1 << 20, 2 ** 40),
    default: 1 << 30,
  },
  {
    key: 'max-request-bytes',
    prop: 'maxRequestBytes',
    flag: '--max-request-bytes <size>',
    help: "an export request's size at most, before compression; keep it under the collector's limit, 4MiB for gRPC by default (default: 2MiB)",
    parse: size(16 << 10, 1 << 30),
    default: 2 << 20,
  },
  {
    key: 'export-timeout',
    prop: 'exportTimeout',
    flag: '--export-timeout <seconds>',
    help: "how long an export request waits for the collector's answer; larger requests, and retries after a timeout, wait longer (default: OTEL_EXPORTER_OTLP_[LOGS_]TIMEOUT in ms, else 10)",
    parse: seconds(0.1, 3600),
  },
  {
    key: 'shutdown-timeout',
    prop: 'shutdownTimeout',
    flag: '--shutdown-timeout <seconds>',
    help: 'on SIGINT/SIGTERM, how long to keep trying to deliver pending records before exiting (default: 20)',
    parse: integer(1, 3600, 'number of seconds'),
    default: 20,
  },
  {
    key: 'stats-interval',
    prop: 'statsInterval',
    flag: '--stats-interval <seconds>',
    help: 'print a line of counters on stderr, and export them as OTLP metrics, this often; 0: only at exit (default: 60)',
    parse: integer(0, 86400, 'number of seconds'),
    default: 60,
  },
  {
    key: 'self-metrics',
    prop: 'selfMetrics',
    flag: '--no-self-metrics',
    help: "do not export headertap's own counters as OTLP metrics to the endpoint",
    parse: bool,
    default: true,
  },
  {
    key: 'ringbuf-kb',
    prop: 'ringbufKb',
    flag: '--ringbuf-kb <N>',
    help: `kernel ring buffer size in KiB, a power of two; events beyond it are lost and counted (default: ${LOADER_LIMITS.ringbufKb.default})`,
    parse: powerOfTwo(LOADER_LIMITS.ringbufKb.min, LOADER_LIMITS.ringbufKb.max, 'size in KiB'),
    default: LOADER_LIMITS.ringbufKb.default,
  },
  {
    key: 'rules',
    prop: 'rules',
    help: 'header lists for some workloads: a list of {match: {service-name, executable, cgroup, port}, capture-headers, exclude-headers, redact-headers, hash-headers, …}',
    live: true,
    parse: scopedRules,
    default: [],
  },
  {
    key: 'routes',
    prop: 'routes',
    help: 'route patterns (http.route) for some or all workloads: a list of {match (optional): {service-name, executable, cgroup, port}, patterns: [/api/items/{id}, …]}',
    live: true,
    parse: routeRules,
    default: [],
  },
  {
    key: 'max-routes',
    live: true,
    prop: 'maxRoutes',
    flag: '--max-routes <N>',
    help: `distinct routes (http.route) per workload at most; more go to one ${'/**'} route and are counted (default: ${DEFAULT_MAX_ROUTES})`,
    parse: integer(1, 100_000, 'route count'),
    default: DEFAULT_MAX_ROUTES,
  },
  {
    key: 'request-metrics',
    prop: 'requestMetrics',
    flag: '--no-request-metrics',
    help: 'do not export request duration histograms (http.server.request.duration, http.client.request.duration, rpc.*.call.duration)',
    parse: bool,
    default: true,
  },
  {
    key: 'metrics-temporality',
    prop: 'metricsTemporality',
    flag: '--metrics-temporality <t>',
    help: "cumulative or delta, for the request metrics and headertap's own counters (default: from OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE, else cumulative)",
    parse: oneOf('cumulative', 'delta'),
  },
  {
    key: 'metrics-interval',
    prop: 'metricsInterval',
    flag: '--metrics-interval <seconds>',
    help: 'seconds between request-metrics exports (default: OTEL_METRIC_EXPORT_INTERVAL in ms, else 60)',
    parse: seconds(1, 86400),
  },
  {
    key: 'metric-headers',
    live: true,
    prop: 'metricHeaders',
    flag: '--metric-headers <names>',
    help: `request headers whose values become request-metric attributes http.request.header.<name>, after redaction and hashing (comma-separated, up to ${MAX_METRIC_HEADERS}; e.g. x-tenant,x-api-client)`,
    parse: (raw, where) => {
      const names = list(headerName)(raw, where);
      if (names.length > MAX_METRIC_HEADERS) throw new UsageError(`${where}: ${names.length} headers; at most ${MAX_METRIC_HEADERS} (each multiplies the series)`);
      return [...new Set(names)];
    },
    default: [],
  },
  {
    key: 'metric-cardinality-limit',
    prop: 'metricCardinalityLimit',
    flag: '--metric-cardinality-limit <N>',
    help: `series per request metric and workload at most; new attribute combinations past it go to one series otel.metric.overflow=true and are counted (default: ${DEFAULT_CARDINALITY_LIMIT})`,
    parse: integer(2, 1_000_000, 'series count'),
    default: DEFAULT_CARDINALITY_LIMIT,
  },
];

const SPEC_BY_KEY = new Map(RUN_OPTIONS.map((s) => [s.key, s]));

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
    }
  }
  return d[a.length][b.length];
}

/** "did you mean" for a mistyped key or flag. */
export function suggest(word: string, candidates: Iterable<string>): string | undefined {
  let best: string | undefined;
  let bestDistance = 3;
  for (const c of candidates) {
    const dist = editDistance(word, c);
    if (dist < bestDistance) {
      best = c;
      bestDistance = dist;
    }
  }
  return best;
}

/** Reads a --config file's text (at most MAX_INPUT_FILE_BYTES, checked before reading); errors name the file. */
export function readConfigText(file: string): string {
  try {
    return readSmallFile(file).toString('utf8');
  } catch (err) {
    if (!(err instanceof PathProblem)) throw err;
    const fix = err.message.startsWith('is ') ? '; point --config at a headertap YAML file (the keys of `headertap run --help`)' : '';
    throw new UsageError(`cannot read --config ${file}: ${err.message}${fix}`);
  }
}

/** Reads a --config YAML file (or its text, already read): a mapping whose keys are flag names. */
export function loadConfigFile(file: string, text = readConfigText(file)): Record<string, unknown> {
  // Loaded only with --config: most runs have none (start-up time, test/bench/startup.ts).
  // eslint-disable-next-line @typescript-eslint/no-require-imports
  const yaml = require('yaml') as typeof Yaml;
  let doc: unknown;
  try {
    doc = yaml.parse(text);
  } catch (err) {
    const where = err instanceof yaml.YAMLParseError && err.linePos ? ` at line ${err.linePos[0].line}` : '';
    const what = (err as Error).message.split('\n')[0];
    throw new UsageError(`--config ${file} is not valid YAML${where}: ${what}`);
  }
  if (doc === null || doc === undefined) return {};
  if (typeof doc !== 'object' || Array.isArray(doc)) {
    throw new UsageError(`--config ${file} must be a mapping of option names to values, e.g. "endpoint: http://localhost:4317"`);
  }
  const config = doc as Record<string, unknown>;
  for (const key of Object.keys(config)) {
    if (SPEC_BY_KEY.has(key)) continue;
    const hint = suggest(key, SPEC_BY_KEY.keys());
    throw new UsageError(
      `--config ${file} has an unknown key '${key}'${hint ? ` (did you mean '${hint}'?)` : ''}; keys are the flag names of headertap run`,
    );
  }
  return config;
}

/**
 * Merges flags over config over defaults and checks every value. Flags come
 * from commander as strings (arrays for repeatable ones).
 */
export function resolveRunOptions(flags: Record<string, unknown>, configFile?: string): RunOptions {
  return resolveRunOptionsWith(flags, configFile ? loadConfigFile(configFile) : {}, configFile);
}

/** resolveRunOptions with the config file's mapping already loaded (a reload). */
export function resolveRunOptionsWith(flags: Record<string, unknown>, config: Record<string, unknown>, configFile?: string): RunOptions {
  const out: Record<string, unknown> = {};
  for (const spec of RUN_OPTIONS) {
    const flagValue = flags[camel(spec.key)];
    let value: unknown;
    if (flagValue !== undefined) value = spec.parse(flagValue, `--${spec.key}`);
    else if (config[spec.key] !== undefined && config[spec.key] !== null) {
      value = spec.parse(config[spec.key], `--config ${configFile}: key '${spec.key}'`);
    } else value = spec.default;
    if (value !== undefined) out[spec.prop] = value;
  }
  const opts = out as unknown as RunOptions;
  for (const [flag, values, max] of [
    ['--pid', opts.pid, LOADER_LIMITS.pids],
    ['--comm', opts.comm, LOADER_LIMITS.comms],
    ['--port', opts.port, LOADER_LIMITS.ports],
    ['--cgroup', opts.cgroup, LOADER_LIMITS.cgroups],
  ] as const) {
    if (values.length > max) throw new UsageError(`too many ${flag} filters (${values.length}); at most ${max}`);
  }
  if (opts.record && opts.replay) throw new UsageError('--record and --replay cannot be combined; record from the kernel, replay later');
  return opts;
}

/** Commander's property name for a kebab-case flag. */
export function camel(key: string): string {
  return key.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}
