import { parse as parseYaml, YAMLParseError } from 'yaml';
import { UsageError } from '../common/errors';
import { DEFAULT_CAPTURE_HEADERS, DEFAULT_REDACT_HEADERS, OTLP_COMPRESSIONS, resolveRedactGlobs, type OtlpCompression } from '../otel';
import { PathProblem, readSmallFile } from './files';

/** The environment variable holding the --hash-headers key when --hash-key-file is not given. */
export const HASH_KEY_ENV = 'HEADERTAP_HASH_KEY';

/** --cgroup values at most (bpf/maps.bpf.h HT_MAX_FILTER_CGROUPS). */
export const MAX_CGROUP_FILTERS = 8;

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
  /** Capture TLS plaintext with uprobes on OpenSSL (--no-tls turns it off). */
  tls: boolean;
  serviceName: string;
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
  shutdownTimeout: number;
  statsInterval: number;
  selfMetrics: boolean;
  ringbufKb: number;
}

type Parser<T> = (raw: unknown, where: string) => T;

/** One option of `run`: its flag, its config key, how values are checked. */
export interface OptionSpec {
  /** Config key and flag name (kebab-case). */
  key: string;
  /** RunOptions property. */
  prop: keyof RunOptions;
  /** Commander flag syntax. */
  flag: string;
  help: string;
  repeatable?: boolean;
  parse: Parser<unknown>;
  default?: unknown;
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

/** A --redact-headers entry: a glob, `+glob` (added to the defaults) or `!glob` (never redacted). */
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
    prop: 'pid',
    flag: '--pid <N>',
    help: 'capture only process N (repeatable or comma-separated, up to 16)',
    repeatable: true,
    parse: list(integer(1, 2 ** 31 - 1, 'process id'), true, { what: 'process id', example: '--pid 1234' }),
    default: [],
  },
  {
    key: 'comm',
    prop: 'comm',
    flag: '--comm <NAME>',
    help: 'capture only processes named NAME, as in /proc/PID/comm (repeatable, up to 8)',
    repeatable: true,
    parse: list(comm, true, { what: 'process name', example: '--comm nginx' }),
    default: [],
  },
  {
    key: 'port',
    prop: 'port',
    flag: '--port <N>',
    help: 'capture only connections with port N at either end (repeatable, up to 16)',
    repeatable: true,
    parse: list(integer(1, 65535, 'port'), true, { what: 'port', example: '--port 8080' }),
    default: [],
  },
  {
    key: 'cgroup',
    prop: 'cgroup',
    flag: '--cgroup <path>',
    help: 'capture only processes in this cgroup v2 directory or below it (repeatable, up to 8); applied in the kernel',
    repeatable: true,
    parse: list(nonEmpty, false, { what: 'cgroup path', example: '--cgroup /sys/fs/cgroup/system.slice/nginx.service' }), // paths may hold commas
    default: [],
  },
  {
    key: 'capture-headers',
    prop: 'captureHeaders',
    flag: '--capture-headers <globs>',
    help: 'comma-separated, case-insensitive header-name globs to keep (default: *)',
    parse: list(glob),
    default: DEFAULT_CAPTURE_HEADERS,
  },
  {
    key: 'exclude-headers',
    prop: 'excludeHeaders',
    flag: '--exclude-headers <globs>',
    help: 'header-name globs never kept, even when --capture-headers matches (default: none)',
    parse: list(glob),
    default: [],
  },
  {
    key: 'capture-request-headers',
    prop: 'captureRequestHeaders',
    flag: '--capture-request-headers <globs>',
    help: 'like --capture-headers, for request headers only; replaces it for requests',
    parse: list(glob),
  },
  {
    key: 'capture-response-headers',
    prop: 'captureResponseHeaders',
    flag: '--capture-response-headers <globs>',
    help: 'like --capture-headers, for response headers only; replaces it for responses',
    parse: list(glob),
  },
  {
    key: 'exclude-request-headers',
    prop: 'excludeRequestHeaders',
    flag: '--exclude-request-headers <globs>',
    help: 'header-name globs never kept in requests (added to --exclude-headers)',
    parse: list(glob),
    default: [],
  },
  {
    key: 'exclude-response-headers',
    prop: 'excludeResponseHeaders',
    flag: '--exclude-response-headers <globs>',
    help: 'header-name globs never kept in responses (added to --exclude-headers)',
    parse: list(glob),
    default: [],
  },
  {
    key: 'redact-headers',
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
    prop: 'hashHeaders',
    flag: '--hash-headers <globs>',
    help: `header-name globs whose values become sha256:<hex>, an HMAC-SHA256 keyed by --hash-key-file or ${HASH_KEY_ENV} (wins over --redact-headers; also applied to query parameters)`,
    parse: list(glob),
    default: [],
  },
  {
    key: 'hash-key-file',
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
    prop: 'maxHeaderBytes',
    flag: '--max-header-bytes <N>',
    help: 'header bytes kept per message; more is marked headertap.truncated (default: 16384)',
    parse: integer(256, 1 << 20, 'byte count'),
    default: 16384,
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
    key: 'service-name',
    prop: 'serviceName',
    flag: '--service-name <name>',
    help: "service.name of headertap's own resource (default: headertap)",
    parse: nonEmpty,
    default: 'headertap',
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
    help: 'records held in memory while the collector is slow or down; beyond, the oldest are dropped and counted (default: 65536)',
    parse: integer(1, 10_000_000, 'record count'),
    default: 65536,
  },
  {
    key: 'buffer-bytes',
    prop: 'bufferBytes',
    flag: '--buffer-bytes <size>',
    help: 'bytes of records held in memory at most (their OTLP-encoded size, e.g. 64MiB) (default: 64MiB)',
    parse: size(1 << 16, 2 ** 34),
    default: 64 << 20,
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
    help: 'kernel ring buffer size in KiB, a power of two; events beyond it are lost and counted (default: 16384)',
    parse: powerOfTwo(64, 1 << 22, 'size in KiB'),
    default: 16384,
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

/** Reads a --config YAML file (at most MAX_INPUT_FILE_BYTES, checked before reading): a mapping whose keys are flag names. */
export function loadConfigFile(file: string): Record<string, unknown> {
  let text: string;
  try {
    text = readSmallFile(file).toString('utf8');
  } catch (err) {
    if (!(err instanceof PathProblem)) throw err;
    const fix = err.message.startsWith('is ') ? '; point --config at a headertap YAML file (the keys of `headertap run --help`)' : '';
    throw new UsageError(`cannot read --config ${file}: ${err.message}${fix}`);
  }
  let doc: unknown;
  try {
    doc = parseYaml(text);
  } catch (err) {
    const where = err instanceof YAMLParseError && err.linePos ? ` at line ${err.linePos[0].line}` : '';
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
  const config = configFile ? loadConfigFile(configFile) : {};
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
  if (opts.pid.length > 16) throw new UsageError(`too many --pid filters (${opts.pid.length}); at most 16`);
  if (opts.comm.length > 8) throw new UsageError(`too many --comm filters (${opts.comm.length}); at most 8`);
  if (opts.port.length > 16) throw new UsageError(`too many --port filters (${opts.port.length}); at most 16`);
  if (opts.cgroup.length > MAX_CGROUP_FILTERS) {
    throw new UsageError(`too many --cgroup filters (${opts.cgroup.length}); at most ${MAX_CGROUP_FILTERS}`);
  }
  if (opts.record && opts.replay) throw new UsageError('--record and --replay cannot be combined; record from the kernel, replay later');
  return opts;
}

/** Commander's property name for a kebab-case flag. */
export function camel(key: string): string {
  return key.replace(/-([a-z])/g, (_, c: string) => c.toUpperCase());
}
