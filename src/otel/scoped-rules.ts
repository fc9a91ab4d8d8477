/**
 * Header rules per workload, and the one question the mapper asks: which
 * rules for this exchange (RulesFor). A config can scope rules to workloads
 * by service.name, executable name, cgroup or port; a live reload swaps the
 * whole compiled set in one assignment (LiveRules).
 */
import picomatch from 'picomatch';
import type { ConnectionInfo } from '../http';
import type { ProcessInfo } from '../workload';
import { HeaderRules, type HeaderRulesConfig } from './headers';

/**
 * Where the header rules of one record come from. The mapper asks once per
 * exchange and uses the answer for all of the record (headers, query,
 * user agent, gRPC metadata), so a record is mapped entirely under one set
 * of rules, whatever changes between two records.
 */
export interface RulesFor {
  /** The rules for an exchange of this workload on this connection (without one: the workload's, port rules aside). */
  rulesFor(workload: ProcessInfo, connection?: ConnectionInfo): HeaderRules;
}

/** Which workloads a scoped rule is for: AND across kinds, OR within one; a kind left out matches every workload. */
export interface WorkloadMatch {
  /** Globs of service.name as the record's resource shows it (OTEL_SERVICE_NAME, else the executable name). Case-sensitive. */
  serviceNames?: readonly string[];
  /** Globs of process.executable.name. Case-sensitive. */
  executables?: readonly string[];
  /** cgroup v2 paths as /proc/PID/cgroup shows them after `0::`: processes in one of them or below it. */
  cgroups?: readonly string[];
  /** Either end of the connection. */
  ports?: readonly number[];
}

/** The header lists a scoped rule may set. */
export const SCOPED_LISTS = ['capture', 'exclude', 'captureRequest', 'captureResponse', 'excludeRequest', 'excludeResponse', 'redact', 'hash'] as const;
export type ScopedList = (typeof SCOPED_LISTS)[number];

/** Lists a scope adds to (it can hide more, never less); the others it replaces. */
const ADDED: ReadonlySet<ScopedList> = new Set(['redact', 'hash']);

/**
 * Header rules for the workloads `match` selects. For each list it sets, a
 * capture or exclude list replaces the global one; a redact or hash list is
 * added to it, so a scope never shows a value the global rules hide.
 */
export type ScopedRule = { match: WorkloadMatch } & { [K in ScopedList]?: readonly string[] };

/** Scoped rules at most: a workload's matching rules are a bit set in one number. */
export const MAX_SCOPED_RULES = 32;

export interface CaptureRulesConfig {
  global: HeaderRulesConfig;
  /** Applied in order to the workloads they match: a later rule's replacing list wins. */
  scoped?: readonly ScopedRule[];
}

interface CompiledScope {
  rule: ScopedRule;
  bit: number;
  workload: (w: ProcessInfo) => boolean;
  ports?: ReadonlySet<number>;
}

/** A workload's scopes, worked out on its first record. */
interface WorkloadScopes {
  /** Bits of the rules that match it whatever the connection. */
  fixed: number;
  /** Rules that match it on some ports only. */
  byPort: CompiledScope[];
  /** Its rules, when no rule depends on the port. */
  rules?: HeaderRules;
}

function nameMatcher(globs: readonly string[] | undefined): ((name: string | undefined) => boolean) | undefined {
  if (!globs?.length) return undefined;
  const res = globs.map((g) => picomatch.makeRe(g, { dot: true }));
  return (name) => name !== undefined && res.some((re) => re.test(name));
}

function cgroupMatcher(paths: readonly string[] | undefined): ((path: string | undefined) => boolean) | undefined {
  if (!paths?.length) return undefined;
  const prefixes = paths.map((p) => (p === '/' ? '/' : `${p.replace(/\/+$/, '')}/`));
  return (path) => path !== undefined && prefixes.some((pre) => pre === '/' || path === pre.slice(0, -1) || path.startsWith(pre));
}

/** Whether a workload is one `match` names, ports aside (they depend on the connection). */
export function workloadMatcher(match: WorkloadMatch): (w: ProcessInfo) => boolean {
  const service = nameMatcher(match.serviceNames);
  const executable = nameMatcher(match.executables);
  const cgroup = cgroupMatcher(match.cgroups);
  return (w) =>
    (!service || service(w.serviceName ?? w.executableName)) && (!executable || executable(w.executableName)) && (!cgroup || cgroup(w.cgroupPath));
}

/** Combinations of scopes compiled at most before the cache starts over (each is a HeaderRules). */
const MAX_COMBINATIONS = 1024;

