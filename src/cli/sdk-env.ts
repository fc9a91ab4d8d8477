/**
 * The two general settings of the OpenTelemetry SDK environment
 * specification (specification/configuration/sdk-environment-variables.md)
 * that apply to headertap as a whole:
 *
 * - OTEL_SDK_DISABLED: a boolean ("true" in any case, surrounding blanks
 *   ignored; any other value is false, a value other than "false" or empty
 *   with a warning). When true every signal gets a no-op SDK. headertap's
 *   only output is telemetry (records, spans, self-metrics), so `run` then
 *   captures nothing: it loads no eBPF, says so once and waits for
 *   SIGINT/SIGTERM (a DaemonSet pod stays Running, a systemd unit stays up,
 *   instead of restarting in a loop); a --replay returns at once.
 * - OTEL_LOG_LEVEL: the level of the SDK's internal logger (the names of
 *   @opentelemetry/core diagLogLevelFromString: none, error, warn, info,
 *   debug, verbose, all; any case). When set, the SDK's own messages at that
 *   level and above are printed on stderr (`headertap: opentelemetry …`),
 *   --verbose or not; `none` silences them. An unknown value is ignored
 *   with a warning, as the specification asks. Unset, headertap deviates
 *   from the specification's default (info): export failures are counted
 *   and reported by headertap itself (rate-limited), and the SDK's messages
 *   only add duplicates, so they appear with --verbose only.
 *
 * And the variable semantic conventions define for moving instrumentations
 * to stable conventions (docs/rpc/README.md, docs/non-normative/rpc-migration.md):
 *
 * - OTEL_SEMCONV_STABILITY_OPT_IN: a comma-separated list of categories
 *   (blanks around entries ignored, any case). headertap emits the stable
 *   RPC conventions of 1.45 (rpc.system.name, rpc.method fully qualified,
 *   rpc.status_code) whatever the list says; `rpc/dup` adds the names it
 *   sent before (rpc.system, rpc.service, rpc.grpc.status_code), for
 *   dashboards that still read them. `rpc` asks for what headertap does
 *   anyway; other entries (http, database…) are for other instrumentations
 *   reading the same environment and are ignored without a warning
 *   (headertap's HTTP attributes are the stable ones already).
 */
import { DiagLogLevel } from '@opentelemetry/api';

const LOG_LEVELS: Record<string, DiagLogLevel> = {
  NONE: DiagLogLevel.NONE,
  ERROR: DiagLogLevel.ERROR,
  WARN: DiagLogLevel.WARN,
  INFO: DiagLogLevel.INFO,
  DEBUG: DiagLogLevel.DEBUG,
  VERBOSE: DiagLogLevel.VERBOSE,
  ALL: DiagLogLevel.ALL,
};

export interface SdkEnv {
  /** OTEL_SDK_DISABLED is true. */
  disabled: boolean;
  /** OTEL_LOG_LEVEL, when set to a known level. */
  logLevel?: DiagLogLevel;
  /** OTEL_SEMCONV_STABILITY_OPT_IN has rpc/dup: the deprecated rpc.* names ride along. */
  rpcDup: boolean;
  /** One line each, for stderr: values that were ignored. */
  warnings: string[];
}

export function readSdkEnv(env: NodeJS.ProcessEnv): SdkEnv {
  const warnings: string[] = [];
  const disabledRaw = env.OTEL_SDK_DISABLED?.trim().toLowerCase() ?? '';
  if (disabledRaw !== '' && disabledRaw !== 'true' && disabledRaw !== 'false') {
    warnings.push(`OTEL_SDK_DISABLED='${env.OTEL_SDK_DISABLED}' is not true or false: taken as false (the SDK stays enabled)`);
  }
  const levelRaw = env.OTEL_LOG_LEVEL?.trim() ?? '';
  const logLevel = levelRaw === '' ? undefined : LOG_LEVELS[levelRaw.toUpperCase()];
  if (levelRaw !== '' && logLevel === undefined) {
    warnings.push(`OTEL_LOG_LEVEL='${levelRaw}' is not a log level: ignored; use one of ${Object.keys(LOG_LEVELS).join(', ').toLowerCase()}`);
  }
  const optIn = (env.OTEL_SEMCONV_STABILITY_OPT_IN ?? '').split(',').map((v) => v.trim().toLowerCase());
  return { disabled: disabledRaw === 'true', ...(logLevel !== undefined ? { logLevel } : {}), rpcDup: optIn.includes('rpc/dup'), warnings };
}
