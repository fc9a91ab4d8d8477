import { diag, DiagLogLevel } from '@opentelemetry/api';
import { release } from 'node:os';
import { setGlobalErrorHandler } from '@opentelemetry/core';
import { EnvironmentError, LoaderError, UsageError } from '../common/errors';
import type { Log } from '../common/log';
import { LOADER_PATH } from '../common/paths';
import { ConnectionTracker, type ConnectionFilter } from '../http';
import { ExchangeMapper, LiveRoutes, LiveRules, LogPipeline, loadRequestMetrics, loadSelfMetrics, loadSpanPipeline, MetricHeaders, Routes, resolveExportTarget, Spool, type CaptureRules, type ExportTarget, type MetricsTemporality } from '../otel';
import { OtlpReceiver } from '../receiver';
import {
  LoaderSource,
  copyBytesFor,
  MonotonicClock,
  ReplaySource,
  TlsTargets,
  readRecording,
  SupervisedSource,
  describeFilters,
  describeKernel,
  sameFilters,
  type CaptureFilters,
  type EventSource,
  type KernelCounters,
  type ReadyEvent,
  type SourceEvent,
} from '../source';
import { cgroup2Mount, ProcessInfoCache, resolveCgroupPath } from '../workload';
import { checkWritableFile, PathProblem } from './files';
import type { RunOptions } from './options';
import { lineWriter, stderrLine, stderrLog, type CliIO } from './output';
import { batchPrinter } from './print';
import { checkKernel, checkPrivileges } from './privileges';
import { agentStats, summaryLine, type StatsParts } from './stats';
import { resolveAgentIdentity } from './identity';
import { readSdkEnv } from './sdk-env';
import { Reloader, rulesDigest, watchConfig, type LivePart } from './reload';
import { isAgentExport } from './own-exports';
import { captureRulesOf, maskedRecorder } from './secrets';
import { VERSION } from './version';

/** Connections with no traffic for this long are dropped (their requests reported unanswered). */
const IDLE_CONNECTION_NS = 5 * 60 * 1e9;
const IDLE_SWEEP_MS = 30_000;
/** Records a replay lets wait for export at most (well under the delivery buffer). */
const REPLAY_MAX_PENDING = 16384;

/**
 * The OpenTelemetry SDK reports through diag. With OTEL_LOG_LEVEL its
 * messages from that level up are printed as they are; without it only with
 * --verbose, from warn up (failures are counted and reported by us): see
 * src/cli/sdk-env.ts.
 */
function routeSdkDiagnostics(log: Log, io: CliIO, level: DiagLogLevel | undefined): void {
  if (level === undefined) {
    diag.setLogger({ error: log.debug, warn: log.debug, info: log.debug, debug: () => {}, verbose: () => {} }, DiagLogLevel.WARN);
    setGlobalErrorHandler((err) => log.debug(`opentelemetry: ${String((err as Error)?.message ?? err)}`));
    return;
  }
  const print =
    (name: string) =>
    (message: string, ...args: unknown[]): void => {
      stderrLine(io, `headertap: opentelemetry ${name}: ${[message, ...args.map((a) => (a instanceof Error ? a.message : String(a)))].join(' ')}`);
    };
  const logger = { error: print('error'), warn: print('warn'), info: print('info'), debug: print('debug'), verbose: print('verbose') };
  diag.setLogger(logger, { logLevel: level, suppressOverrideMessage: true });
  setGlobalErrorHandler((err) => {
    if (level >= DiagLogLevel.ERROR) logger.error(String((err as Error)?.message ?? err));
  });
}

/** OTEL_SDK_DISABLED=true: nothing to export, so nothing is captured (src/cli/sdk-env.ts). */
async function idleWhileDisabled(opts: RunOptions, io: CliIO): Promise<number> {
  const signal = opts.replay ? undefined : waitForSignal(); // before saying so: a signal right after the line is handled
  stderrLine(
    io,
    `headertap: OTEL_SDK_DISABLED=true: OpenTelemetry is disabled and records, spans and metrics are all headertap makes, so it captures nothing${signal ? '; waiting for SIGINT or SIGTERM' : ''} (unset OTEL_SDK_DISABLED to capture)`,
  );
  if (!signal) return 0;
  await signal.promise;
  signal.dispose();
  return 0;
}

