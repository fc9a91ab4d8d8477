/**
 * Routes: the low-cardinality form of a request path that http.route (server
 * side) and url.template (client side) carry, and that request metrics are
 * broken down by. A route comes from the patterns a user gives per workload
 * (`routes:` in the config file), else from a heuristic that turns id-like
 * path segments into `{id}`. Each workload has at most `maxRoutes` distinct
 * routes: past that, new ones become OVERFLOW_ROUTE, and are counted.
 */
import type { ConnectionInfo } from '../http';
import type { ProcessInfo } from '../workload';
import { workloadMatcher, type WorkloadMatch } from './scoped-rules';

/** Where routes past a workload's cap go. */
export const OVERFLOW_ROUTE = '/**';
/** --max-routes: distinct routes per workload. */
export const DEFAULT_MAX_ROUTES = 500;
/** The placeholder the heuristic puts for an id-like segment. */
export const ID_PLACEHOLDER = '{id}';
/** Segments the heuristic keeps; a deeper path ends in `/**`. */
export const MAX_ROUTE_SEGMENTS = 12;
/** The attribute a record's route goes in: http.route on the server side, url.template on the client side (semantic conventions). */
export const ATTR_HTTP_ROUTE = 'http.route';
export const ATTR_URL_TEMPLATE = 'url.template';

export function routeAttribute(role: 'client' | 'server'): string {
  return role === 'server' ? ATTR_HTTP_ROUTE : ATTR_URL_TEMPLATE;
}

/** Route rules in the config file at most. */
export const MAX_ROUTE_RULES = 32;

/** Patterns for the workloads `match` names (none: every workload). */
export interface RouteRule {
  match?: WorkloadMatch;
  patterns: readonly string[];
}

export interface RoutesConfig {
  rules: readonly RouteRule[];
  /** Distinct routes per workload (default DEFAULT_MAX_ROUTES). */
  maxRoutes?: number;
}

export interface RouteCounters {
  /** Records whose route was OVERFLOW_ROUTE because their workload had maxRoutes routes already. */
  overflowed: number;
}

/** What the mapper asks once per record. */
export interface RoutesFor {
  /**
   * The route of `path` for this workload (`key`: an object standing for it,
   * e.g. its resource; the cap is per key), or undefined when the path has
   * none (CONNECT, `*`).
   */
  routeFor(workload: ProcessInfo, key: object, path: string, connection?: ConnectionInfo): string | undefined;
}

const UUID = /^[0-9a-f]{8}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{4}-?[0-9a-f]{12}$/i;
const HEX = /^[0-9a-f]+$/i;
const TOKEN = /^[A-Za-z0-9_\-+=.~]+$/;
const QUALIFIED = /^[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)+$/;

/**
 * Whether a path segment looks like an id rather than a name (README,
 * "Routes"): a number, a UUID, hex of 8+ characters with a digit, three or
 * more digits anywhere (order-12345, 2024-05-01, a1b2c3), a digit in a
 * segment of 12+ characters, a base64-like token of 16+ characters whose
 * case flips as often as random text's does, an e-mail address, or anything
 * longer than 32 characters (random strings, long slugs). Names such as
 * `v1`, `oauth2`, `ipv6`, `getUserProfile` stay, and so does a dotted
 * qualified name (`shop.v1.CartService`, `site.css`) unless one of its parts
 * is an id.
 */
