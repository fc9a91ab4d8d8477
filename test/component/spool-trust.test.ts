/**
 * The spool trusts nothing another user could have written (OpenSSH
 * StrictModes): a --spool-dir, a directory above it, or a segment in it that
 * is owned by someone else or writable by others is refused at start with
 * one UsageError; a segment that fails the checks later is skipped, counted
 * and never sent. Ownership cases need root (chown), others do not.
 */
import assert from 'node:assert/strict';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, renameSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import * as path from 'node:path';
import { after, describe, it, type TestContext } from 'node:test';
import { resourceFromAttributes } from '@opentelemetry/resources';
import { UsageError } from '../../src/common/errors';
import { silentLog } from '../helpers/log';
import { exchangeRecord } from '../helpers/records';
import { LogPipeline, resolveExportTarget, Spool } from '../../src/otel';
import { OtlpLogsEncoder } from '../../src/otel/otlp-logs';
import { encodeSegment } from '../../src/otel/spool';
import { startOtlpSink } from '../helpers/otlp-sink';

const NOBODY = 65534;

function spoolDir(): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'ht-spool-trust-'));
  chmodSync(dir, 0o700);
  return dir;
}

const encoder = new OtlpLogsEncoder();
function segmentBytes(body: string, n = 1): Buffer {
  const resource = resourceFromAttributes({ 'service.name': 'spool-trust' });
  const rec = (i: number) => ({ ...exchangeRecord(i), body: `${body} ${i}` });
  return encodeSegment(Array.from({ length: n }, (_, i) => encoder.encodeRecord(rec(i), resource, { name: 'headertap' })));
}

function segmentName(seq: number, records: number): string {
  return `seg-${String(seq).padStart(16, '0')}-${records}.otlp`;
}

/** A segment file as another writer would leave it, with the given mode. */
function plant(dir: string, seq: number, body: string, mode: number): string {
  const file = path.join(dir, segmentName(seq, 1));
  writeFileSync(file, segmentBytes(body));
  chmodSync(file, mode);
  return file;
}

function refused(fn: () => unknown, re: RegExp): void {
  assert.throws(fn, (e: unknown) => e instanceof UsageError && re.test(e.message) && !e.message.includes('\n'), re.source);
}

function needRoot(t: TestContext): boolean {
  if (process.geteuid?.() === 0) return true;
  const reason = 'needs root to give files to another user (chown)';
  process.stderr.write(`# SKIP ${t.name}: ${reason}\n`);
  t.skip(reason);
  return false;
}

const escape = (s: string) => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

describe('spool: refused at start when others could write to it', () => {
  it('a directory writable by group or others, naming the mode and the fix', () => {
    for (const mode of [0o777, 0o770, 0o702]) {
      const dir = spoolDir();
      chmodSync(dir, mode);
      const shown = mode.toString(8).padStart(4, '0');
      refused(
        () => new Spool(dir, 1 << 20),
        new RegExp(`^--spool-dir ${escape(dir)}: ${escape(dir)} is writable by group or others \\(mode ${shown}\\); another user could plant records in it: chmod go-w ${escape(dir)}, or choose another --spool-dir$`),
      );
    }
  });

  it('a directory above it writable by others without the sticky bit; with it (as /tmp) it is fine', () => {
    const parent = spoolDir();
    const dir = path.join(parent, 'spool');
    mkdirSync(dir, 0o700);
    chmodSync(parent, 0o777);
    refused(() => new Spool(dir, 1 << 20), new RegExp(`its parent ${escape(parent)} is writable by group or others \\(mode 0777\\); another user could swap the spool`));
    chmodSync(parent, 0o1777);
    assert.doesNotThrow(() => new Spool(dir, 1 << 20));
  });

  it('a segment writable by others, or a symbolic link in a segment name', () => {
    const dir = spoolDir();
    const file = plant(dir, 1, 'planted', 0o666);
    refused(() => new Spool(dir, 1 << 20), new RegExp(`spool file ${escape(file)} is writable by group or others \\(mode 0666\\); headertap sends only files it wrote itself: remove it unless you know where it came from`));
    chmodSync(file, 0o600);
    assert.equal(new Spool(dir, 1 << 20).stats.records, 1, 'the same file with mode 0600 is accepted');

    const other = spoolDir();
    const target = path.join(other, 'elsewhere');
    writeFileSync(target, segmentBytes('linked'), { mode: 0o600 });
    symlinkSync(target, path.join(other, segmentName(1, 1)));
    refused(() => new Spool(other, 1 << 20), /is not a regular file/);
  });

  it('a directory or a segment owned by another user', (t) => {
    if (!needRoot(t)) return;
    const dir = spoolDir();
    chownSync(dir, NOBODY, NOBODY);
    refused(() => new Spool(dir, 1 << 20), new RegExp(`${escape(dir)} is owned by uid ${NOBODY}, not by this user \\(uid 0\\); another user could plant records in it: chown 0 ${escape(dir)}`));
    const own = spoolDir();
    const file = plant(own, 1, 'planted', 0o600);
    chownSync(file, NOBODY, NOBODY);
    refused(() => new Spool(own, 1 << 20), new RegExp(`spool file ${escape(file)} is owned by uid ${NOBODY}`));
  });

  it('a directory it creates is 0700 and accepted', () => {
    const dir = path.join(spoolDir(), 'new');
    const spool = new Spool(dir, 1 << 20);
    assert.equal(statSync(dir).mode & 0o777, 0o700);
    assert.ok(spool.empty);
  });
});