/** --record FILE can be written: checked before anything starts, so capture never runs for a recording that cannot be saved. */
function checkRecordPath(file: string): void {
  try {
    checkWritableFile(file);
  } catch (err) {
    if (!(err instanceof PathProblem)) throw err;
    throw new UsageError(`cannot write --record ${file}: ${err.message}; create the directory or choose another path`);
  }
}

/**
 * The request metrics' temporality and export interval: the flags, else
 * OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE (lowmemory means delta
 * for histograms) and OTEL_METRIC_EXPORT_INTERVAL (ms), else cumulative and
 * 60 s; and the temporality of headertap's own counters (delta only for
 * delta: they are asynchronous counters, cumulative under lowmemory). A bad variable is ignored with a warning, as SDKs do.
 */
export function metricsSettings(
  opts: RunOptions,
  env: Record<string, string | undefined>,
  log: Log,
): { temporality: MetricsTemporality; intervalMs: number; counterTemporality: MetricsTemporality } {
  let temporality: MetricsTemporality = 'cumulative';
  // headertap's own counters are asynchronous (observed totals): lowmemory keeps those cumulative, as the SDK spec says.
  let counterTemporality: MetricsTemporality = 'cumulative';
  const pref = env.OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE?.trim().toLowerCase();
  if (opts.metricsTemporality) temporality = counterTemporality = opts.metricsTemporality;
  else if (pref === 'delta') temporality = counterTemporality = 'delta';
  else if (pref === 'lowmemory') temporality = 'delta';
  else if (pref && pref !== 'cumulative') log.warn(`OTEL_EXPORTER_OTLP_METRICS_TEMPORALITY_PREFERENCE '${pref}' is not cumulative, delta or lowmemory; using cumulative`);
  let intervalMs = 60_000;
  const interval = env.OTEL_METRIC_EXPORT_INTERVAL?.trim();
  if (opts.metricsInterval !== undefined) intervalMs = Math.round(opts.metricsInterval * 1000);
  else if (interval) {
    if (/^\d+$/.test(interval) && Number(interval) >= 100) intervalMs = Number(interval);
    else log.warn(`OTEL_METRIC_EXPORT_INTERVAL '${interval}' is not a number of milliseconds (at least 100); using 60000`);
  }
  return { temporality, intervalMs, counterTemporality };
}

/** The route rules of a run (`routes:`, --max-routes); patterns were checked when the options were read. */
function routesOf(opts: RunOptions, counters: { overflowed: number }): Routes {
  try {
    return new Routes({ rules: opts.routes, maxRoutes: opts.maxRoutes }, counters);
  } catch (err) {
    throw new UsageError(`routes: ${(err as Error).message}`);
  }
}

/** An embedded receiver listens where the exporter sends: the endpoint's host and port. */
function receiverListen(target: ExportTarget): { grpcListen?: string; httpListen?: string } {
  const url = new URL(target.url);
  if (url.protocol !== 'http:') {
    throw new UsageError(`--embedded-receiver needs a plaintext http:// endpoint on this host, not ${target.url}`);
  }
  const port = url.port || (target.protocol === 'grpc' ? '4317' : '4318');
  const hostPort = `${url.hostname === 'localhost' ? '127.0.0.1' : url.hostname}:${port}`;
  return target.protocol === 'grpc' ? { grpcListen: hostPort } : { httpListen: hostPort };
}

/**
 * The kernel's capture filters as the http stage applies them to the
 * connections it follows (see ConnectionTracker.setFilter). The cgroup test
 * reads the process's cgroup; when that path is unknown or not under this
 * agent's cgroup2 mount (another cgroup namespace), the kernel's word stands.
 */