export function isIdSegment(s: string): boolean {
  const n = s.length;
  if (n === 0) return false;
  // A qualified name (gRPC's pkg.v1.Service, file.ext) is an id only if one of its parts is.
  if (s.includes('.') && QUALIFIED.test(s)) return s.split('.').some(isIdSegment);
  if (n > 32) return true;
  let digits = 0;
  let upper = 0;
  let lower = 0;
  let flips = 0;
  let prev = 0; // 1 digit, 2 upper, 3 lower, 4 other
  for (let i = 0; i < n; i++) {
    const c = s.charCodeAt(i);
    let kind: number;
    if (c >= 48 && c <= 57) {
      digits++;
      kind = 1;
    } else if (c >= 65 && c <= 90) {
      upper++;
      kind = 2;
    } else if (c >= 97 && c <= 122) {
      lower++;
      kind = 3;
    } else {
      if (c === 0x40) return true; // @: an e-mail address
      kind = 4;
    }
    if (prev !== 0 && kind !== prev && kind !== 4 && prev !== 4) flips++;
    prev = kind;
  }
  if (digits === n) return true;
  if (digits >= 3) return true;
  if (digits > 0 && n >= 12) return true;
  if (n >= 8 && digits > 0 && HEX.test(s)) return true;
  if (n >= 32 && UUID.test(s)) return true;
  // base64/base64url without digits: case changes as in random text (camelCase words change far less)
  if (n >= 16 && upper > 0 && lower > 0 && flips * 3 >= n && TOKEN.test(s)) return true;
  return false;
}

/**
 * The heuristic route of a path: id-like segments (isIdSegment) become
 * `{id}`, `;params` are cut off a segment (they hold session ids), a path
 * deeper than MAX_ROUTE_SEGMENTS ends in `/**`. The query is not part of it.
 */
export function heuristicRoute(path: string): string {
  if (path === '' || path === '/') return '/';
  if (path.charCodeAt(0) !== 0x2f) return OVERFLOW_ROUTE; // '*' or an authority: no path to speak of
  const segments = path.split('/');
  const out: string[] = [''];
  for (let i = 1; i < segments.length; i++) {
    if (out.length > MAX_ROUTE_SEGMENTS) {
      out.push('**');
      break;
    }
    let seg = segments[i];
    const semi = seg.indexOf(';');
    if (semi >= 0) seg = seg.slice(0, semi);
    out.push(isIdSegment(seg) ? ID_PLACEHOLDER : seg);
  }
  return out.join('/');
}

/** A user-given route pattern, compiled: `{name}` one segment, `{name...}` or a final `**` the rest. */
export interface RoutePattern {
  pattern: string;
  test(path: string): boolean;
}

const PARAM = /\{([A-Za-z_][A-Za-z0-9_.-]*)(\.\.\.)?\}/g;

/**
 * Compiles a route pattern; throws Error saying what is wrong. Literal parts
 * match exactly (case-sensitive), `{name}` or `*` match one non-empty
 * segment (or part of one: `/files/{name}.json`), `{name...}` or `**` as the
 * last segment match whatever follows (nothing too).
 */