/**
 * The global header rules and the scoped ones, compiled once (a config load
 * or reload). Each workload's set of matching scopes is worked out on its
 * first record and kept with its ProcessInfo (cached per process), so a
 * record costs one WeakMap lookup, plus a port check when some rule is
 * scoped by port. Workloads with the same scopes share one HeaderRules (and
 * its per-name decision caches).
 */
export class CaptureRules implements RulesFor {
  readonly global: HeaderRules;
  private readonly _config: CaptureRulesConfig;
  private readonly _scopes: CompiledScope[];
  private readonly _byWorkload = new WeakMap<ProcessInfo, WorkloadScopes>();
  private readonly _combinations = new Map<number, HeaderRules>();
  /** Every name some rule hides (--record masks them whatever the workload). */
  private readonly _anySecret: HeaderRules[];

  /** Throws Error when the rules cannot be compiled (hash lists without a key, too many scopes). */
  constructor(config: CaptureRulesConfig) {
    this._config = config;
    this.global = new HeaderRules(config.global);
    const scoped = config.scoped ?? [];
    if (scoped.length > MAX_SCOPED_RULES) throw new Error(`at most ${MAX_SCOPED_RULES} scoped rules`);
    this._scopes = scoped.map((rule, i) => ({
      rule,
      bit: 2 ** i,
      workload: workloadMatcher(rule.match),
      ...(rule.match.ports?.length ? { ports: new Set(rule.match.ports) } : {}),
    }));
    // Compiling every scope once checks them all now (a hash list needs the key), not at the first matching record.
    this._anySecret = [this.global, ...this._scopes.map((s) => this._compile(s.bit))];
  }

  rulesFor(workload: ProcessInfo, connection?: ConnectionInfo): HeaderRules {
    if (this._scopes.length === 0) return this.global;
    let w = this._byWorkload.get(workload);
    if (!w) {
      w = this._workloadScopes(workload);
      this._byWorkload.set(workload, w);
    }
    if (w.rules) return w.rules;
    let bits = w.fixed;
    const local = connection?.local?.port;
    const remote = connection?.remote?.port;
    for (const s of w.byPort) {
      if ((local !== undefined && s.ports!.has(local)) || (remote !== undefined && s.ports!.has(remote))) bits += s.bit;
    }
    return this._combination(bits);
  }

  /** Whether any rule, global or scoped, hides this name's values (for output that has no workload: --record). */
  isSecretAnywhere(name: string): boolean {
    return this._anySecret.some((r) => r.isSecret(name));
  }

  private _workloadScopes(workload: ProcessInfo): WorkloadScopes {
    let fixed = 0;
    const byPort: CompiledScope[] = [];
    for (const s of this._scopes) {
      if (!s.workload(workload)) continue;
      if (s.ports) byPort.push(s);
      else fixed += s.bit;
    }
    return byPort.length ? { fixed, byPort } : { fixed, byPort, rules: this._combination(fixed) };
  }

  private _combination(bits: number): HeaderRules {
    if (bits === 0) return this.global;
    let rules = this._combinations.get(bits);
    if (!rules) {
      rules = this._compile(bits);
      if (this._combinations.size >= MAX_COMBINATIONS) this._combinations.clear();
      this._combinations.set(bits, rules);
    }
    return rules;
  }

  /** The global rules with the lists of the scopes in `bits` applied in order. */
  private _compile(bits: number): HeaderRules {
    const merged: Record<string, readonly string[] | Buffer | undefined> = { ...this._config.global };
    for (const s of this._scopes) {
      if (!(bits & s.bit)) continue;
      for (const list of SCOPED_LISTS) {
        const value = s.rule[list];
        if (value === undefined) continue;
        merged[list] = ADDED.has(list) ? [...((merged[list] as readonly string[] | undefined) ?? []), ...value] : value;
      }
    }
    return new HeaderRules(merged as unknown as HeaderRulesConfig);
  }
}

/**
 * The rules in force, swapped whole by a live reload: one assignment, between
 * two records (the mapper asks once per record, see RulesFor).
 */
export class LiveRules implements RulesFor {
  constructor(private _current: CaptureRules) {}

  get current(): CaptureRules {
    return this._current;
  }

  swap(next: CaptureRules): void {
    this._current = next;
  }

  rulesFor(workload: ProcessInfo, connection?: ConnectionInfo): HeaderRules {
    return this._current.rulesFor(workload, connection);
  }

  isSecretAnywhere(name: string): boolean {
    return this._current.isSecretAnywhere(name);
  }
}
