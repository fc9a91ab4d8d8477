import { createHmac } from 'node:crypto';
import picomatch from 'picomatch';
import type { RulesFor } from './scoped-rules';

/** Values of headers matched by --redact-headers become this. */
export const REDACTED = '[REDACTED]';

/**
 * The secure default for --redact-headers: names of header fields and query
 * parameters that real APIs put secrets in. The first eight are DESIGN.md's
 * original list; the list is only ever extended. A `!glob` entry is an
 * exception: names it matches are not redacted (the authentication
 * challenges a server sends to anyone, useful to debug a 401; CORS's
 * allow-credentials flag).
 */
// prettier-ignore
export const DEFAULT_REDACT_HEADERS: readonly string[] = [
  'authorization', 'proxy-authorization', 'cookie', 'set-cookie', 'x-api-key', '*token*', '*secret*', '*password*',
  // credentials of any scheme: x-auth-*, oauth_signature; the challenges a server sends anyone are not secret
  '*auth*', '!www-authenticate', '!proxy-authenticate',
  '*cookie*',
  // API keys: x-goog-api-key, api-key, ?api_key=, ?apikey=, ?key= (Google APIs)
  '*api-key*', '*api_key*', '*apikey*', 'key',
  // session ids: x-session-id, jsessionid, phpsessid, ?sid=
  '*session*', '*sessid*', 'sid',
  '*csrf*', '*xsrf*',
  '*passwd*', '*passphrase*', 'pwd', 'pass',
  // signed-URL and cloud credentials: x-amz-credential, x-amz-signature, ?sig= (Azure SAS), access keys;
  // CORS's allow-credentials is a flag (true), not a credential
  '*credential*', '!access-control-allow-credentials', '*signature*', 'sig', '*private*key*', '*access*key*', '*subscription*key*',
  // signed identity tokens: x-jwt-assertion, x-amzn-oidc-data, SAMLResponse, DPoP proofs
  '*jwt*', '*oidc*', '*saml*', 'dpop',
];

/**
 * A --redact-headers value as given to the globs in force. Plain globs
 * replace the default list; `+glob` adds to it (or to the plain globs);
 * `!glob` is an exception: names it matches are never redacted, whatever
 * other glob matches them. With only `+` and `!` entries the default list
 * stays in force; an empty list redacts nothing.
 */
export function resolveRedactGlobs(given: readonly string[]): string[] {
  if (given.length === 0) return [];
  const plain = given.filter((g) => g[0] !== '+' && g[0] !== '!');
  const added = given.filter((g) => g[0] === '+').map((g) => g.slice(1));
  const exceptions = given.filter((g) => g[0] === '!');
  return [...(plain.length ? plain : DEFAULT_REDACT_HEADERS), ...added, ...exceptions];
}

export const DEFAULT_CAPTURE_HEADERS = ['*'];

/** Hex digits of the HMAC shown after `sha256:` (64 bits: enough to group by, too few to be the MAC). */
export const HASH_PREFIX_HEX = 16;

export type HeaderSide = 'request' | 'response';

export interface HeaderRulesConfig {
  /** Case-insensitive globs of header names to keep, both sides. */
  capture: readonly string[];
  /** Globs of names to drop, both sides (wins over capture). */
  exclude?: readonly string[];
  /** Replace `capture` for request / response headers when given. */
  captureRequest?: readonly string[];
  captureResponse?: readonly string[];
  /** Added to `exclude` for request / response headers. */
  excludeRequest?: readonly string[];
  excludeResponse?: readonly string[];
  /**
   * Globs of names whose values are replaced by [REDACTED] (also query
   * parameters); `!glob` entries are exceptions, never redacted.
   */
  redact: readonly string[];
  /** Globs of names whose values are replaced by a keyed hash (wins over redact). */
  hash?: readonly string[];
  /** HMAC-SHA256 key; required when `hash` is not empty. */
  hashKey?: Buffer;
}

/** What happens to one header. */
export const enum HeaderAction {
  Drop,
  Keep,
  Redact,
  Hash,
}

/** A list of globs to one matcher, compiled once into one regular expression (header names have no '/'). */
export function compileGlobs(globs: readonly string[]): (name: string) => boolean {
  if (globs.length === 0) return () => false;
  const sources = globs.map((g) => `(?:${picomatch.makeRe(g.trim(), { nocase: true, dot: true }).source})`);
  const re = new RegExp(sources.join('|'), 'i');
  return (name) => re.test(name);
}

/** The index of the first glob a name matches, or the number of globs when none does; compiled once. */
function compileRankedGlobs(globs: readonly string[]): (name: string) => number {
  const res = globs.map((g) => picomatch.makeRe(g.trim(), { nocase: true, dot: true }));
  return (name) => {
    const i = res.findIndex((re) => re.test(name));
    return i < 0 ? res.length : i;
  };
}

