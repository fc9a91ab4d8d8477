import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { moduleDepends, naturalCompare } from '../../test/kernels/kernels';

describe('kernel matrix helpers (test/kernels)', () => {
  it('orders Debian kernel packages by their numbers, not as text', () => {
    const names = [
      'linux-image-6.1.0-9-amd64-unsigned',
      'linux-image-6.1.0-57-amd64-unsigned',
      'linux-image-6.1.0-50-amd64-unsigned',
    ];
    assert.equal([...names].sort(naturalCompare).at(-1), 'linux-image-6.1.0-57-amd64-unsigned');
    assert.ok(naturalCompare('linux-image-6.12.118+deb12-amd64-unsigned', 'linux-image-6.12.99+deb12-amd64-unsigned') > 0);
    assert.equal(naturalCompare('6.12.1', '6.12.1'), 0);
  });

  it("reads a module's depends= from its .modinfo strings, '-' as '_'", () => {
    const ko = Buffer.from('\x7fELF...\0license=GPL\0depends=9pnet,fscache,net-fs\0vermagic=6.1.0 SMP\0');
    assert.deepEqual(moduleDepends(ko), ['9pnet', 'fscache', 'net_fs']);
    assert.deepEqual(moduleDepends(Buffer.from('\0license=GPL\0depends=\0')), []);
    assert.deepEqual(moduleDepends(Buffer.from('\0license=GPL\0')), []);
  });
});
