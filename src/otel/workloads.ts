/**
 * One OTLP Resource per observed workload. Records are grouped under the
 * process that sent or received the request, with that process's own
 * service.name, not under headertap's.
 *
 * Each workload gets a LoggerProvider of its own whose resource describes it;
 * every provider shares the pipeline's processors (the one
 * BatchLogRecordProcessor and its exporter). The OTLP transformer groups a
 * batch by resource, so one export carries one resource_logs per workload.
 * Providers are held in an LRU: an evicted one is simply dropped, never shut
 * down (that would shut down the shared processors); records it already
 * emitted keep a reference to their resource and are exported as usual.
 */
import { hostname } from 'node:os';
import type { Attributes } from '@opentelemetry/api';
import type { Logger } from '@opentelemetry/api-logs';
import { defaultResource, resourceFromAttributes, type Resource } from '@opentelemetry/resources';
import { LoggerProvider, type LogRecordLimits, type LogRecordProcessor } from '@opentelemetry/sdk-logs';
import { ATTR_SERVICE_NAME, ATTR_SERVICE_VERSION } from '@opentelemetry/semantic-conventions';
import { LRUCache } from 'lru-cache';
import type { ProcessInfo } from '../workload';
import { ATTR_CONTAINER_ID, ATTR_PROCESS_EXECUTABLE_NAME, ATTR_PROCESS_PID } from './attributes';
import type { RulesFor } from './scoped-rules';
import { redactArgs } from './redact';

/** Workload resources kept at once; more evicts the least recently used. */
export const DEFAULT_MAX_WORKLOADS = 1024;

/** Incubating semantic conventions, copied as the package recommends. */
export const ATTR_PROCESS_COMMAND_LINE = 'process.command_line';
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

interface Shared {
  processors: LogRecordProcessor[];
  logRecordLimits: LogRecordLimits;
  /** Instrumentation scope version (headertap's). */
  version: string;
}

/**
 * One T (a Logger, a Tracer) per workload resource, made on first use from
 * the resource, LRU-bounded. Evicted ones are dropped, never shut down.
 */
export class PerWorkload<T extends object> {
  readonly counters: WorkloadCounters = { created: 0, evicted: 0 };
  /**
   * ProcessInfo objects are cached per process: their key is computed once,
   * again only when the rules that redact the command line change (a reload).
   */
  private readonly _keys = new WeakMap<ProcessInfo, { key: string; attrs: Attributes; rules?: object }>();
  private readonly _items: LRUCache<string, T>;
  private readonly _opts: WorkloadOptions;

  constructor(
    private readonly _make: (resource: Resource) => T,
    opts: WorkloadOptions = {},
  ) {
    this._opts = { ...opts, hostName: opts.hostName ?? hostname() };
    this._items = new LRUCache<string, T>({
      max: opts.max ?? DEFAULT_MAX_WORKLOADS,
      dispose: (_item, _key, reason) => {
        if (reason === 'evict') this.counters.evicted++;
      },
    });
  }

  /** Items currently held. */
  get size(): number {
    return this._items.size;
  }

  get(info: ProcessInfo): T {
    let id = this._keys.get(info);
    const rules = this._opts.commandLine ? this._opts.rules?.rulesFor(info) : undefined;
    if (!id || id.rules !== rules) {
      const attrs = workloadAttributes(info, this._opts);
      id = { key: JSON.stringify(attrs), attrs, ...(rules ? { rules } : {}) };
      this._keys.set(info, id);
    }
    let item = this._items.get(id.key);
    if (!item) {
      item = this._make(resourceFromAttributes(id.attrs));
      this._items.set(id.key, item);
      this.counters.created++;
    }
    return item;
  }
}

/** A Logger per workload resource, sharing the pipeline's processors. */
export class WorkloadLoggers extends PerWorkload<Logger> {
  constructor(shared: Shared, opts: WorkloadOptions = {}) {
    super(
      (resource) =>
        new LoggerProvider({ resource, processors: shared.processors, logRecordLimits: shared.logRecordLimits }).getLogger(
          'headertap',
          shared.version,
        ),
      opts,
    );
  }

  logger(info: ProcessInfo): Logger {
    return this.get(info);
  }
}