export function compileRoutePattern(pattern: string): RoutePattern {
  if (!pattern.startsWith('/')) throw new Error(`'${pattern}' does not start with '/'`);
  if (/[?#\s]/.test(pattern)) throw new Error(`'${pattern}' has a query, fragment or space; a route is a path`);
  const segments = pattern.split('/').slice(1);
  let re = '^';
  segments.forEach((seg, i) => {
    const last = i === segments.length - 1;
    if (seg === '**' || /^\{[A-Za-z_][A-Za-z0-9_.-]*\.\.\.\}$/.test(seg)) {
      if (!last) throw new Error(`'${pattern}': '${seg}' matches the rest of the path, so it must come last`);
      re += '(?:/.*)?';
      return;
    }
    if (seg === '*') {
      re += '/[^/]+';
      return;
    }
    if (/[{}]/.test(seg.replace(PARAM, ''))) throw new Error(`'${pattern}' has a '{' or '}' that is not a {name} placeholder`);
    let part = '';
    let at = 0;
    PARAM.lastIndex = 0;
    for (let m = PARAM.exec(seg); m; m = PARAM.exec(seg)) {
      if (m[2]) throw new Error(`'${pattern}': '${m[0]}' matches the rest of the path; give it a segment of its own, last`);
      part += escapeRe(seg.slice(at, m.index)) + '[^/]+';
      at = m.index + m[0].length;
    }
    re += '/' + part + escapeRe(seg.slice(at));
  });
  const compiled = new RegExp(re + '$');
  return { pattern, test: (path) => compiled.test(path) };
}

function escapeRe(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

interface CompiledRule {
  workload: (w: ProcessInfo) => boolean;
  ports?: ReadonlySet<number>;
  patterns: RoutePattern[];
}

/** Paths remembered per workload with their route (most traffic repeats a few paths). */
const MAX_CACHED_PATHS = 4096;

/** A workload's routes: its patterns, and the distinct routes it has had. */
interface WorkloadRoutes {
  /** Patterns of the rules that match it whatever the port; rules by port are checked per record. */
  patterns: RoutePattern[];
  byPort: CompiledRule[];
  routes: Set<string>;
  /** path → route, for records without port rules. */
  cache: Map<string, string>;
}

/**
 * The route rules of a config, compiled once (a load or a reload: a reload
 * starts every workload's routes over). Patterns of the rules that match a
 * workload are tried in order, then the heuristic.
 */
export class Routes implements RoutesFor {
  readonly maxRoutes: number;
  private readonly _rules: CompiledRule[];
  private readonly _byKey = new WeakMap<object, WorkloadRoutes>();

  /** Throws Error naming the bad pattern. */
  constructor(
    config: RoutesConfig,
    readonly counters: RouteCounters = { overflowed: 0 },
  ) {
    if (config.rules.length > MAX_ROUTE_RULES) throw new Error(`at most ${MAX_ROUTE_RULES} route rules`);
    this.maxRoutes = config.maxRoutes ?? DEFAULT_MAX_ROUTES;
    this._rules = config.rules.map((r) => ({
      workload: r.match ? workloadMatcher(r.match) : () => true,
      ...(r.match?.ports?.length ? { ports: new Set(r.match.ports) } : {}),
      patterns: r.patterns.map(compileRoutePattern),
    }));
  }

  routeFor(workload: ProcessInfo, key: object, path: string, connection?: ConnectionInfo): string | undefined {
    if (path === '*' || path === '') return undefined;
    let w = this._byKey.get(key);
    if (!w) {
      w = this._workload(workload);
      this._byKey.set(key, w);
    }
    let route: string | undefined;
    if (w.byPort.length === 0) {
      route = w.cache.get(path);
      if (route === undefined) {
        route = this._admit(w, this._match(w.patterns, path) ?? heuristicRoute(path));
        if (w.cache.size >= MAX_CACHED_PATHS) w.cache.clear();
        w.cache.set(path, route);
      }
    } else {
      const local = connection?.local?.port;
      const remote = connection?.remote?.port;
      for (const r of w.byPort) {
        if ((local !== undefined && r.ports!.has(local)) || (remote !== undefined && r.ports!.has(remote))) {
          route = this._match(r.patterns, path);
          if (route !== undefined) break;
        }
      }
      route = this._admit(w, route ?? this._match(w.patterns, path) ?? heuristicRoute(path));
    }
    if (route === OVERFLOW_ROUTE) this.counters.overflowed++;
    return route;
  }

  /** The route itself while the workload has room for it (or has it already), else OVERFLOW_ROUTE. */
  private _admit(w: WorkloadRoutes, route: string): string {
    if (w.routes.has(route)) return route;
    if (w.routes.size >= this.maxRoutes) return OVERFLOW_ROUTE;
    w.routes.add(route);
    return route;
  }

  private _match(patterns: readonly RoutePattern[], path: string): string | undefined {
    for (const p of patterns) if (p.test(path)) return p.pattern;
    return undefined;
  }

  private _workload(workload: ProcessInfo): WorkloadRoutes {
    const patterns: RoutePattern[] = [];
    const byPort: CompiledRule[] = [];
    for (const r of this._rules) {
      if (!r.workload(workload)) continue;
      if (r.ports) byPort.push(r);
      else patterns.push(...r.patterns);
    }
    return { patterns, byPort, routes: new Set(), cache: new Map() };
  }
}

/** The route rules in force, swapped whole by a live reload (counters carry over). */
export class LiveRoutes implements RoutesFor {
  constructor(private _current: Routes) {}

  get current(): Routes {
    return this._current;
  }

  swap(next: Routes): void {
    this._current = next;
  }

  routeFor(workload: ProcessInfo, key: object, path: string, connection?: ConnectionInfo): string | undefined {
    return this._current.routeFor(workload, key, path, connection);
  }
}
