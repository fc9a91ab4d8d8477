import { diag, DiagLogLevel } from '@opentelemetry/api';
import { setGlobalErrorHandler } from '@opentelemetry/core';
import { EnvironmentError, LoaderError, UsageError } from '../common/errors';
import type { Log } from '../common/log';
import { LOADER_PATH } from '../common/paths';
import { ConnectionTracker } from '../http';
import { ExchangeMapper, LogPipeline, resolveExportTarget, SelfMetrics, SpanPipeline, Spool, type ExportTarget } from '../otel';
import { OtlpReceiver } from '../receiver';
import {
  LoaderSource,
  MonotonicClock,
  ReplaySource,
  TlsTargets,
  readRecording,
  SupervisedSource,
  type EventSource,
  type KernelCounters,
  type ReadyEvent,
  type SourceEvent,
} from '../source';
import { ProcessInfoCache, resolveCgroupPath } from '../workload';
import { checkWritableFile, PathProblem } from './files';
import type { RunOptions } from './options';
import { lineWriter, stderrLine, stderrLog, type CliIO } from './output';
import { batchPrinter } from './print';
import { checkKernel, checkPrivileges } from './privileges';
import { agentStats, summaryLine, type StatsParts } from './stats';
import { headerRulesOf, maskedRecorder } from './secrets';
import { VERSION } from './version';

/** Connections with no traffic for this long are dropped (their requests reported unanswered). */
const IDLE_CONNECTION_NS = 5 * 60 * 1e9;
const IDLE_SWEEP_MS = 30_000;
/** Records a replay lets wait for export at most (well under the delivery buffer). */
const REPLAY_MAX_PENDING = 16384;

/** The OpenTelemetry SDK reports through diag; show it only with --verbose (failures are counted and reported by us). */
function routeSdkDiagnostics(log: Log): void {
  diag.setLogger(
    { error: log.debug, warn: log.debug, info: log.debug, debug: () => {}, verbose: () => {} },
    DiagLogLevel.WARN,
  );
  setGlobalErrorHandler((err) => log.debug(`opentelemetry: ${String((err as Error)?.message ?? err)}`));
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

function describeFilters(o: RunOptions, cgroups: readonly string[]): string {
  const parts = [
    ...o.pid.map((p) => `pid ${p}`),
    ...o.comm.map((c) => `comm ${c}`),
    ...o.port.map((p) => `port ${p}`),
    ...cgroups.map((c) => `cgroup ${c}`),
  ];
  return parts.length ? parts.join(', ') : 'none (all processes)';
}

/** The startup line about TLS: which files got probes. */
export function describeTls(tls: TlsTargets): string {
  const names = tls.attached.map((t) => (t.kind === 'program' ? `${t.path} (OpenSSL built in)` : t.path));
  const failed = tls.failures ? `; ${tls.failures} could not be probed (see warnings)` : '';
  if (names.length === 0) {
    return `TLS: no OpenSSL found yet; programs started later are checked when they start${failed}`;
  }
  return `TLS: OpenSSL probes on ${names.join(', ')}; programs started later are checked when they start${failed}`;
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

function withTimeout<T>(p: Promise<T>, ms: number): Promise<T | 'timeout'> {
  let timer: NodeJS.Timeout;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<'timeout'>((resolve) => (timer = setTimeout(() => resolve('timeout'), ms))),
  ]);
}

