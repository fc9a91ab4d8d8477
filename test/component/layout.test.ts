import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as path from 'node:path';
import { describe, it } from 'node:test';
import { PACKAGE_ROOT } from '../../src/common/paths';
import { CONSTANTS, LAYOUT } from '../../src/source/layout';

/** bpf/layout.c prints headertap.h as the C compiler lays it out. */
const LAYOUT_BIN = path.join(PACKAGE_ROOT, 'bpf', '.output', 'layout');

describe('kernel/user layout', () => {
  it('layout.ts matches headertap.h field for field, constant for constant', () => {
    assert.ok(existsSync(LAYOUT_BIN), `${LAYOUT_BIN} is missing: run npm run build`);
    const c = JSON.parse(execFileSync(LAYOUT_BIN, { encoding: 'utf8' })) as {
      structs: Record<string, { size: number; fields: Record<string, [number, number]> }>;
      constants: Record<string, number>;
    };
    for (const [name, s] of Object.entries(c.structs)) {
      const ts = LAYOUT[name as keyof typeof LAYOUT];
      assert.ok(ts, `struct ${name} is missing from layout.ts`);
      assert.equal(ts.size, s.size, `sizeof(struct ${name})`);
      assert.deepEqual(ts.fields, s.fields, `fields of struct ${name}`);
    }
    assert.deepEqual(CONSTANTS, c.constants);
  });
});
