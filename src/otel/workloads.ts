/**
 * One OTLP Resource per observed workload. Records are grouped under the
 * process that sent or received the request, with that process's own
 * service.name, not under headertap's.
 *
 * The mapper looks each record's workload up here (WorkloadResources.get) and
 * the record carries the Resource; the encoder writes a resource once and
 * groups a batch by it, spans go under it. Resources are held in an LRU: an
 * evicted one is dropped, and records that already carry it are exported
 * under it as usual.
 */
import { hostname } from 'node:os';
import type { Attributes } from '@opentelemetry/api';
import { defaultResource, resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import { LRUCache } from 'lru-cache';
import type { ProcessInfo } from '../workload';
import type { RulesFor } from './scoped-rules';
import { redactArgs } from './redact';

/** Workload resources kept at once; more evicts the least recently used. */
export const DEFAULT_MAX_WORKLOADS = 1024;

/** Incubating semantic conventions, copied as the package recommends. */
export const ATTR_PROCESS_PID = 'process.pid';
export const ATTR_PROCESS_EXECUTABLE_NAME = 'process.executable.name';
export const ATTR_PROCESS_COMMAND_LINE = 'process.command_line';
export const ATTR_CONTAINER_ID = 'container.id';
export const ATTR_HOST_NAME = 'host.name';
export const ATTR_K8S_POD_UID = 'k8s.pod.uid';

export interface WorkloadOptions {
  /** Workload resources kept at once (default DEFAULT_MAX_WORKLOADS). */
  max?: number;
  /** Add process.command_line (opt-in: command lines can hold secrets). */
  commandLine?: boolean;
  /** Hides secrets in the command line (required with commandLine): the workload's rules, in force now. */
  rules?: RulesFor;
  /** host.name (default: os.hostname()). */
  hostName?: string;
  /**
   * Whether a key can be a record attribute: a resource attribute of the
   * process's own (OTEL_RESOURCE_ATTRIBUTES) that can, is left off its records
   * (an attribute is never sent on both). Default: none can.
   */
  isRecordKey?: (key: string) => boolean;
}

export interface WorkloadCounters {
  /** Workload resources created, evictions included. */
  created: number;
  /** Resources dropped to stay within max. */
  evicted: number;
}

/**
 * headertap's own resource (its self-telemetry, and records with no
 * workload): the SDK's defaults, then `attributes` (its own
 * OTEL_RESOURCE_ATTRIBUTES, e.g. the DaemonSet's k8s.node.name, and the
 * detected host.name), then service.name and service.version, which win as
 * code-provided attributes win over the environment in every SDK.
 */
export function agentResource(serviceName: string, version: string, attributes: Attributes = {}): Resource {
  return defaultResource().merge(
    resourceFromAttributes({
      [ATTR_HOST_NAME]: hostname(),
      ...attributes,
      [ATTR_SERVICE_NAME]: serviceName,
      [ATTR_SERVICE_VERSION]: version,
    }),
  );
}

/**
 * The resource attributes of one workload: the process's own
 * OTEL_RESOURCE_ATTRIBUTES, then what headertap knows (which wins):
 * service.name from OTEL_SERVICE_NAME/service.name, else the executable name.
 */
export function workloadAttributes(info: ProcessInfo, opts: WorkloadOptions = {}): Attributes {
  const attrs: Attributes = { ...info.resourceAttributes };
  attrs[ATTR_SERVICE_NAME] = info.serviceName ?? info.executableName;
  attrs[ATTR_PROCESS_PID] = info.pid;
  attrs[ATTR_PROCESS_EXECUTABLE_NAME] = info.executableName;
  if (opts.commandLine && info.commandArgs && opts.rules) {
    attrs[ATTR_PROCESS_COMMAND_LINE] = redactArgs(info.commandArgs, opts.rules.rulesFor(info)).join(' ');
  }
  if (info.containerId) attrs[ATTR_CONTAINER_ID] = info.containerId;
  // With container.id, what the collector's k8s_attributes associates a pod by (otel-config/kubernetes/).
  if (info.podUid) attrs[ATTR_K8S_POD_UID] = info.podUid;
  attrs[ATTR_HOST_NAME] = opts.hostName ?? hostname();
  return attrs;
}

/** A workload's resource, and what its records need to know about it. */
export interface Workload {
  resource: Resource;
  /** Attributes on the resource: a record's attribute budget counts them. */
  attributeCount: number;
  /** Record attributes the resource already carries (its records leave them out); usually none. */
  shadowed?: ReadonlySet<string>;
}

/**
 * The resource of each workload, made on first use, LRU-bounded. Processes
 * with the same resource attributes share one Resource object.
 */
export class WorkloadResources {
  readonly counters: WorkloadCounters = { created: 0, evicted: 0 };
  /**
   * ProcessInfo objects are cached per process: their key is computed once,
   * again only when the rules that redact the command line change (a reload).
   */
  private readonly _keys = new WeakMap<ProcessInfo, { key: string; attrs: Attributes; rules?: object }>();
  private readonly _items: LRUCache<string, Workload>;
  private readonly _opts: WorkloadOptions;

  constructor(opts: WorkloadOptions = {}) {
    this._opts = { ...opts, hostName: opts.hostName ?? hostname() };
    this._items = new LRUCache<string, Workload>({
      max: opts.max ?? DEFAULT_MAX_WORKLOADS,
      dispose: (_item, _key, reason) => {
        if (reason === 'evict') this.counters.evicted++;
      },
    });
  }

  /** Workloads currently held. */
  get size(): number {
    return this._items.size;
  }

  get(info: ProcessInfo): Workload {
    let id = this._keys.get(info);
    const rules = this._opts.commandLine ? this._opts.rules?.rulesFor(info) : undefined;
    if (!id || id.rules !== rules) {
      const attrs = workloadAttributes(info, this._opts);
      id = { key: JSON.stringify(attrs), attrs, ...(rules ? { rules } : {}) };
      this._keys.set(info, id);
    }
    let item = this._items.get(id.key);
    if (!item) {
      item = this._make(info, id.attrs);
      this._items.set(id.key, item);
      this.counters.created++;
    }
    return item;
  }

  private _make(info: ProcessInfo, attrs: Attributes): Workload {
    const isRecordKey = this._opts.isRecordKey;
    const own = isRecordKey ? Object.keys(info.resourceAttributes ?? {}).filter((k) => k in attrs && isRecordKey(k)) : [];
    return { resource: resourceFromAttributes(attrs), attributeCount: Object.keys(attrs).length, ...(own.length ? { shadowed: new Set(own) } : {}) };
  }
}
