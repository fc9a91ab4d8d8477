import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { decodeFrame, formatAddress } from '../../src/source/decode';
import { FrameReader, frame } from '../../src/source/frames';
import { CONSTANTS, LAYOUT } from '../../src/source/layout';
import type { CloseEvent, DataEvent } from '../../src/source';
import { ConnectionSim, decode, readyFrame } from '../helpers/events';

describe('FrameReader', () => {
  it('splits frames at any chunk boundary and keeps their bytes intact', () => {
    const c = new ConnectionSim();
    const payloads = [readyFrame(), c.dataFrame('egress', 'GET / HTTP/1.1\r\n\r\n'), c.closeFrame()];
    const stream = Buffer.concat(payloads.map(frame));
    for (let size = 1; size <= stream.length; size++) {
      const reader = new FrameReader();
      const got: Buffer[] = [];
      for (let i = 0; i < stream.length; i += size) {
        assert.ok(reader.push(stream.subarray(i, i + size), (f) => got.push(Buffer.from(f))));
      }
      assert.deepEqual(got, payloads, `chunk size ${size}`);
      assert.equal(reader.pendingBytes, 0);
    }
  });

  it('refuses a length prefix larger than any frame (corrupt stream)', () => {
    const bad = Buffer.alloc(8);
    bad.writeUInt32LE(64 << 20, 0);
    assert.equal(new FrameReader().push(bad, () => assert.fail('no frame expected')), false);
  });
});

describe('decodeFrame', () => {
  it('decodes every field of a data event', () => {
    const c = new ConnectionSim({ pid: 321, comm: 'nginx', sockId: 2 ** 51 + 7, local: ['::1', 443], remote: ['2001:db8::5', 51000] });
    const ev = c.data('ingress', 'abcdef', { copied: 4 });
    assert.equal(ev.kind, 'data');
    assert.equal(ev.direction, 'ingress');
    assert.equal(ev.pid, 321);
    assert.equal(ev.comm, 'nginx');
    assert.equal(ev.sockId, 2 ** 51 + 7);
    assert.equal(ev.msgSize, 6);
    assert.equal(ev.data.toString(), 'abcd');
    assert.equal(formatAddress(ev.localAddr), '::1');
    assert.equal(formatAddress(ev.remoteAddr), '2001:db8::5');
    assert.equal(ev.localPort, 443);
    assert.equal(ev.remotePort, 51000);
  });

  it('reports unknown kinds and short frames instead of throwing', () => {
    assert.equal(decodeFrame(Buffer.from([200, 0, 0])), 'unknown_kind');
    assert.equal(decodeFrame(Buffer.from([1, 0, 0])), 'short_frame');
    assert.equal(decodeFrame(Buffer.alloc(0)), 'short_frame');
    const data = new ConnectionSim().dataFrame('egress', 'hello');
    assert.equal(decodeFrame(data.subarray(0, data.length - 1)), 'short_frame', 'buf_size beyond the frame');
  });
});

describe('decodeFrame: TLS, exec and attach events', () => {
  it('marks TLS plaintext and plaintext whose socket is not known yet', () => {
    const s = new ConnectionSim({ tls: true, sockId: 123456 });
    const known = decode(s.dataFrame('egress', 'GET / HTTP/1.1\r\n\r\n')) as DataEvent;
    assert.equal(known.tls, true);
    assert.equal(known.hasSocket, true);
    assert.equal(known.source, CONSTANTS.HT_SRC_SSL_WRITE);
    const unknown = decode(s.dataFrame('ingress', 'HTTP/1.1 200 OK\r\n\r\n', { noSocket: true })) as DataEvent;
    assert.equal(unknown.hasSocket, false);
    assert.equal(unknown.localPort, 0);
    const close = decode(s.closeFrame()) as CloseEvent;
    assert.deepEqual([close.tls, close.sockId], [true, 123456]);
    const plain = decode(new ConnectionSim().dataFrame('egress', 'x')) as DataEvent;
    assert.deepEqual([plain.tls, plain.hasSocket], [false, true]);
  });

  it("decodes exec events and the loader's attach answers", () => {
    const exec = Buffer.alloc(LAYOUT.ht_exec_event.size);
    exec[0] = CONSTANTS.HT_EV_EXEC;
    exec.writeUInt32LE(4321, LAYOUT.ht_exec_event.fields.tgid[0]);
    exec.writeBigUInt64LE(99n, LAYOUT.ht_exec_event.fields.ts_ns[0]);
    exec.write('python3', LAYOUT.ht_exec_event.fields.comm[0], 'latin1');
    assert.deepEqual(decodeFrame(exec), { kind: 'exec', pid: 4321, tsNs: 99, comm: 'python3' });
    const attach = Buffer.alloc(LAYOUT.ht_attach_event.size);
    attach[0] = CONSTANTS.HT_EV_ATTACH;
    attach.writeUInt32LE(7, LAYOUT.ht_attach_event.fields.request_id[0]);
    attach.writeInt32LE(-2, LAYOUT.ht_attach_event.fields.err[0]);
    assert.deepEqual(decodeFrame(attach), { kind: 'attach', requestId: 7, err: -2, attached: 0 });
    assert.equal(decodeFrame(attach.subarray(0, 8)), 'short_frame');
  });
});

describe('formatAddress', () => {
  const a = (hex: string) => Buffer.from(hex.replace(/ /g, ''), 'hex');
  it('prints IPv4 (also v4-mapped) dotted and IPv6 in RFC 5952 form', () => {
    assert.equal(formatAddress(a('0000 0000 0000 0000 0000 ffff 7f00 0001')), '127.0.0.1');
    assert.equal(formatAddress(a('0000 0000 0000 0000 0000 0000 0000 0001')), '::1');
    assert.equal(formatAddress(a('0000 0000 0000 0000 0000 0000 0000 0000')), '::');
    assert.equal(formatAddress(a('2001 0db8 0000 0000 0001 0000 0000 0001')), '2001:db8::1:0:0:1');
    assert.equal(formatAddress(a('2001 0db8 0001 0001 0001 0001 0001 0001')), '2001:db8:1:1:1:1:1:1');
    assert.equal(formatAddress(a('fe80 0000 0000 0000 0202 b3ff fe1e 8329')), 'fe80::202:b3ff:fe1e:8329');
  });
});
