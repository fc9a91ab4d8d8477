/**
 * Live configuration: `headertap run --config FILE` follows the file (and
 * reloads on SIGHUP) while capture goes on. Keys marked `live` in
 * RUN_OPTIONS take effect; the others are reported as needing a restart.
 *
 * A reload is all or nothing: the file is read, every value checked and
 * every rule compiled before anything changes; then the parts of the agent
 * that follow the file are switched one after the other, the one that can
 * fail (the kernel filters) first. A file that does not parse or validate
 * changes nothing.
 */
import { createHash } from 'node:crypto';
import { realpathSync, watch, watchFile, unwatchFile, type FSWatcher } from 'node:fs';
import * as path from 'node:path';
import { HeadertapError } from '../common/errors';
import type { Log } from '../common/log';
import { camel, loadConfigFile, readConfigText, resolveRunOptionsWith, RUN_OPTIONS, type OptionSpec, type RunOptions } from './options';

/**
 * One part of the running agent that follows the config file: the kernel
 * filters, the header rules, the header-size limit. To make another key live
 * (e.g. --metric-headers for RED metrics), mark its OptionSpec `live: true`
 * and add a part: build and check everything in prepare (compile the globs;
 * throw a UsageError naming the key), put it in force in commit with one
 * assignment to the reference its users read once per record.
 */
export interface LivePart<T = unknown> {
  /** RUN_OPTIONS keys this part applies (every live key needs one part: the Reloader checks). */
  readonly keys: readonly string[];
  /** Everything the new options need, built and checked; nothing changes yet. Throws on bad input. */
  prepare(next: RunOptions): T;
  /**
   * Puts the prepared state in force (or keeps what is in force when it is
   * the same). Parts are committed in order; only the first may fail
   * (asynchronously), and then nothing has changed.
   */
  commit(prepared: T): void | Promise<void>;
}

const LIVE_SPECS = RUN_OPTIONS.filter((s) => s.live);

function valueOf(o: RunOptions, spec: OptionSpec): string {
  return JSON.stringify(o[spec.prop] ?? null);
}

/** Keys whose values differ between two option sets, among `specs`. */
function changedKeys(a: RunOptions, b: RunOptions, specs: readonly OptionSpec[]): string[] {
  return specs.filter((s) => valueOf(a, s) !== valueOf(b, s)).map((s) => s.key);
}

/**
 * A short digest of the rules in force: every live key's value, and the hash
 * key (as a hash of its own: the key never shows), so two agents showing the
 * same digest capture, filter, redact and hash alike.
 */
export function rulesDigest(o: RunOptions, hashKey?: Buffer): string {
  const h = createHash('sha256');
  for (const spec of LIVE_SPECS) h.update(`${spec.key}=${valueOf(o, spec)}\n`);
  if (hashKey) h.update(`hash-key=${createHash('sha256').update(hashKey).digest('hex')}\n`);
  return h.digest('hex').slice(0, 8);
}

export interface ReloaderOptions {
  configFile: string;
  /** The file's text `initial` was read from (default: read now). */
  configText?: string;
  /** The flags given on the command line: they keep winning over the file. */
  flags: Record<string, unknown>;
  /** The options in force at start. */
  initial: RunOptions;
  /** The digest at start (rulesDigest). */
  digest: string;
  parts: readonly LivePart[];
  /** The digest of options about to be put in force (the hash key is read by a part). */
  digestOf(next: RunOptions): string;
  log: Log;
}

export type ReloadTrigger = 'SIGHUP' | 'file change';

/**
 * Reloads the config file on demand, one reload at a time (a request during
 * one runs once it ended), and counts them.
 */
export class Reloader {
  reloads = 0;
  failures = 0;
  private _current: RunOptions;
  private _digest: string;
  /** The bytes last read (a broken file is reported once, not at every event). */
  private _seenText?: string;
  private _lastDoc: Record<string, unknown> = {};
  private _running?: Promise<void>;
  private _again?: ReloadTrigger;

  constructor(private readonly _opts: ReloaderOptions) {
    const covered = new Set(_opts.parts.flatMap((p) => p.keys));
    const orphans = LIVE_SPECS.filter((s) => !covered.has(s.key)).map((s) => s.key);
    if (orphans.length) throw new Error(`live keys without a LivePart to apply them: ${orphans.join(', ')}`);
    this._current = _opts.initial;
    this._digest = _opts.digest;
    try {
      this._seenText = _opts.configText ?? readConfigText(_opts.configFile);
      this._lastDoc = loadConfigFile(_opts.configFile, this._seenText);
    } catch {
      // read at start already; a problem now shows at the next reload
    }
  }

  /** The digest of the rules in force. */
  get digest(): string {
    return this._digest;
  }

  /** The options in force (live keys as last reloaded, the others as at start). */
  get current(): RunOptions {
    return this._current;
  }

  /**
   * Reloads (after the one running, if any). A file change whose bytes are
   * the ones in force already does nothing (editors touch files; SIGHUP
   * always reloads). Resolves when done; never rejects.
   */
  reload(trigger: ReloadTrigger): Promise<void> {
    if (this._running) {
      this._again = this._again === 'SIGHUP' ? 'SIGHUP' : trigger;
      return this._running;
    }
    this._running = (async () => {
      let next: ReloadTrigger | undefined = trigger;
      while (next) {
        this._again = undefined;
        await this._reloadOnce(next);
        next = this._again;
      }
      this._running = undefined;
    })();
    return this._running;
  }

