import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import { createInterface } from 'node:readline';
import { LoaderError } from '../common/errors';
import type { Log } from '../common/log';
import { decodeFrame } from './decode';
import { setFiltersArgs, type CaptureFilters } from './filters';
import { FrameReader } from './frames';
import type { EventSource, SourceCounters, SourceEnd } from './source';
import { CONSTANTS as C } from './layout';
import type { GoFunctionProbe, GoTlsProbes } from './go-binary';
import type { AttachEvent, ReadyEvent, SourceEvent } from './types';

export interface LoaderOptions {
  /** Path of the headertap-loader binary. */
  path: string;
  /** The capture filters to start with (setFilters changes them). */
  filters?: CaptureFilters;
  /** Processes never captured (the agent itself; the loader adds its own pid). */
  selfPids?: readonly number[];
  ringbufKb?: number;
  /** Bytes of each socket call the kernel copies (see copyBytesFor). */
  copyBytes?: number;
  /** No TLS capture: no exec events, attach requests refused. */
  noTls?: boolean;
  /** Never stop a process that opens an unprobed libssl (--no-tls-hold). */
  noTlsHold?: boolean;
  verbose?: boolean;
  log: Log;
  /** Receives the loader's raw output, frame headers included (--record). */
  tap?: (chunk: Buffer) => void;
  /** How long stop() waits for the loader before killing it. */
  stopTimeoutMs?: number;
}

/**
 * How much of each socket call the kernel copies for a --max-header-bytes: a
 * head written in one call is then cut by the user's limit, not the copy.
 * Never less than one event's HT_MAX_DATA (bodies and HTTP/2 frames around
 * heads were always copied that far), at most HT_MAX_COPY.
 */
export function copyBytesFor(maxHeaderBytes: number): number {
  return Math.min(C.HT_MAX_COPY, Math.max(C.HT_MAX_DATA, maxHeaderBytes));
}

/** The loader's exit status for problems the user can fix (see loader.c). */
const EXIT_ENVIRONMENT = 2;

export function loaderArgs(o: LoaderOptions): string[] {
  const args: string[] = [];
  const f = o.filters;
  for (const p of f?.pids ?? []) args.push('--pid', String(p));
  for (const c of f?.comms ?? []) args.push('--comm', c);
  for (const p of f?.ports ?? []) args.push('--port', String(p));
  for (const c of f?.cgroups ?? []) args.push('--cgroup', c);
  for (const p of o.selfPids ?? []) args.push('--self-pid', String(p));
  if (o.ringbufKb !== undefined) args.push('--ringbuf-kb', String(o.ringbufKb));
  if (o.copyBytes !== undefined) args.push('--copy-bytes', String(o.copyBytes));
  if (o.noTls) args.push('--no-tls');
  if (o.noTlsHold) args.push('--no-tls-hold');
  if (o.verbose) args.push('--verbose');
  return args;
}

/**
 * Runs headertap-loader and decodes its stdout into events. The loader stops
 * when its stdin closes, so the agent dying for any reason stops capture too.
 */
export class LoaderSource implements EventSource {
  readonly counters: SourceCounters = { frames: 0, bytes: 0, decodeErrors: 0 };
  readonly ended: Promise<SourceEnd>;
  private _resolveEnded!: (end: SourceEnd) => void;
  private _child?: ChildProcessWithoutNullStreams;
  private _stopping = false;
  private _lastStderr = '';
  private _nextRequestId = 1;
  /** Commands sent to the loader, by ID, waiting for its answer. */
  private readonly _waiters = new Map<number, (ev: AttachEvent | Error) => void>();

  constructor(private readonly _opts: LoaderOptions) {
    this.ended = new Promise((resolve) => (this._resolveEnded = resolve));
  }

