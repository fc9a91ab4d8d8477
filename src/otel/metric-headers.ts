/**
 * --metric-headers: request headers whose values become request-metric
 * attributes (http.request.header.<name>), after the redaction and hashing
 * rules of the workload.
 */
import type { HeaderList } from '../http';
import { HeaderAction, type HeaderRules } from './headers';
import { redactHeaderValue } from './redact';

/** --metric-cardinality-limit: series per metric and workload, the overflow series included (the SDK's default). */
export const DEFAULT_CARDINALITY_LIMIT = 2000;

/** Header names --metric-headers takes at most. */
export const MAX_METRIC_HEADERS = 8;

/**
 * The --metric-headers in force: names (lower case) whose request values
 * become metric attributes; swapped whole by a live reload.
 */
export class MetricHeaders {
  constructor(public names: readonly string[] = []) {}
}

/** Hashed values remembered per set of rules (an HMAC per record would cost more than the rest of the metric). */
const hashedValues = new WeakMap<HeaderRules, Map<string, string>>();
const MAX_HASHED = 4096;

/**
 * The values of `names` in a request's headers as metrics show them: the
 * first value (repeats joined with ','), after the workload's redaction and
 * hashing rules (a redacted header is `[REDACTED]`, a hashed one
 * `sha256:…`, never its value); undefined when the header is absent.
 * Capture and exclude rules do not apply: asking for a header as a metric
 * dimension is what counts.
 */
export function metricHeaderValues(headers: HeaderList, names: readonly string[], rules: HeaderRules): (string | undefined)[] {
  const out: (string | undefined)[] = [];
  for (const name of names) {
    let value: string | undefined;
    for (let i = 0; i < headers.length; i += 2) if (headers[i] === name) value = value === undefined ? headers[i + 1] : `${value},${headers[i + 1]}`;
    if (value === undefined) {
      out.push(undefined);
      continue;
    }
    const action = rules.secret(name);
    if (action === HeaderAction.Keep) out.push(redactHeaderValue(name, value, rules));
    else if (action === HeaderAction.Hash) {
      let cache = hashedValues.get(rules);
      if (!cache) hashedValues.set(rules, (cache = new Map()));
      let h = cache.get(value);
      if (h === undefined) {
        h = rules.apply(action, value);
        if (cache.size >= MAX_HASHED) cache.clear();
        cache.set(value, h);
      }
      out.push(h);
    } else out.push(rules.apply(action, value));
  }
  return out;
}