  private async _reloadOnce(trigger: ReloadTrigger): Promise<void> {
    const { configFile, log } = this._opts;
    let doc: Record<string, unknown>;
    let next: RunOptions;
    const prepared: unknown[] = [];
    try {
      const text = readConfigText(configFile);
      if (trigger === 'file change' && text === this._seenText) return;
      this._seenText = text;
      doc = loadConfigFile(configFile, text);
      next = resolveRunOptionsWith(this._opts.flags, doc, configFile);
      for (const part of this._opts.parts) prepared.push(part.prepare(next));
    } catch (err) {
      if (trigger === 'file change' && err instanceof HeadertapError && err.message.startsWith('cannot read')) {
        if (this._seenText === undefined) return; // still gone: said so already
        this._seenText = undefined;
      }
      this._fail(err);
      return;
    }
    const live = changedKeys(this._current, next, LIVE_SPECS);
    const restart = changedKeys(
      this._current,
      next,
      RUN_OPTIONS.filter((s) => !s.live),
    );
    // The file changed a key a flag sets: the flag still wins; say so, or the edit looks lost.
    const byFlag = Object.keys(doc).filter(
      (k) => this._opts.flags[camel(k)] !== undefined && JSON.stringify(doc[k]) !== JSON.stringify(this._lastDoc[k]),
    );
    try {
      for (const [i, part] of this._opts.parts.entries()) await part.commit(prepared[i]);
    } catch (err) {
      this._fail(err);
      return;
    }
    // In force now: the live keys' new values; the others keep running as they started.
    const inForce = { ...this._current };
    for (const spec of LIVE_SPECS) (inForce as Record<string, unknown>)[spec.prop] = next[spec.prop];
    this._current = inForce;
    const before = this._digest;
    this._digest = this._opts.digestOf(inForce);
    this._lastDoc = doc;
    this.reloads++;
    const what = live.length ? `${live.join(', ')} changed` : before !== this._digest ? 'the hash key changed' : 'nothing changed';
    const digest = before === this._digest ? `rules ${this._digest}` : `rules ${before} -> ${this._digest}`;
    const needRestart = restart.length ? `; ${restart.join(', ')} changed but need${restart.length === 1 ? 's' : ''} a restart (still as at start)` : '';
    const flagged = byFlag.length ? `; ${byFlag.join(', ')} ${byFlag.length === 1 ? 'is' : 'are'} given as a flag, which wins over the file` : '';
    log.info(`config reloaded (${trigger}) from ${configFile}: ${what}; ${digest}${needRestart}${flagged}`);
  }

  private _fail(err: unknown): void {
    this.failures++;
    const why = err instanceof HeadertapError ? err.message : `unexpected error: ${(err as Error)?.message ?? String(err)}`;
    this._opts.log.warn(`config reload failed, the rules in force stay (rules ${this._digest}): ${why}`);
  }
}

/** Editors save in several steps (write a temporary file, rename it over): act once they are done. */
export const RELOAD_DEBOUNCE_MS = 100;

/**
 * Calls `onChange` after the config file may have changed. It watches the
 * file's directory, not the file: editors and Kubernetes ConfigMaps replace
 * the file (a rename, a symlink swap), which ends a watch on the file itself.
 * Events about the file's name, or Kubernetes' `..data` links, are debounced
 * into one call (the caller compares the bytes). A config that is a symlink
 * is followed: its target's directory is watched too. If a directory cannot
 * be watched (inotify limits), the file is polled every second instead.
 */
export function watchConfig(file: string, onChange: () => void, log: Log): { close(): void } {
  let timer: NodeJS.Timeout | undefined;
  const changed = () => {
    clearTimeout(timer);
    timer = setTimeout(onChange, RELOAD_DEBOUNCE_MS);
    timer.unref();
  };
  const watchers: FSWatcher[] = [];
  let polling = false;
  const poll = (why: string) => {
    for (const w of watchers.splice(0)) w.close();
    if (polling) return;
    polling = true;
    log.warn(`cannot watch the directory of --config ${file} (${why}); checking the file every second instead`);
    watchFile(file, { interval: 1000, persistent: false }, changed);
  };
  const given = path.resolve(file);
  let real = given;
  try {
    real = realpathSync(given);
  } catch {
    // not there now: its directory is watched for it to come back
  }
  const names = new Set([path.basename(given), path.basename(real)]);
  for (const dir of new Set([path.dirname(given), path.dirname(real)])) {
    try {
      const w = watch(dir, { persistent: false }, (_event, name) => {
        if (name === null || names.has(String(name)) || String(name).startsWith('..')) changed();
      });
      w.on('error', (err) => {
        w.close();
        watchers.splice(watchers.indexOf(w), 1);
        if (watchers.length === 0) poll(err.message); // the other directory (a symlink's) may still be watched
      });
      watchers.push(w);
    } catch (err) {
      poll((err as Error).message);
      break;
    }
  }
  return {
    close() {
      clearTimeout(timer);
      for (const w of watchers) w.close();
      if (polling) unwatchFile(file, changed);
    },
  };
}
