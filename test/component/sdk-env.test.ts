/**
 * OTEL_SDK_DISABLED and OTEL_LOG_LEVEL as the SDK environment specification
 * defines them, seen through the real command: `headertap run --replay` of a
 * real capture exporting to a real OTLP receiver (no root, no eBPF), and
 * `run` without --replay as an unprivileged user (so a wrong order of checks
 * shows as the privilege error, and nothing is ever loaded).
 */
import assert from 'node:assert/strict';
import { spawn, spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { after, describe, it } from 'node:test';
import { PACKAGE_ROOT } from '../../src/common/paths';
import { readSdkEnv } from '../../src/cli/sdk-env';
import { HEADERTAP, run } from '../helpers/integration';
import { startOtlpSink } from '../helpers/otlp-sink';

const FIXTURE = path.join(PACKAGE_ROOT, 'test', 'fixtures', 'curl-nginx.htrec');
/**
 * A gRPC endpoint with a path: headertap exports as usual, and the SDK's
 * gRPC exporter warns through diag (otlp-grpc-exporter-base). headertap
 * checks the other OTEL_EXPORTER_* values itself (exit 2), so this is the
 * SDK warning a user can still meet.
 */
const PATH = '/ignored/path';
const SDK_WARNING = /URL path should not be set when using grpc, the path part of the URL will be ignored\./;

async function replay(env: NodeJS.ProcessEnv, extra: string[] = [], endpointPath = '') {
  const sink = await startOtlpSink('grpc');
  after(() => sink.stop());
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('OTEL_')));
  const r = await run(process.execPath, [HEADERTAP, 'run', '--replay', FIXTURE, '--endpoint', sink.endpoint + endpointPath, '--no-self-metrics', ...extra], { env: { ...clean, ...env } });
  return { ...r, records: sink.records().length };
}

describe('OTEL_SEMCONV_STABILITY_OPT_IN', () => {
  it('rpc/dup anywhere in the comma-separated list (blanks, any case) asks for the deprecated rpc.* names too', () => {
    for (const v of ['rpc/dup', 'http, RPC/DUP ', 'database/dup,rpc,rpc/dup']) assert.equal(readSdkEnv({ OTEL_SEMCONV_STABILITY_OPT_IN: v }).rpcDup, true, v);
    for (const v of [undefined, '', 'rpc', 'http/dup', 'rpc/dupe', 'rpc dup']) {
      const env = readSdkEnv(v === undefined ? {} : { OTEL_SEMCONV_STABILITY_OPT_IN: v });
      assert.equal(env.rpcDup, false, String(v));
      assert.deepEqual(env.warnings, [], 'entries for other instrumentations are no mistake');
    }
  });
});

describe('OTEL_SDK_DISABLED', () => {
  it('parses as the specification says: true in any case; other values false, with a warning unless empty or false', () => {
    assert.equal(readSdkEnv({ OTEL_SDK_DISABLED: ' TRUE ' }).disabled, true);
    for (const v of ['false', 'False', '', '  ']) assert.deepEqual(readSdkEnv({ OTEL_SDK_DISABLED: v }), { disabled: false, rpcDup: false, warnings: [] }, v);
    const yes = readSdkEnv({ OTEL_SDK_DISABLED: 'yes' });
    assert.equal(yes.disabled, false);
    assert.match(yes.warnings.join(), /OTEL_SDK_DISABLED='yes' is not true or false: taken as false/);
  });

  it('true: a replay exports and prints nothing, says why in one line, exits 0', async () => {
    const r = await replay({ OTEL_SDK_DISABLED: 'True' }, ['--console']);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.records, 0);
    assert.equal(r.stdout, '', 'no --console output either');
    assert.match(r.stderr, /^headertap: OTEL_SDK_DISABLED=true: OpenTelemetry is disabled .* captures nothing \(unset OTEL_SDK_DISABLED to capture\)\n$/);
  });

  it('true: run captures nothing and needs no privileges; it waits for SIGTERM and exits 0', async (t) => {
    const asUser = process.getuid?.() === 0 ? { uid: 65534, gid: 65534 } : {};
    if (process.getuid?.() === 0 && spawnSync(process.execPath, [HEADERTAP, '--version'], { ...asUser }).status !== 0) {
      const reason = 'bin/headertap is not reachable for user nobody here';
      process.stderr.write(`# SKIP ${t.name}: ${reason}\n`);
      t.skip(reason);
      return;
    }
    const child = spawn(process.execPath, [HEADERTAP, 'run'], { env: { ...process.env, OTEL_SDK_DISABLED: 'true' }, stdio: ['ignore', 'pipe', 'pipe'], ...asUser });
    let stderr = '';
    const said = new Promise<void>((resolve) =>
      child.stderr.on('data', (c: Buffer) => {
        stderr += c.toString();
        if (stderr.includes('\n')) resolve();
      }),
    );
    const exited = new Promise<number | null>((resolve) => child.once('close', (code) => resolve(code)));
    await Promise.race([said, exited]);
    child.kill('SIGTERM');
    assert.equal(await exited, 0, stderr);
    assert.match(stderr, /OTEL_SDK_DISABLED=true: .* captures nothing; waiting for SIGINT or SIGTERM/);
    assert.doesNotMatch(stderr, /headertap ready|needs root/);
  });

  it('a value that is not true: the replay exports as usual', async () => {
    const r = await replay({ OTEL_SDK_DISABLED: 'yes' });
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.records, 14);
    assert.match(r.stderr, /warning: OTEL_SDK_DISABLED='yes' is not true or false/);
  });
});

describe('OTEL_LOG_LEVEL', () => {
  it('unset: the SDK messages only with --verbose (headertap reports failures itself)', async () => {
    assert.doesNotMatch((await replay({}, [], PATH)).stderr, SDK_WARNING);
    assert.match((await replay({}, ['--verbose'], PATH)).stderr, new RegExp(`headertap: debug: ${SDK_WARNING.source}`));
  });

  it('warn: the SDK warning is printed, verbose or not; error: not; none: not even with --verbose', async () => {
    const warn = await replay({ OTEL_LOG_LEVEL: 'warn' }, [], PATH);
    assert.equal(warn.records, 14);
    assert.match(warn.stderr, new RegExp(`headertap: opentelemetry warn: ${SDK_WARNING.source}`));
    assert.doesNotMatch((await replay({ OTEL_LOG_LEVEL: 'ERROR' }, [], PATH)).stderr, SDK_WARNING);
    assert.doesNotMatch((await replay({ OTEL_LOG_LEVEL: 'none' }, ['--verbose'], PATH)).stderr, SDK_WARNING);
  });

  it('an unknown level is ignored with a warning, as the specification asks', async () => {
    const r = await replay({ OTEL_LOG_LEVEL: 'loud' }, [], PATH);
    assert.equal(r.code, 0);
    assert.match(r.stderr, /warning: OTEL_LOG_LEVEL='loud' is not a log level: ignored; use one of none, error, warn, info, debug, verbose, all/);
    assert.doesNotMatch(r.stderr, SDK_WARNING);
  });
});