function connectionFilter(f: CaptureFilters, processes: ProcessInfoCache, mount: string | undefined): ConnectionFilter {
  const pids = new Set(f.pids);
  const comms = new Set(f.comms);
  const cgroupWanted = (pid: number, comm: string): boolean => {
    const rel = processes.get(pid, comm).cgroupPath;
    if (!rel || !mount || rel.includes('/..')) return true;
    const abs = rel === '/' ? mount : mount + rel;
    return f.cgroups.some((dir) => abs === dir || abs.startsWith(`${dir}/`));
  };
  const process =
    pids.size || comms.size || f.cgroups.length
      ? (pid: number, comm: string) => (!pids.size || pids.has(pid)) && (!comms.size || comms.has(comm)) && (!f.cgroups.length || cgroupWanted(pid, comm))
      : undefined;
  return { ports: f.ports, ...(process ? { process } : {}) };
}

/** The startup line about TLS: which files got probes. */
export function describeTls(tls: TlsTargets): string {
  const names = tls.attached.filter((t) => t.kind !== 'go').map((t) => (t.kind === 'program' ? `${t.path} (OpenSSL built in)` : t.path));
  const go = tls.attached.filter((t) => t.kind === 'go').map((t) => `${t.path} (${t.goVersion})`);
  const failed = tls.failures ? `; ${tls.failures} could not be probed (see warnings)` : '';
  const skipped = tls.goSkipped.length ? `; ${tls.goSkipped.length} Go program(s) not probed (see warnings)` : '';
  const openssl = names.length ? `OpenSSL probes on ${names.join(', ')}` : 'no OpenSSL found yet';
  const goPart = go.length ? `; Go crypto/tls probes on ${go.join(', ')}` : '';
  return `TLS: ${openssl}${goPart}; programs started later are checked when they start${failed}${skipped}`;
}

function waitForSignal(): { promise: Promise<string>; dispose(): void } {
  let resolve!: (s: string) => void;
  const promise = new Promise<string>((r) => (resolve = r));
  const onInt = () => resolve('SIGINT');
  const onTerm = () => resolve('SIGTERM');
  process.once('SIGINT', onInt);
  process.once('SIGTERM', onTerm);
  return {
    promise,
    dispose() {
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
    },
  };
}

/**
 * SIGHUP reloads the config (it no longer ends the agent, as it does a
 * process without a handler). One during start-up is acted on once ready.
 */
function onHangup(reload: () => unknown): { ready(): void; dispose(): void } {
  let ready = false;
  let pending = false;
  const handler = () => {
    if (ready) void reload();
    else pending = true;
  };
  process.on('SIGHUP', handler);
  return {
    ready() {
      ready = true;
      if (pending) void reload();
    },
    dispose: () => process.off('SIGHUP', handler),
  };
}

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), ms))),
  ]);
}

/** Where the options came from, for live reloads. */
export interface RunSource {
  /** --config FILE: followed while running, reloaded on SIGHUP. */
  configFile?: string;
  /** The flags given (they win over the file at every reload). */
  flags: Record<string, unknown>;
  /** The file's text the options were read from (a change after it is a change). */
  configText?: string;
}

