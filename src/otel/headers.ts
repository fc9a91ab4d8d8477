import picomatch from 'picomatch';

/** Values of headers matched by --redact-headers become this. */
export const REDACTED = '[REDACTED]';

/** DESIGN.md's secure default for --redact-headers. */
export const DEFAULT_REDACT_HEADERS = [
  'authorization',
  'proxy-authorization',
  'cookie',
  'set-cookie',
  'x-api-key',
  '*token*',
  '*secret*',
  '*password*',
];

export const DEFAULT_CAPTURE_HEADERS = ['*'];

export interface HeaderRulesConfig {
  /** Case-insensitive globs of header names to keep. */
  capture: readonly string[];
  /** Case-insensitive globs of header names whose values are replaced by [REDACTED]. */
  redact: readonly string[];
}

/** What happens to one header. */
export const enum HeaderAction {
  Drop,
  Keep,
  Redact,
}

/** A list of globs to one matcher, compiled once (header names have no '/'). */
export function compileGlobs(globs: readonly string[]): (name: string) => boolean {
  if (globs.length === 0) return () => false;
  const res = globs.map((g) => picomatch.makeRe(g.trim(), { nocase: true, dot: true }));
  return (name) => res.some((re) => re.test(name));
}

/**
 * Capture and redaction rules for header names. Decisions are cached per
 * name: real traffic repeats a few dozen names, so matching runs once each.
 */
export class HeaderRules {
  private readonly _capture: (name: string) => boolean;
  private readonly _redact: (name: string) => boolean;
  private readonly _cache = new Map<string, HeaderAction>();

  constructor(config: HeaderRulesConfig) {
    this._capture = compileGlobs(config.capture);
    this._redact = compileGlobs(config.redact);
  }

  /** The action for a lower-case header name. */
  action(name: string): HeaderAction {
    let a = this._cache.get(name);
    if (a === undefined) {
      a = !this._capture(name) ? HeaderAction.Drop : this._redact(name) ? HeaderAction.Redact : HeaderAction.Keep;
      // Names are attacker-controlled: keep the cache bounded.
      if (this._cache.size >= 4096) this._cache.clear();
      this._cache.set(name, a);
    }
    return a;
  }

  /** Whether a name's value must never be shown. */
  isRedacted(name: string): boolean {
    return this._redact(name.toLowerCase());
  }
}