  start(handler: (event: SourceEvent) => void): Promise<ReadyEvent> {
    const o = this._opts;
    const child = spawn(o.path, loaderArgs(o), { stdio: ['pipe', 'pipe', 'pipe'] });
    this._child = child;
    const reader = new FrameReader();
    let ready: ReadyEvent | undefined;

    return new Promise<ReadyEvent>((resolve, reject) => {
      const onFrame = (frame: Buffer) => {
        this.counters.frames++;
        const ev = decodeFrame(frame);
        if (typeof ev === 'string') {
          this.counters.decodeErrors++;
          return;
        }
        if (ev.kind === 'ready' && !ready) {
          ready = ev;
          resolve(ev);
        }
        if (ev.kind === 'attach') {
          const waiter = this._waiters.get(ev.requestId);
          this._waiters.delete(ev.requestId);
          waiter?.(ev);
          return;
        }
        handler(ev);
      };
      // The loader closes stdout once it delivered everything, before its slow detach.
      child.stdout.on('end', () => {
        if (this._stopping) this._resolveEnded({ reason: 'stopped' });
      });
      child.stdout.on('data', (chunk: Buffer) => {
        this.counters.bytes += chunk.length;
        o.tap?.(chunk);
        if (!reader.push(chunk, onFrame)) {
          this.counters.decodeErrors++;
          o.log.warn('loader output is corrupt (frame larger than 1 MiB); restarting is needed');
          child.kill('SIGTERM');
        }
      });
      createInterface({ input: child.stderr }).on('line', (line) => {
        if (!line.trim()) return;
        // The loader's own warnings are for the user; everything else (libbpf) only with --verbose.
        const warning = /^headertap-loader: warning: (.*)$/.exec(line);
        if (warning) {
          o.log.warn(warning[1]);
          return;
        }
        this._lastStderr = line.replace(/^headertap-loader: /, '');
        o.log.debug(`loader: ${line}`);
      });
      child.stdin.on('error', () => {}); // EPIPE when the loader already exited
      child.on('error', (err) => {
        const msg = `cannot start the eBPF loader ${o.path}: ${err.message}; run \`npm run build\``;
        reject(new LoaderError(msg, null));
        this._resolveEnded({ reason: 'failed', message: msg });
      });
      child.on('close', (code, signal) => {
        for (const waiter of this._waiters.values()) waiter(new LoaderError('the eBPF loader exited', code));
        this._waiters.clear();
        if (this._stopping) {
          this._resolveEnded({ reason: 'stopped' });
          return;
        }
        const cause = this._lastStderr || (signal ? `killed by ${signal}` : `exited with status ${code}`);
        if (!ready) {
          const err = new LoaderError(cause, code);
          if (code === EXIT_ENVIRONMENT) err.name = 'EnvironmentLoaderError';
          reject(err);
        }
        this._resolveEnded({ reason: 'failed', message: `eBPF loader stopped: ${cause}` });
      });
    });
  }

  /**
   * Asks the loader to put the TLS uprobes on an absolute path (a library or
   * a program exporting SSL_write/SSL_read). Resolves with the loader's answer.
   */
  attachTls(path: string): Promise<AttachEvent> {
    if (!path.startsWith('/') || /[\n\0]/.test(path)) {
      return Promise.reject(new LoaderError(`cannot attach to ${JSON.stringify(path)}: not an absolute path`, null));
    }
    return this._command((id) => `attach-tls ${id} ${path}`);
  }

  /**
   * Asks the loader to put the Go crypto/tls uprobes on a Go program, at the
   * file offsets inspectGo() found. All or nothing.
   */
  attachGo(path: string, p: GoTlsProbes): Promise<AttachEvent> {
    if (!path.startsWith('/') || /[\n\0]/.test(path)) {
      return Promise.reject(new LoaderError(`cannot attach to ${JSON.stringify(path)}: not an absolute path`, null));
    }
    const hs = p.handshake?.rets.length ? p.handshake : undefined;
    const at = (f: GoFunctionProbe) => `${f.entry}${f.atCheck ? 'j' : ''}`;
    // Write's returns get no probes: it is sent at entry (bpf/gotls.bpf.h), and a probe on a return is single-stepped (costly).
    const offsets = [at(p.write), at(p.read), p.close ?? 0, hs ? at(hs) : 0, '-', p.read.rets.join(','), hs ? hs.rets.join(',') : '-'].join(' ');
    return this._command((id) => `attach-go ${id} ${offsets} ${path}`);
  }

  /**
   * Replaces every capture filter in the kernel at once (bpf/loader.c,
   * set_filters, says what the switch guarantees). Resolves once the new set
   * is in force; rejects, with the old set still in force, when the loader
   * refuses it (a cgroup directory gone, say) or is not running.
   */
  async setFilters(filters: CaptureFilters): Promise<void> {
    const args = setFiltersArgs(filters);
    const answer = await this._command((id) => `set-filters ${id}${args ? ` ${args}` : ''}`);
    if (answer.err < 0) {
      const why = answer.err === -2 ? 'a --cgroup directory does not exist' : `error ${-answer.err}`;
      throw new LoaderError(`the eBPF loader refused the new filters (${why}); the previous ones stay in force`, null);
    }
  }

  /**
   * Changes the bytes the kernel copies per socket call (--copy-bytes at
   * start): calls that start afterwards copy that much. Rejects when the
   * loader refuses the value or is not running.
   */
  async setCopyBytes(bytes: number): Promise<void> {
    const answer = await this._command((id) => `set-copy-bytes ${id} ${bytes}`);
    if (answer.err < 0) throw new LoaderError(`the eBPF loader refused to copy ${bytes} bytes per call (error ${-answer.err})`, null);
  }

  /** Sends one command line (made from its ID) and resolves with the loader's answer. */
  private _command(line: (id: number) => string): Promise<AttachEvent> {
    const child = this._child;
    if (!child || child.exitCode !== null || this._stopping) {
      return Promise.reject(new LoaderError('the eBPF loader is not running', null));
    }
    const id = this._nextRequestId++;
    return new Promise((resolve, reject) => {
      this._waiters.set(id, (ev) => (ev instanceof Error ? reject(ev) : resolve(ev)));
      child.stdin.write(`${line(id)}\n`);
    });
  }

  async stop(): Promise<void> {
    const child = this._child;
    if (!child || child.exitCode !== null || child.signalCode !== null) return;
    this._stopping = true;
    child.stdin.end();
    const timer = setTimeout(() => child.kill('SIGKILL'), this._opts.stopTimeoutMs ?? 5000);
    await this.ended;
    clearTimeout(timer);
  }
}
