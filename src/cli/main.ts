import { Command, CommanderError, Option } from 'commander';
import { HeadertapError } from '../common/errors';
import { RUN_OPTIONS, camel, loadConfigFile, readConfigText, resolveRunOptionsWith } from './options';
import { processIO, routeGrpcLogs, stderrLine, type CliIO } from './output';
import { runReceiver } from './receive';
import { runAgent } from './run';
import { VERSION } from './version';

/** Exit status for bad input of any kind (flags, config, environment). */
export const EXIT_USAGE = 2;

const RUN_EPILOG = `
Records: one OpenTelemetry log record per HTTP request/response, with every
header as http.request.header.<name> / http.response.header.<name>, the
request's trace context (traceparent, b3, X-B3-*, uber-trace-id) as the
record's trace and span id, under the OTLP resource of the observed process.
Values of redacted headers (and query parameters) are [REDACTED]; hashed ones
sha256:<hex>.

Environment: OTEL_EXPORTER_OTLP_[LOGS_]ENDPOINT, _PROTOCOL, _HEADERS,
_COMPRESSION, _TIMEOUT, _CERTIFICATE, _CLIENT_KEY, _CLIENT_CERTIFICATE,
OTEL_SERVICE_NAME and OTEL_RESOURCE_ATTRIBUTES (headertap's own resource),
OTEL_SDK_DISABLED (true: capture nothing, wait for a signal) and
OTEL_LOG_LEVEL (print the SDK's own messages) are honored as in every
OpenTelemetry SDK; flags win. K8S_NODE_NAME is host.name
when the host's own name cannot be read. HEADERTAP_HASH_KEY holds the
--hash-headers key when --hash-key-file is not given.

Needs root (or CAP_BPF, CAP_PERFMON and CAP_SYS_RESOURCE) and a kernel with
BTF. Prints a line starting with "headertap ready" once capturing; on SIGINT or
SIGTERM it stops, exports what is pending, prints totals and exits 0. With
--config it follows the file: header rules, --max-header-bytes, the filters
and per-workload rules (rules:) change without a restart; SIGHUP reloads.

Examples:
  headertap run --embedded-receiver            print what crosses the wire
  headertap run --endpoint http://collector:4317 --port 8080
  headertap run --config /etc/headertap.yaml   same keys as the flags, followed live
  headertap run --emit-spans                   also one span per exchange (Jaeger)
`;

const RECEIVE_EPILOG = `
A minimal OTLP receiver (logs and traces) that prints each record and span:
point headertap (or any OpenTelemetry SDK) at it to see what it sends without
installing a collector.

Examples:
  headertap receive                            gRPC on 127.0.0.1:4317
  headertap receive --format jsonl --http-listen 127.0.0.1:4318
`;

function collect(value: string, previous: string[] | undefined): string[] {
  return [...(previous ?? []), value];
}

function buildProgram(io: CliIO, setStatus: (p: Promise<number>) => void): Command {
  const program = new Command('headertap')
    .description('See the HTTP headers that cross the wire, with eBPF, as OpenTelemetry log records.')
    .version(VERSION, '--version', 'print the version')
    .helpOption('-h, --help', 'show help')
    .showSuggestionAfterError(true)
    .exitOverride()
    .configureOutput({ writeOut: (s) => io.stdout.write(s), writeErr: () => {} });

  const run = program
    .command('run')
    .description('capture HTTP headers with eBPF and export them as OTLP log records')
    .addHelpText('after', RUN_EPILOG)
    .option('--config <file>', 'YAML file with the same keys as these flags; flags win');
  for (const spec of RUN_OPTIONS) {
    if (!spec.flag) continue; // a config file key only
    const opt = new Option(spec.flag, spec.help);
    if (spec.repeatable) opt.argParser(collect);
    run.addOption(opt);
  }
  run.action((flags: Record<string, unknown>) => {
    const { config, ...rest } = flags as { config?: string } & Record<string, unknown>;
    // Only what was typed counts as a flag (commander presets --no-x to true), so config values are not overridden.
    for (const spec of RUN_OPTIONS) {
      if (run.getOptionValueSource(camel(spec.key)) !== 'cli') delete rest[camel(spec.key)];
    }
    // The text is read once: the options come from it, and live reloads start from it.
    const configText = config ? readConfigText(config) : undefined;
    const opts = resolveRunOptionsWith(rest, config ? loadConfigFile(config, configText) : {}, config);
    setStatus(runAgent(opts, io, { ...(config ? { configFile: config, configText } : {}), flags: rest }));
  });

  program
    .command('receive')
    .description('run the embedded OTLP receiver (logs, traces) and print what arrives')
    .addHelpText('after', RECEIVE_EPILOG)
    .option('--listen <host:port>', 'OTLP/gRPC address', '127.0.0.1:4317')
    .option('--http-listen <host:port>', 'also accept OTLP/HTTP (protobuf) on this address')
    .option('--format <format>', 'pretty or jsonl', 'pretty')
    .action((flags: { listen: string; httpListen?: string; format: string }) => {
      setStatus(runReceiver(flags, io));
    });
  return program;
}

/** One line for commander's own errors, e.g. "unknown option '--endpont' (did you mean --endpoint?)". */
function commanderMessage(err: CommanderError): string {
  return err.message
    .replace(/^error: /, '')
    .split('\n')
    .map((s) => s.trim())
    .filter(Boolean)
    .join(' ')
    .replace(/\((Did you mean)/, (_, d: string) => `(${d.toLowerCase()}`);
}

/** Runs the CLI and resolves with the exit status; never throws. */
export async function main(argv: string[], io: CliIO = processIO): Promise<number> {
  const fail = (message: string, code = EXIT_USAGE) => {
    stderrLine(io, `headertap: ${message}`);
    return code;
  };
  routeGrpcLogs(io, argv.includes('--verbose'));
  let status: Promise<number> | undefined;
  const program = buildProgram(io, (p) => (status = p));
  if (argv.length === 0) {
    for (const line of program.helpInformation().trimEnd().split('\n')) stderrLine(io, line);
    return fail('missing command: use `headertap run` or `headertap receive`');
  }
  try {
    await program.parseAsync(argv, { from: 'user' });
    return status ? await status : 0;
  } catch (err) {
    if (err instanceof CommanderError) {
      if (err.code === 'commander.helpDisplayed' || err.code === 'commander.version' || err.code === 'commander.help') return 0;
      const cmd = argv.find((a) => a === 'run' || a === 'receive');
      return fail(`${commanderMessage(err)}; see \`headertap ${cmd ? `${cmd} ` : ''}--help\``);
    }
    if (err instanceof HeadertapError) return fail(err.message);
    const e = err as Error;
    const verbose = argv.includes('--verbose');
    if (verbose && e?.stack) for (const line of e.stack.split('\n')) stderrLine(io, line);
    return fail(`unexpected error: ${e?.message ?? String(err)}${verbose ? '' : ' (run with --verbose for details)'}`, 1);
  }
}

/** The bin/headertap entry point. */
export function runCli(): void {
  main(process.argv.slice(2)).then(
    (code) => {
      process.exitCode = code;
      // Sockets of a failed exporter can keep the loop alive; nothing is pending by now.
      setTimeout(() => process.exit(code), 100).unref();
    },
    () => process.exit(1),
  );
}