/** `headertap run`: capture, parse, map, export; returns the exit status. */
export async function runAgent(opts: RunOptions, io: CliIO, from: RunSource = { flags: {} }): Promise<number> {
  const log = stderrLog(io, opts.verbose);
  const sdk = readSdkEnv(io.env);
  for (const w of sdk.warnings) log.warn(w);
  routeSdkDiagnostics(log, io, sdk.logLevel);
  const exportFlags = {
    endpoint: opts.endpoint,
    protocol: opts.protocol,
    compression: opts.compression,
    ...(opts.exportTimeout !== undefined ? { timeoutMs: Math.round(opts.exportTimeout * 1000) } : {}),
  };
  const target = resolveExportTarget(exportFlags, io.env);
  const traceTarget = opts.emitSpans ? resolveExportTarget(exportFlags, io.env, 'traces') : undefined;
  const initialRules = captureRulesOf(opts, io.env);
  /** The header rules in force: swapped whole by a reload (the mapper asks once per record). */
  const rules = new LiveRules(initialRules.rules);
  let hashKey = initialRules.hashKey;
  /** Route patterns in force and the --max-routes cap: swapped whole by a reload, counters kept. */
  const routeCounters = { overflowed: 0 };
  const routes = new LiveRoutes(routesOf(opts, routeCounters));
  /** --metric-headers in force: a reload assigns the new list. */
  const metricHeaders = new MetricHeaders(opts.metricHeaders);
  if (opts.record) checkRecordPath(opts.record);
  const payload = opts.replay ? readRecording(opts.replay) : undefined;
  /** The kernel filters in force (a reload changes them once the loader did). */
  let filters: CaptureFilters = {
    pids: opts.pid,
    comms: opts.comm,
    ports: opts.port,
    cgroups: payload ? [] : opts.cgroup.map((c) => resolveCgroupPath(c)),
  };
  // Bad input is still reported first; a disabled SDK needs no privileges.
  if (sdk.disabled) return idleWhileDisabled(opts, io);
  if (!payload) {
    checkPrivileges();
    checkKernel();
  }

  const out = lineWriter(io.stdout);
  let receiver: OtlpReceiver | undefined;
  if (opts.embeddedReceiver) {
    receiver = new OtlpReceiver({
      ...receiverListen(target),
      onBatch: batchPrinter(opts.format, out),
      onError: (msg) => log.warn(`embedded receiver: ${msg}`),
    });
    await receiver.start();
  }

  const identity = await resolveAgentIdentity(opts.serviceName, io.env);
  for (const w of identity.warnings) log.warn(w);
  log.debug(`host.name ${identity.host.name} (from ${identity.host.source}); service.name ${identity.serviceName}`);
  const workloads = { commandLine: opts.processCommandLine, rules, hostName: identity.host.name };
  const agent = { serviceName: identity.serviceName, agentAttributes: identity.attributes, version: VERSION };

  const spool = opts.spoolDir ? new Spool(opts.spoolDir, opts.spoolMaxBytes) : undefined;
  if (spool && !spool.empty) log.info(`${spool.stats.records} records from an earlier run wait in ${spool.dir}; sending them first`);
  const pipeline = new LogPipeline({
    target,
    ...agent,
    log,
    ...(opts.console ? { console: out } : {}),
    delivery: { maxRecords: opts.bufferRecords, maxBytes: opts.bufferBytes, maxRequestBytes: opts.maxRequestBytes, ...(spool ? { spool } : {}) },
  });
  const spans = traceTarget ? new (loadSpanPipeline())({ target: traceTarget, ...agent, log }) : undefined;
  const clock = new MonotonicClock();
  const processes = new ProcessInfoCache({ commandLine: opts.processCommandLine });
  const mapper = new ExchangeMapper({
    rules,
    toHrTime: (ns) => clock.toHrTime(ns),
    processInfo: (pid, comm) => processes.get(pid, comm),
    workloads,
    maxAttributes: opts.maxAttributes,
    rpcDup: sdk.rpcDup,
    routes,
    ...(opts.requestMetrics ? { metricHeaders } : {}),
  });
  const metricsTarget = resolveExportTarget(exportFlags, io.env, 'metrics');
  /** Temporality and interval of the request metrics; the self-metrics follow the temporality too. */
  const metricsConf = opts.requestMetrics || opts.selfMetrics ? metricsSettings(opts, io.env, log) : undefined;
  const requestMetrics = opts.requestMetrics
    ? new (loadRequestMetrics())({ target: metricsTarget, version: VERSION, log, cardinalityLimit: opts.metricCardinalityLimit, temporality: metricsConf!.temporality, intervalMs: metricsConf!.intervalMs })
    : undefined;
  const cgroupMount = cgroup2Mount();
  /** Exchanges that were OTLP exports of headertap agents (src/cli/own-exports.ts), not recorded. */
  let agentExports = 0;
  const tracker = new ConnectionTracker({
    maxHeaderBytes: opts.maxHeaderBytes,
    filter: connectionFilter(filters, processes, cgroupMount),
    onExchange: (ex) => {
      if (isAgentExport(ex)) {
        agentExports++;
        return;
      }
      const rec = mapper.map(ex);
      pipeline.emit(spans ? spans.withSpan(rec) : rec);
      requestMetrics?.record(rec);
    },
  });

  let kernel: KernelCounters | undefined;
  const lostByCpu: number[] = [];
  let eventsIn = 0;
  let lastNs = 0;
  let tls: TlsTargets | undefined;
  const onEvent = (ev: SourceEvent): void => {
    switch (ev.kind) {
      case 'data':
        eventsIn++;
        lastNs = ev.tsNs;
        processes.get(ev.pid, ev.comm); // look the process up while it still runs
        tls?.onActivity(ev.pid);
        tracker.onData(ev);
        return;
      case 'close':
        eventsIn++;
        tracker.onClose(ev);
        return;
      case 'exec':
        tls?.onExec(ev.pid);
        return;
      case 'proc':
        processes.noteKernelIdentity(ev);
        return;
      case 'tls_learned':
        tls?.onLearned(ev);
        return;
      case 'attach':
        return; // answers to attach requests, consumed by LoaderSource
      case 'ready':
        clock.setOffset(ev.realtimeOffsetNs);
        return;
      case 'stats':
        clock.setOffset(ev.realtimeOffsetNs);
        kernel = ev.counters;
        return;
      case 'cpu_stats':
        lostByCpu[ev.cpu] = ev.counters.ringbufLost;
        return;
    }
  };

  const recorder = opts.record ? maskedRecorder(opts.record, (name) => rules.isSecretAnywhere(name)) : undefined;
  /** The filters the newest loader was started with (a reload may land while one starts). */
  let loaderFilters = filters;
  /** Bytes of each socket call the kernel copies: from --max-header-bytes, live (its live part below); restarted loaders start with it. */
  let copyBytes = copyBytesFor(opts.maxHeaderBytes);
  const loader = (): LoaderSource =>
    new LoaderSource({
      path: LOADER_PATH,
      filters: (loaderFilters = filters),
      selfPids: [process.pid],
      noTls: !opts.tls,
      noTlsHold: !opts.tlsHold,
      ringbufKb: opts.ringbufKb,
      copyBytes,
      verbose: opts.verbose,
      log,
      ...(recorder ? { tap: (chunk: Buffer) => recorder.write(chunk) } : {}),
    });
  /** Probes the TLS libraries present now through the running loader (again after a restart: a new loader has none). */
  const probeTls = async (l: LoaderSource): Promise<void> => {
    tls?.stop();
    tls = new TlsTargets({ attach: (file) => l.attachTls(file), attachGo: (file, probes) => l.attachGo(file, probes), log });
    await tls.scanAll();
    log.info(describeTls(tls));
  };
  const supervised = payload
    ? undefined
    : new SupervisedSource({
        create: loader,
        log,
        // the new loader's socket ids differ: requests still waiting will never see their response
        onRestart: () => tracker.flush('evicted'),
        onRestarted: async (l) => {
          if (!sameFilters(loaderFilters, filters)) await l.setFilters(filters);
          if (opts.tls) await probeTls(l);
        },
      });
  // A replay runs as fast as the exporter drains, never faster (it would drop records).
  const source: EventSource =
    supervised ?? new ReplaySource(payload!, { canTake: () => pipeline.delivery.bufferedRecords < REPLAY_MAX_PENDING });
  /** What follows the config file while running (src/cli/reload.ts). The kernel first: only it can fail. */
  const liveParts: LivePart[] = [
    {
      keys: ['pid', 'comm', 'port', 'cgroup'],
      prepare: (next): CaptureFilters => ({
        pids: next.pid,
        comms: next.comm,
        ports: next.port,
        cgroups: payload ? [] : next.cgroup.map((c) => resolveCgroupPath(c)),
      }),
      commit: async (f: CaptureFilters) => {
        if (sameFilters(f, filters)) return;
        const [current, next] = [connectionFilter(filters, processes, cgroupMount), connectionFilter(f, processes, cgroupMount)];
        tracker.widenFilter(current, next); // the kernel may switch any moment now
        try {
          await supervised?.current?.setFilters(f); // not running: the next loader starts with them
        } catch (err) {
          tracker.setFilter(current);
          throw err;
        }
        filters = f;
        tracker.setFilter(next);
      },
    } satisfies LivePart<CaptureFilters>,
    {
      keys: ['capture-headers', 'exclude-headers', 'capture-request-headers', 'capture-response-headers', 'exclude-request-headers', 'exclude-response-headers', 'redact-headers', 'hash-headers', 'hash-key-file', 'rules'],
      prepare: (next) => captureRulesOf(next, io.env),
      commit: (next: { rules: CaptureRules; hashKey?: Buffer }) => {
        rules.swap(next.rules);
        hashKey = next.hashKey;
      },
    } satisfies LivePart<{ rules: CaptureRules; hashKey?: Buffer }>,
    {
      keys: ['routes', 'max-routes'],
      prepare: (next) => routesOf(next, routeCounters),
      commit: (next: Routes) => routes.swap(next),
    } satisfies LivePart<Routes>,
    {
      keys: ['metric-headers'],
      prepare: (next) => next.metricHeaders,
      commit: (names: string[]) => {
        metricHeaders.names = names;
      },
    } satisfies LivePart<string[]>,
    {
      keys: ['max-header-bytes'],
      prepare: (next) => next.maxHeaderBytes,
      commit: async (bytes: number) => {
        // The kernel first, so a longer head written in one call is copied whole by the time the parser takes it.
        // Never fails (only the first part may): a refusal leaves the old copy in force, said once.
        const copy = copyBytesFor(bytes);
        if (!payload && copy !== copyBytes) {
          const before = copyBytes;
          copyBytes = copy; // a loader started from now on copies this much
          await supervised?.current?.setCopyBytes(copy).catch((err: Error) =>
            log.warn(`max-header-bytes ${bytes}: ${err.message}; the kernel copies ${before} bytes per socket call until the loader restarts`),
          );
        }
        tracker.setMaxHeaderBytes(bytes);
      },
    } satisfies LivePart<number>,
  ];
  const reloader = from.configFile
    ? new Reloader({
        configFile: from.configFile,
        ...(from.configText !== undefined ? { configText: from.configText } : {}),
        flags: from.flags,
        initial: opts,
        digest: rulesDigest(opts, hashKey),
        parts: liveParts,
        digestOf: (next) => rulesDigest(next, hashKey),
        log,
      })
    : undefined;
  const digest = (): string => reloader?.digest ?? rulesDigest(opts, hashKey);
  const parts = (): StatsParts => ({
    http: tracker.counters,
    mapper: mapper.counters,
    processes: processes.counters,
    delivery: pipeline.delivery,
    ...(spool ? { spool: spool.stats } : {}),
    ...(kernel ? { kernel } : {}),
    lostByCpu,
    eventsIn,
    loaderRestarts: supervised?.restarts ?? 0,
    config: { digest: digest(), reloads: reloader?.reloads ?? 0, failures: reloader?.failures ?? 0 },
    agentExports,
    routes: routeCounters,
    ...(requestMetrics ? { requestMetrics: requestMetrics.counters } : {}),
  });
  /** The totals line, with the spans' when --emit-spans is on. */
  const summary = (): string => `${summaryLine(parts())}${spans ? `; ${spans.summary()}` : ''}`;

  const signal = waitForSignal();
  const hangup = onHangup(() => (reloader ? reloader.reload('SIGHUP') : log.info('SIGHUP: no --config file to reload; nothing changed')));
  let ready: ReadyEvent;
  try {
    ready = await source.start(onEvent);
  } catch (err) {
    signal.dispose();
    hangup.dispose();
    await receiver?.stop();
    await Promise.all([pipeline.shutdown(opts.shutdownTimeout * 1000), spans?.shutdown(), requestMetrics?.shutdown()]);
    if (err instanceof LoaderError && err.exitCode === 2) throw new EnvironmentError(err.message);
    throw err;
  }

  // Probe the TLS libraries present now before saying ready, so HTTPS started after the ready line is seen.
  if (supervised?.current && opts.tls) await probeTls(supervised.current);

  const protocolName = target.protocol === 'grpc' ? 'OTLP/gRPC' : 'OTLP/HTTP (protobuf)';
  const what = tls ? 'HTTP/1.x and HTTP/2 over TCP and TLS' : 'HTTP/1.x and HTTP/2 over TCP';
  const capturing = payload ? `replaying ${opts.replay}` : `capturing ${what} on ${ready.ncpus} CPUs (loader pid ${ready.loaderPid})`;
  const kernelPart = payload ? '' : `; ${describeKernel(ready, release(), Boolean(tls))}`;
  const spansTo = traceTarget ? `, spans to ${traceTarget.url}` : '';
  // Watching before saying ready: a change made right after the ready line is seen.
  const watcher = reloader ? watchConfig(from.configFile!, () => void reloader.reload('file change'), log) : undefined;
  hangup.ready();
  stderrLine(
    io,
    `headertap ready: ${capturing}; exporting ${protocolName} to ${target.url}${spansTo}${receiver ? ' (embedded receiver)' : ''}; filters: ${describeFilters(filters)}; rules ${digest()}${from.configFile ? ` (following ${from.configFile})` : ''}${kernelPart}`,
  );

  const sweep = setInterval(() => tracker.evictIdle(lastNs - IDLE_CONNECTION_NS), IDLE_SWEEP_MS);
  sweep.unref();
  const statsTimer =
    opts.statsInterval > 0 ? setInterval(() => stderrLine(io, `headertap stats: ${summary()}`), opts.statsInterval * 1000) : undefined;
  statsTimer?.unref();
  const selfMetrics = opts.selfMetrics
    ? new (loadSelfMetrics())({
        target: metricsTarget,
        ...agent,
        intervalMs: (opts.statsInterval || 60) * 1000,
        temporality: metricsConf!.counterTemporality,
        stats: () => agentStats(parts()),
      })
    : undefined;

  const ended = await Promise.race([signal.promise.then((s) => ({ reason: 'signal' as const, message: s })), source.ended]);
  signal.dispose();
  hangup.dispose();
  watcher?.close();
  clearInterval(sweep);
  clearInterval(statsTimer);
  if (ended.reason === 'failed') log.warn(ended.message ?? 'event source failed');
  log.debug(`stopping (${ended.message ?? ended.reason})`);

  tls?.stop();
  await source.stop(); // delivers every event already captured
  tracker.flush('agent_stopped');
  // Records get the whole --shutdown-timeout; the closing exporters get a little more.
  const timeoutMs = opts.shutdownTimeout * 1000;
  const flushed = await withTimeout(Promise.all([pipeline.shutdown(timeoutMs), spans?.shutdown()]), timeoutMs + 2000);
  if (flushed === 'timeout') log.warn(`gave up waiting for the exporters to close after ${opts.shutdownTimeout} s`);
  await withTimeout(requestMetrics?.shutdown() ?? Promise.resolve(), 10_000); // the last measurements, after the records
  await selfMetrics?.shutdown(); // the final counts, after the last records
  await receiver?.stop();
  await recorder?.close().catch((err: Error) => log.warn(`--record ${opts.record}: ${err.message}; the recording is incomplete`));

  stderrLine(io, `headertap stopped: ${summary()}`);
  return ended.reason === 'failed' ? 1 : 0;
}