/** Names are attacker-controlled: decision caches stay bounded. */
const CACHE_LIMIT = 4096;

function cached<T>(cache: Map<string, T>, name: string, decide: (name: string) => T): T {
  let v = cache.get(name);
  if (v === undefined) {
    v = decide(name);
    if (cache.size >= CACHE_LIMIT) cache.clear();
    cache.set(name, v);
  }
  return v;
}

/**
 * Capture, exclude, redact and hash rules for header (and query-parameter)
 * names, compiled once. Decisions are cached per name: real traffic repeats
 * a few dozen names, so glob matching runs once for each.
 *
 * Precedence for a header: not captured or excluded → dropped; else matched by
 * hash globs → keyed hash; else matched by redact globs and by no `!`
 * exception → [REDACTED]; else kept.
 */
export class HeaderRules implements RulesFor {
  private readonly _capture: Record<HeaderSide, (name: string) => boolean>;
  private readonly _exclude: Record<HeaderSide, (name: string) => boolean>;
  private readonly _redact: (name: string) => boolean;
  private readonly _notRedacted: (name: string) => boolean;
  private readonly _hash: (name: string) => boolean;
  private readonly _hashKey?: Buffer;
  private readonly _cache: Record<HeaderSide, Map<string, HeaderAction>> = { request: new Map(), response: new Map() };
  private readonly _rank: Record<HeaderSide, (name: string) => number>;
  private readonly _rankCache: Record<HeaderSide, Map<string, number>> = { request: new Map(), response: new Map() };
  private readonly _secretCache = new Map<string, HeaderAction>();

  constructor(config: HeaderRulesConfig) {
    const capture = compileGlobs(config.capture);
    const exclude = config.exclude ?? [];
    this._capture = {
      request: config.captureRequest ? compileGlobs(config.captureRequest) : capture,
      response: config.captureResponse ? compileGlobs(config.captureResponse) : capture,
    };
    this._rank = {
      request: compileRankedGlobs(config.captureRequest ?? config.capture),
      response: compileRankedGlobs(config.captureResponse ?? config.capture),
    };
    this._exclude = {
      request: compileGlobs([...exclude, ...(config.excludeRequest ?? [])]),
      response: compileGlobs([...exclude, ...(config.excludeResponse ?? [])]),
    };
    this._redact = compileGlobs(config.redact.filter((g) => g[0] !== '!'));
    this._notRedacted = compileGlobs(config.redact.filter((g) => g[0] === '!').map((g) => g.slice(1)));
    this._hash = compileGlobs(config.hash ?? []);
    if ((config.hash ?? []).length > 0 && !config.hashKey?.length) throw new Error('hash globs need a hash key');
    this._hashKey = config.hashKey;
  }

  /** The same rules for every workload (RulesFor: how the mapper asks). */
  rulesFor(): HeaderRules {
    return this;
  }

  /** The action for a lower-case header name on one side of the exchange. */
  action(name: string, side: HeaderSide = 'request'): HeaderAction {
    return cached(this._cache[side], name, (n) =>
      !this._capture[side](n) || this._exclude[side](n) ? HeaderAction.Drop : this.secret(n),
    );
  }

  /**
   * The position in the side's capture globs (--capture-headers, or
   * --capture-{request,response}-headers) of the first glob that matches a
   * name: 0 for the first glob. A record that must leave headers out keeps
   * those with the lowest rank.
   */
  captureRank(name: string, side: HeaderSide = 'request'): number {
    return cached(this._rankCache[side], name, this._rank[side]);
  }

  /**
   * Hash, Redact, or Keep for a name, ignoring capture rules: used for query
   * parameters, command-line arguments and headers feeding other attributes.
   */
  secret(name: string): HeaderAction {
    return cached(this._secretCache, name.toLowerCase(), (n) =>
      this._hash(n) ? HeaderAction.Hash : this._redact(n) && !this._notRedacted(n) ? HeaderAction.Redact : HeaderAction.Keep,
    );
  }

  /** Whether a name's value must never be shown as it is. */
  isSecret(name: string): boolean {
    return this.secret(name) !== HeaderAction.Keep;
  }

  /** The value as exported under an action. */
  apply(action: HeaderAction, value: string): string {
    if (action === HeaderAction.Redact) return REDACTED;
    if (action === HeaderAction.Hash) return this.hash(value);
    return value;
  }

  /** `sha256:` and the first HASH_PREFIX_HEX hex digits of HMAC-SHA256(key, value). */
  hash(value: string): string {
    if (!this._hashKey) return REDACTED;
    const mac = createHmac('sha256', this._hashKey).update(value, 'utf8').digest('hex');
    return `sha256:${mac.slice(0, HASH_PREFIX_HEX)}`;
  }
}