/** `headertap run`: capture, parse, map, export; returns the exit status. */
export async function runAgent(opts: RunOptions, io: CliIO): Promise<number> {
  const log = stderrLog(io, opts.verbose);
  routeSdkDiagnostics(log);
  const exportFlags = { endpoint: opts.endpoint, protocol: opts.protocol, compression: opts.compression };
  const target = resolveExportTarget(exportFlags, io.env);
  const traceTarget = opts.emitSpans ? resolveExportTarget(exportFlags, io.env, 'traces') : undefined;
  const rules = headerRulesOf(opts, io.env);
  if (opts.record) checkRecordPath(opts.record);
  const payload = opts.replay ? readRecording(opts.replay) : undefined;
  const cgroups = payload ? [] : opts.cgroup.map((c) => resolveCgroupPath(c));
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

  const spool = opts.spoolDir ? new Spool(opts.spoolDir, opts.spoolMaxBytes) : undefined;
  if (spool && !spool.empty) log.info(`${spool.stats.records} records from an earlier run wait in ${spool.dir}; sending them first`);
  const pipeline = new LogPipeline({
    target,
    serviceName: opts.serviceName,
    version: VERSION,
    log,
    ...(opts.console ? { console: out } : {}),
    delivery: { maxRecords: opts.bufferRecords, maxBytes: opts.bufferBytes, ...(spool ? { spool } : {}) },
    workloads: { commandLine: opts.processCommandLine, rules },
  });
  const spans = traceTarget
    ? new SpanPipeline({ target: traceTarget, serviceName: opts.serviceName, version: VERSION, log, workloads: { commandLine: opts.processCommandLine, rules } })
    : undefined;
  const clock = new MonotonicClock();
  const processes = new ProcessInfoCache({ commandLine: opts.processCommandLine });
  const mapper = new ExchangeMapper({
    rules,
    toHrTime: (ns) => clock.toHrTime(ns),
    processInfo: (pid, comm) => processes.get(pid, comm),
  });
  const tracker = new ConnectionTracker({
    maxHeaderBytes: opts.maxHeaderBytes,
    ports: opts.port,
    onExchange: (ex) => {
      const rec = mapper.map(ex);
      pipeline.emit(spans ? spans.withSpan(rec) : rec);
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

  const recorder = opts.record ? maskedRecorder(opts.record, rules) : undefined;
  const loader = (): LoaderSource =>
    new LoaderSource({
      path: LOADER_PATH,
      pids: opts.pid,
      comms: opts.comm,
      ports: opts.port,
      cgroups,
      selfPids: [process.pid],
      noTls: !opts.tls,
      ringbufKb: opts.ringbufKb,
      verbose: opts.verbose,
      log,
      ...(recorder ? { tap: (chunk: Buffer) => recorder.write(chunk) } : {}),
    });
  /** Probes the TLS libraries present now through the running loader (again after a restart: a new loader has none). */
  const probeTls = async (l: LoaderSource): Promise<void> => {
    tls?.stop();
    tls = new TlsTargets({ attach: (file) => l.attachTls(file), log });
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
        onRestarted: (l) => (opts.tls ? probeTls(l) : Promise.resolve()),
      });
  // A replay runs as fast as the exporter drains, never faster (it would drop records).
  const source: EventSource =
    supervised ?? new ReplaySource(payload!, { canTake: () => pipeline.delivery.bufferedRecords < REPLAY_MAX_PENDING });
  const parts = (): StatsParts => ({
    http: tracker.counters,
    delivery: pipeline.delivery,
    ...(spool ? { spool: spool.stats } : {}),
    ...(kernel ? { kernel } : {}),
    lostByCpu,
    eventsIn,
    loaderRestarts: supervised?.restarts ?? 0,
  });
  /** The totals line, with the spans' when --emit-spans is on. */
  const summary = (): string => `${summaryLine(parts())}${spans ? `; ${spans.summary()}` : ''}`;

  const signal = waitForSignal();
  let ready: ReadyEvent;
  try {
    ready = await source.start(onEvent);
  } catch (err) {
    signal.dispose();
    await receiver?.stop();
    await Promise.all([pipeline.shutdown(opts.shutdownTimeout * 1000), spans?.shutdown()]);
    if (err instanceof LoaderError && err.exitCode === 2) throw new EnvironmentError(err.message);
    throw err;
  }

  // Probe the TLS libraries present now before saying ready, so HTTPS started after the ready line is seen.
  if (supervised?.current && opts.tls) await probeTls(supervised.current);

  const protocolName = target.protocol === 'grpc' ? 'OTLP/gRPC' : 'OTLP/HTTP (protobuf)';
  const what = tls ? 'HTTP/1.x and HTTP/2 over TCP and TLS' : 'HTTP/1.x and HTTP/2 over TCP';
  const from = payload ? `replaying ${opts.replay}` : `capturing ${what} on ${ready.ncpus} CPUs (loader pid ${ready.loaderPid})`;
  const spansTo = traceTarget ? `, spans to ${traceTarget.url}` : '';
  stderrLine(
    io,
    `headertap ready: ${from}; exporting ${protocolName} to ${target.url}${spansTo}${receiver ? ' (embedded receiver)' : ''}; filters: ${describeFilters(opts, cgroups)}`,
  );

  const sweep = setInterval(() => tracker.evictIdle(lastNs - IDLE_CONNECTION_NS), IDLE_SWEEP_MS);
  sweep.unref();
  const statsTimer =
    opts.statsInterval > 0 ? setInterval(() => stderrLine(io, `headertap stats: ${summary()}`), opts.statsInterval * 1000) : undefined;
  statsTimer?.unref();
  const selfMetrics = opts.selfMetrics
    ? new SelfMetrics({
        target: resolveExportTarget(exportFlags, io.env, 'metrics'),
        serviceName: opts.serviceName,
        version: VERSION,
        intervalMs: (opts.statsInterval || 60) * 1000,
        stats: () => agentStats(parts()),
      })
    : undefined;

  const ended = await Promise.race([signal.promise.then((s) => ({ reason: 'signal' as const, message: s })), source.ended]);
  signal.dispose();
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
  await selfMetrics?.shutdown(); // the final counts, after the last records
  await receiver?.stop();
  await recorder?.close().catch((err: Error) => log.warn(`--record ${opts.record}: ${err.message}; the recording is incomplete`));

  stderrLine(io, `headertap stopped: ${summary()}`);
  return ended.reason === 'failed' ? 1 : 0;
}
