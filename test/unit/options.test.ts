import assert from 'node:assert/strict';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { UsageError } from '../../src/common/errors';
import { resolveRunOptions, suggest } from '../../src/cli/options';
import { DEFAULT_REDACT_HEADERS } from '../../src/otel';

function configFile(text: string): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'ht-config-'));
  const file = path.join(dir, 'headertap.yaml');
  writeFileSync(file, text);
  return file;
}

function throwsUsage(fn: () => unknown, re: RegExp) {
  assert.throws(fn, (e: unknown) => e instanceof UsageError && re.test(e.message), re.source);
}

describe('resolveRunOptions', () => {
  it('fills defaults from DESIGN.md', () => {
    const o = resolveRunOptions({});
    assert.deepEqual(o.captureHeaders, ['*']);
    assert.deepEqual(o.redactHeaders, DEFAULT_REDACT_HEADERS);
    assert.equal(o.maxHeaderBytes, 16384);
    assert.equal(o.maxAttributes, 119, "fits Loki's 128 structured-metadata entries");
    assert.equal(o.serviceName, undefined, 'decided with the environment: src/cli/identity.ts');
    assert.deepEqual([o.pid, o.comm, o.port], [[], [], []]);
    assert.equal(o.console, false);
    assert.equal(o.emitSpans, false, '--emit-spans is opt-in');
  });

  it('turns on --emit-spans from the flag or the config key emit-spans', () => {
    assert.equal(resolveRunOptions({ emitSpans: true }).emitSpans, true);
    assert.equal(resolveRunOptions({}, configFile('emit-spans: true\n')).emitSpans, true);
    throwsUsage(() => resolveRunOptions({}, configFile('emit-spans: maybe\n')), /key 'emit-spans': expected true or false/);
  });

  it('delivery, lifecycle and telemetry options: defaults, units, config keys, flags winning', () => {
    const d = resolveRunOptions({});
    assert.deepEqual(
      [d.bufferRecords, d.bufferBytes, d.spoolDir, d.spoolMaxBytes, d.shutdownTimeout, d.statsInterval, d.selfMetrics, d.ringbufKb],
      [65536, 64 << 20, undefined, 1 << 30, 20, 60, true, 16384],
    );
    const o = resolveRunOptions({ bufferBytes: '512KiB', spoolMaxBytes: '2G' });
    assert.equal(o.bufferBytes, 512 << 10);
    assert.equal(o.spoolMaxBytes, 2 ** 31);
    const file = configFile('self-metrics: false\nstats-interval: 5\nspool-dir: /var/spool/headertap\nbuffer-records: 1000\n');
    const c = resolveRunOptions({ bufferRecords: '7' }, file);
    assert.deepEqual([c.selfMetrics, c.statsInterval, c.spoolDir, c.bufferRecords], [false, 5, '/var/spool/headertap', 7]);
  });

  it('--max-attributes (config key max-attributes): an attribute count from 32', () => {
    assert.equal(resolveRunOptions({ maxAttributes: '500' }).maxAttributes, 500);
    assert.equal(resolveRunOptions({}, configFile('max-attributes: 64\n')).maxAttributes, 64);
    throwsUsage(() => resolveRunOptions({ maxAttributes: '8' }), /--max-attributes '8' is not a valid attribute count; expected an integer from 32 to 65535/);
  });

  it('request size and export timeout: 2 MiB and the environment by default; units, decimals, config keys', () => {
    const d = resolveRunOptions({});
    assert.equal(d.maxRequestBytes, 2 << 20, 'half what gRPC servers accept by default');
    assert.equal(d.exportTimeout, undefined, 'OTEL_EXPORTER_OTLP_[LOGS_]TIMEOUT, else 10 s, decide');
    const o = resolveRunOptions({ maxRequestBytes: '1MiB', exportTimeout: '2.5' });
    assert.deepEqual([o.maxRequestBytes, o.exportTimeout], [1 << 20, 2.5]);
    const c = resolveRunOptions({}, configFile('max-request-bytes: 3MiB\nexport-timeout: 30\n'));
    assert.deepEqual([c.maxRequestBytes, c.exportTimeout], [3 << 20, 30]);
    throwsUsage(() => resolveRunOptions({ maxRequestBytes: '1k' }), /--max-request-bytes '1k' is not a valid size; expected bytes from 16384 to/);
    throwsUsage(() => resolveRunOptions({ exportTimeout: '0' }), /--export-timeout '0' is not a valid number of seconds; expected 0.1 to 3600, e.g. 10 or 2.5/);
    throwsUsage(() => resolveRunOptions({ exportTimeout: '10s' }), /--export-timeout '10s' is not a valid number of seconds/);
  });

  it('accepts repeated and comma-separated filters', () => {
    const o = resolveRunOptions({ pid: ['1', '2,3'], port: ['80'], comm: ['nginx', 'curl'] });
    assert.deepEqual(o.pid, [1, 2, 3]);
    assert.deepEqual(o.port, [80]);
    assert.deepEqual(o.comm, ['nginx', 'curl']);
  });

  it('captures TLS by default; --no-tls or tls: false in the config turns it off', () => {
    assert.equal(resolveRunOptions({}).tls, true);
    assert.equal(resolveRunOptions({ tls: false }).tls, false);
    assert.equal(resolveRunOptions({}, configFile('tls: false\n')).tls, false);
    assert.throws(() => resolveRunOptions({}, configFile('tls: maybe\n')), /key 'tls': expected true or false/);
    assert.equal(resolveRunOptions({}).tlsHold, true, 'a process opening an unprobed libssl is held by default');
    assert.equal(resolveRunOptions({}, configFile('tls-hold: false\n')).tlsHold, false);
  });

  it('reads the same keys from a YAML config, with flags winning', () => {
    const file = configFile(
      'endpoint: http://c:4317\nport: [80, 8080]\nredact-headers: x-secret-*,authorization\nmax-header-bytes: 4096\nconsole: true\n',
    );
    const o = resolveRunOptions({ port: ['9090'] }, file);
    assert.equal(o.endpoint, 'http://c:4317');
    assert.deepEqual(o.port, [9090]);
    assert.deepEqual(o.redactHeaders, ['x-secret-*', 'authorization']);
    assert.equal(o.maxHeaderBytes, 4096);
    assert.equal(o.console, true);
  });

  it('--redact-headers: plain globs replace the default list, +GLOB adds to it, !GLOB keeps names in clear', () => {
    assert.deepEqual(resolveRunOptions({ redactHeaders: '+x-internal-sig' }).redactHeaders, [...DEFAULT_REDACT_HEADERS, 'x-internal-sig']);
    assert.deepEqual(resolveRunOptions({ redactHeaders: '!x-session-affinity,+x-a' }).redactHeaders, [...DEFAULT_REDACT_HEADERS, 'x-a', '!x-session-affinity']);
    assert.deepEqual(resolveRunOptions({ redactHeaders: 'x-a,+x-b' }).redactHeaders, ['x-a', 'x-b'], 'with a plain glob the defaults are replaced');
    assert.deepEqual(resolveRunOptions({}, configFile('redact-headers: ["+x-c", "!sid"]\n')).redactHeaders, [...DEFAULT_REDACT_HEADERS, 'x-c', '!sid']);
    assert.deepEqual(resolveRunOptions({ redactHeaders: '' }).redactHeaders, [], 'an empty list redacts nothing, as before');
    throwsUsage(() => resolveRunOptions({ redactHeaders: '!!x' }), /^--redact-headers '!!x' has more than one '\+' or '!' prefix; write \+GLOB to add/);
    throwsUsage(() => resolveRunOptions({ redactHeaders: '+' }), /^--redact-headers '\+' needs a glob after '\+', e.g. \+x-internal-\*$/);
    throwsUsage(() => resolveRunOptions({ redactHeaders: '+x y' }), /^--redact-headers 'x y' is not a header-name glob/);
  });

  it('names the flag, the value and a good value on bad input', () => {
    throwsUsage(() => resolveRunOptions({ pid: ['abc'] }), /^--pid 'abc' is not a valid process id; expected an integer from 1 to/);
    throwsUsage(() => resolveRunOptions({ port: ['0'] }), /^--port '0' is not a valid port/);
    throwsUsage(() => resolveRunOptions({ comm: ['a-very-long-process-name'] }), /^--comm 'a-very-long-process-name' is not a process name/);
    throwsUsage(() => resolveRunOptions({ captureHeaders: 'x tenant' }), /^--capture-headers 'x tenant' is not a header-name glob/);
    throwsUsage(() => resolveRunOptions({ maxHeaderBytes: '10' }), /^--max-header-bytes '10' is not a valid byte count/);
    throwsUsage(() => resolveRunOptions({ format: 'xml' }), /^--format 'xml' is not one of: pretty, jsonl/);
    throwsUsage(() => resolveRunOptions({ port: Array.from({ length: 17 }, (_, i) => String(i + 1)) }), /too many --port filters/);
    throwsUsage(() => resolveRunOptions({ record: 'a', replay: 'b' }), /cannot be combined/);
  });

  it('refuses an empty filter value (it would mean no filter), from a flag or a config key; an empty YAML list is no filter', () => {
    throwsUsage(() => resolveRunOptions({ comm: [''] }), /^--comm '' has an empty process name; give one, e\.g\. --comm nginx, or leave --comm out/);
    throwsUsage(() => resolveRunOptions({ port: ['80', ''] }), /^--port '' has an empty port/);
    throwsUsage(() => resolveRunOptions({}, configFile("comm: ''\n")), /key 'comm' '' has an empty process name; give one, e\.g\. --comm nginx, or leave the key out/);
    assert.deepEqual(resolveRunOptions({}, configFile('port: []\n')).port, []);
    assert.deepEqual(resolveRunOptions({ captureHeaders: '' }).captureHeaders, [], 'header globs may be empty: nothing is captured');
  });

  it('names the file and the key for config problems', () => {
    throwsUsage(() => resolveRunOptions({}, '/nonexistent/h.yaml'), /^cannot read --config \/nonexistent\/h.yaml: no such file$/);
    throwsUsage(() => resolveRunOptions({}, configFile('endpont: x\n')), /has an unknown key 'endpont' \(did you mean 'endpoint'\?\)/);
    throwsUsage(() => resolveRunOptions({}, configFile('port: [80\n')), /is not valid YAML at line \d/);
    throwsUsage(() => resolveRunOptions({}, configFile('- a\n- b\n')), /must be a mapping/);
    throwsUsage(() => resolveRunOptions({}, configFile('port: http\n')), /key 'port' 'http' is not a valid port/);
  });
});

describe('suggest', () => {
  it('proposes the closest name within two edits', () => {
    assert.equal(suggest('prot', ['port', 'pid', 'comm']), 'port');
    assert.equal(suggest('zzzzzz', ['port', 'pid']), undefined);
  });
});
