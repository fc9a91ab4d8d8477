/**
 * Reading otel-config/ for its tests: YAML documents, the collector's
 * `${env:NAME:-default}` values, Grafana's `$$` escapes, Loki's attribute
 * names, the Kubernetes manifests.
 */
import { readdirSync, readFileSync } from 'node:fs';
import * as path from 'node:path';
import { parseAllDocuments } from 'yaml';
import { PACKAGE_ROOT } from '../../src/common/paths';

export const OTEL_CONFIG = path.join(PACKAGE_ROOT, 'otel-config');

/** Every file under dir whose name matches, relative to dir, sorted. */
export function filesUnder(dir: string, match: RegExp): string[] {
  const out: string[] = [];
  const walk = (rel: string) => {
    for (const e of readdirSync(path.join(dir, rel), { withFileTypes: true })) {
      const r = path.join(rel, e.name);
      if (e.isDirectory()) {
        if (e.name !== 'node_modules') walk(r);
      } else if (match.test(e.name)) out.push(r);
    }
  };
  walk('');
  return out.sort();
}

/** All documents of a YAML file; throws with the file name and the first error. */
export function yamlDocs(file: string): unknown[] {
  const docs = parseAllDocuments(readFileSync(file, 'utf8'));
  const list = Array.isArray(docs) ? docs : [docs];
  return list.map((d) => {
    if (d.errors.length) throw new Error(`${file}: ${d.errors[0].message}`);
    return d.toJS() as unknown;
  });
}

export type Obj = Record<string, unknown>;

export function yamlDoc(file: string): Obj {
  const [doc] = yamlDocs(file);
  return doc as Obj;
}

/** The default of a collector `${env:NAME:-default}` value, or the value itself. */
export function envDefault(value: string): string {
  return value.replace(/\$\{env:[A-Za-z_][A-Za-z0-9_]*:-([^}]*)\}/g, '$1');
}

/** What Grafana provisioning makes of a string: `$$` is a literal `$`. */
export function grafanaUnescape(value: string): string {
  return value.replace(/\$\$/g, '$');
}

/** The name Loki's OTLP endpoint gives an attribute: anything but [A-Za-z0-9_] becomes _. */
export function lokiName(attribute: string): string {
  return attribute.replace(/[^A-Za-z0-9_]/g, '_');
}

/** Every value under `key` anywhere in a JSON-like tree, with its path. */
export function findKey(node: unknown, key: string, at = '$'): { path: string; value: unknown }[] {
  const out: { path: string; value: unknown }[] = [];
  if (Array.isArray(node)) node.forEach((v, i) => out.push(...findKey(v, key, `${at}[${i}]`)));
  else if (node && typeof node === 'object') {
    for (const [k, v] of Object.entries(node)) {
      if (k === key) out.push({ path: `${at}.${k}`, value: v });
      out.push(...findKey(v, key, `${at}.${k}`));
    }
  }
  return out;
}
