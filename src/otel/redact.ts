/**
 * Secrets outside header values: query parameters, credentials in URLs,
 * command-line arguments. Everything is matched against the same name rules
 * as headers (HeaderRules.secret): `?access_token=…` is hidden by the default
 * `*token*` glob exactly as an `X-Access-Token` header is.
 */
import { decodeParamName } from '../common/param-name';
import { HeaderAction, type HeaderRules } from './headers';


/**
 * A query string with the values of secret parameters replaced by
 * [REDACTED] or their keyed hash (of the value as sent); everything else is
 * kept byte for byte. `a=1&access_token=xyz` → `a=1&access_token=[REDACTED]`.
 */
export function redactQuery(query: string, rules: HeaderRules): string {
  if (!query.includes('=')) return query;
  const parts = query.split('&');
  let changed = false;
  for (let i = 0; i < parts.length; i++) {
    const eq = parts[i].indexOf('=');
    if (eq <= 0) continue;
    const action = rules.secret(decodeParamName(parts[i].slice(0, eq)));
    if (action === HeaderAction.Keep) continue;
    parts[i] = `${parts[i].slice(0, eq + 1)}${rules.apply(action, parts[i].slice(eq + 1))}`;
    changed = true;
  }
  return changed ? parts.join('&') : query;
}

const ABSOLUTE_URL = /^([a-zA-Z][a-zA-Z0-9+.-]*:\/\/)([^/?#]*)/;

/** A URL without its userinfo (`scheme://user:pass@host` → `scheme://host`), nothing else changed. */
function withoutUserinfo(url: string): string {
  const abs = ABSOLUTE_URL.exec(url);
  const at = abs ? abs[2].lastIndexOf('@') : -1;
  return abs && at >= 0 ? abs[1] + abs[2].slice(at + 1) + url.slice(abs[0].length) : url;
}

/**
 * One URL without credentials: userinfo (`user:password@`) is dropped and
 * secret query parameters are redacted. Works on absolute and relative URLs.
 */
export function redactUrl(url: string, rules: HeaderRules): string {
  const out = withoutUserinfo(url);
  const q = out.indexOf('?');
  if (q < 0) return out;
  const hash = out.indexOf('#', q);
  const end = hash < 0 ? out.length : hash;
  return out.slice(0, q + 1) + redactQuery(out.slice(q + 1, end), rules) + out.slice(end);
}

/** URLs inside free text: scheme://… up to whitespace or a delimiter such as `>` or `"`. */
const EMBEDDED_URL = /[a-zA-Z][a-zA-Z0-9+.-]*:\/\/[^\s<>"'`]*/g;

/** Words of a header value that may be a URL or a path with a query: up to whitespace or a delimiter. */
const URL_WORD = /[^\s<>"'`]+/g;

/** Header values that are a (possibly relative) URL reference. */
const URL_HEADERS = new Set(['referer', 'location', 'content-location']);

/**
 * One word of a header value. A URL (`https://…`) or a path or reference
 * with a query (`/cb?access_token=…`, `cb?x=1`) has its secret query
 * parameters redacted, once, by the same rules as url.query; credentials in
 * any URL inside the word are dropped. Other words stay as they are.
 */
function redactWord(word: string, rules: HeaderRules): string {
  const scheme = word.indexOf('://');
  const query = word.indexOf('?');
  if (scheme < 0 && query < 0) return word;
  if (query >= 0 && (scheme < 0 || query < scheme || ABSOLUTE_URL.exec(word)?.index === 0)) {
    // The word is the URL (or path): its query is redacted; URLs nested in it lose their credentials.
    return redactUrl(word, rules).replace(EMBEDDED_URL, withoutUserinfo);
  }
  return word.replace(EMBEDDED_URL, (u) => redactUrl(u, rules)); // `url=https://…`: the URL inside
}

/**
 * A kept header value with the URLs in it cleaned: Referer, Location and
 * Content-Location as URL references; in any other header (X-Forwarded-Uri,
 * X-Original-URL, Link, Refresh…), each URL and each path with a query. The
 * --record masker hides the same query parameters in the captured bytes.
 */
export function redactHeaderValue(name: string, value: string, rules: HeaderRules): string {
  if (URL_HEADERS.has(name)) return redactUrl(value, rules);
  if (!value.includes('://') && !value.includes('?')) return value;
  return value.replace(URL_WORD, (w) => redactWord(w, rules));
}

const ARG_WITH_VALUE = /^(-{0,2}[^=\s:-][^=\s:]*)=([\s\S]*)$/;
const FLAG_ALONE = /^--?([A-Za-z0-9][A-Za-z0-9_.-]*)$/;
/** A header given as an argument (`curl -H 'Authorization: …'`, also glued: `-HAuthorization: …`). */
const HEADER_ARG = /^(-H)?([!#$%&'*+.^_`|~0-9A-Za-z-]+):([\s\S]*)$/;
/** Options whose value is `user:password` (curl, wget, git's credential helpers…). */
const USER_OPTIONS = new Set(['-u', '--user', '-U', '--proxy-user', '--http-user', '--ftp-user']);

function userPassword(value: string, rules: HeaderRules): string {
  const colon = value.indexOf(':');
  return colon < 0 ? value : `${value.slice(0, colon + 1)}${rules.apply(HeaderAction.Redact, value.slice(colon + 1))}`;
}

/** One argument on its own: `name=value`, `Name: value`, or anything holding URLs. */
function redactArg(arg: string, rules: HeaderRules): string {
  const kv = ARG_WITH_VALUE.exec(arg);
  if (kv) {
    const name = kv[1].replace(/^-+/, '');
    if (USER_OPTIONS.has(kv[1])) return `${kv[1]}=${userPassword(kv[2], rules)}`;
    const action = rules.secret(decodeParamName(name));
    if (action !== HeaderAction.Keep) return `${kv[1]}=${rules.apply(action, kv[2])}`;
  }
  const header = HEADER_ARG.exec(arg);
  if (header && !arg.includes('://')) {
    const action = rules.secret(header[2]);
    if (action !== HeaderAction.Keep) return `${header[1] ?? ''}${header[2]}: ${rules.apply(action, header[3].trim())}`;
  }
  return redactHeaderValue('', arg, rules);
}

/**
 * Command-line arguments with secrets hidden (best effort: a program may take
 * a secret in a shape nobody can recognise). Hidden: the value of
 * `--name=value`, `NAME=value` and `--name value` when `name` is a secret
 * name; secret headers given as arguments (`-H 'Authorization: …'`); the
 * password of `-u user:password`; credentials and secret query parameters in
 * URLs (`postgres://user:pw@db/x`).
 */
export function redactArgs(args: readonly string[], rules: HeaderRules): string[] {
  const out: string[] = [];
  let pending: HeaderAction | 'user' = HeaderAction.Keep;
  for (const arg of args) {
    const take = pending;
    pending = HeaderAction.Keep;
    if (take === 'user' && !arg.startsWith('-')) {
      out.push(userPassword(arg, rules));
      continue;
    }
    if (take !== 'user' && take !== HeaderAction.Keep && !arg.startsWith('-')) {
      out.push(rules.apply(take, arg));
      continue;
    }
    if (USER_OPTIONS.has(arg)) pending = 'user';
    else {
      const flag = FLAG_ALONE.exec(arg);
      if (flag) pending = rules.secret(flag[1]);
    }
    out.push(redactArg(arg, rules));
  }
  return out;
}