describe('spool: a segment that fails the checks later is skipped, counted, never sent', () => {
  it('peek() skips a segment made writable by others, swapped for a symlink or (root) given to another user', (t) => {
    const dir = spoolDir();
    const spool = new Spool(dir, 1 << 20);
    const bytes = segmentBytes('ours');
    for (let i = 0; i < 4; i++) spool.append([{ bytes: bytes, resource: resourceFromAttributes({}), scope: { name: 'headertap' } }]);
    const files = [1, 2, 3].map((seq) => path.join(dir, segmentName(seq, 1)));
    chmodSync(files[0], 0o666);
    renameSync(files[1], `${files[1]}.moved`);
    symlinkSync(`${files[1]}.moved`, files[1]);
    if (process.geteuid?.() === 0) chownSync(files[2], NOBODY, NOBODY);
    else t.diagnostic('not root: the ownership case is not covered here');
    const expectRejected = process.geteuid?.() === 0 ? 3 : 2;
    const seg = spool.peek()!;
    assert.equal(seg.id, expectRejected + 1, 'the first segment that passes');
    assert.equal(spool.rejected, expectRejected);
    assert.equal(spool.stats.rejected, expectRejected);
    assert.equal(spool.corrupt, 0, 'not counted as unreadable records: their record counts are not ours to trust');
    assert.equal(spool.stats.records, 4 - expectRejected);
    for (const f of files) assert.ok(existsSync(f), 'left in place for the operator');
  });

  it('a pipeline sending the spool never sends a planted segment', async () => {
    const dir = spoolDir();
    // Two segments: a genuine one, and one another writer replaces after the start.
    writeFileSync(path.join(dir, segmentName(1, 1)), segmentBytes('genuine'), { mode: 0o600 });
    writeFileSync(path.join(dir, segmentName(2, 1)), segmentBytes('genuine-too'), { mode: 0o600 });
    const started = new Spool(dir, 1 << 20);
    writeFileSync(path.join(dir, segmentName(2, 1)), segmentBytes('PLANTED'));
    chmodSync(path.join(dir, segmentName(2, 1)), 0o666);
    const sink = await startOtlpSink('grpc');
    after(() => sink.stop());
    const p = new LogPipeline({
      target: resolveExportTarget({ endpoint: sink.endpoint, protocol: 'grpc' }, {}),
      serviceName: 'spool-trust',
      version: '1',
      log: silentLog,
      delivery: { spool: started },
    });
    await sink.waitFor((rs) => rs.some((r) => r.body === 'genuine 0'), 15_000, 'the genuine segment');
    await p.shutdown(5000);
    assert.deepEqual(sink.records().map((r) => r.body), ['genuine 0']);
    assert.equal(started.rejected, 1);
  });
});
