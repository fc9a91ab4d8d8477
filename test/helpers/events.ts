/**
 * Builds kernel events byte for byte as bpf/headertap.h lays them out, with a
 * fake clock and per-direction TCP sequence numbers, and decodes them with the
 * real decoder. Tests drive the tracker with what the kernel would send.
 */
import { isIPv4 } from 'node:net';
import { decodeFrame } from '../../src/source/decode';
import { CONSTANTS as C, DATA, LAYOUT } from '../../src/source/layout';
import type { CloseEvent, DataEvent, SourceEvent } from '../../src/source';

function addr16(address: string): Buffer {
  const out = Buffer.alloc(16);
  if (isIPv4(address)) {
    out[10] = out[11] = 0xff;
    address.split('.').forEach((p, i) => (out[12 + i] = Number(p)));
    return out;
  }
  const [head, tail = ''] = address.split('::');
  const h = head ? head.split(':') : [];
  const t = tail ? tail.split(':') : [];
  const groups = address.includes('::') ? [...h, ...Array(8 - h.length - t.length).fill('0'), ...t] : h;
  groups.forEach((g, i) => out.writeUInt16BE(parseInt(g, 16), 2 * i));
  return out;
}

export interface ConnSpec {
  pid?: number;
  comm?: string;
  sockId?: number;
  local?: [string, number];
  remote?: [string, number];
  /** Initial sequence numbers per direction. */
  egressSeq?: number;
  ingressSeq?: number;
  /** A TLS session: plaintext events from the SSL probes, sockId is the session id. */
  tls?: boolean;
}

export interface DataOptions {
  /** Copy only this many bytes (the rest counts as moved but not captured). */
  copied?: number;
  /** Pretend this many bytes went by unseen before these (sendfile, lost events). */
  skipBefore?: number;
  /** Advance the fake clock by this much first (ns). */
  afterNs?: number;
  /** TLS plaintext whose socket the kernel did not know yet (no addresses). */
  noSocket?: boolean;
  /** Not the call's last event: the kernel sends more of the same call next (HT_FLAG_MORE). */
  more?: boolean;
}

/** One simulated connection as one process sees it. */
export class ConnectionSim {
  readonly pid: number;
  readonly sockId: number;
  private _seq: { egress: number; ingress: number };
  private static _clockNs = 1_000_000_000;

  constructor(private readonly _spec: ConnSpec = {}) {
    this.pid = _spec.pid ?? 4242;
    this.sockId = _spec.sockId ?? Math.floor(Math.random() * 2 ** 40);
    const tlsStart = _spec.tls ? 0 : undefined; // TLS plaintext offsets start at 0
    this._seq = { egress: _spec.egressSeq ?? tlsStart ?? 1000, ingress: _spec.ingressSeq ?? tlsStart ?? 900_000 };
  }

  static now(): number {
    return ConnectionSim._clockNs;
  }

  /** The raw frame payload of a data event. */
  dataFrame(direction: 'egress' | 'ingress', bytes: string | Buffer, o: DataOptions = {}): Buffer {
    ConnectionSim._clockNs += o.afterNs ?? 1000;
    const data = typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes;
    const copied = Math.min(o.copied ?? data.length, data.length);
    this._seq[direction] = (this._seq[direction] + (o.skipBefore ?? 0)) >>> 0;
    const f = Buffer.alloc(C.HT_DATA_HEADER_SIZE + copied);
    const [la, lp] = this._spec.local ?? ['127.0.0.1', 40000];
    const [ra, rp] = this._spec.remote ?? ['127.0.0.1', 8080];
    const tls = this._spec.tls ?? false;
    f[0] = C.HT_EV_DATA;
    f[DATA.direction] = direction === 'egress' ? C.HT_DIR_EGRESS : C.HT_DIR_INGRESS;
    if (tls) f[DATA.source] = direction === 'egress' ? C.HT_SRC_SSL_WRITE : C.HT_SRC_SSL_READ;
    else f[DATA.source] = direction === 'egress' ? C.HT_SRC_WRITE : C.HT_SRC_READ;
    f[DATA.family] = o.noSocket ? 0 : isIPv4(la) ? 2 : 10;
    f.writeUInt32LE((tls ? C.HT_FLAG_TLS : 0) | (o.noSocket ? C.HT_FLAG_NO_SOCK : 0) | (o.more ? C.HT_FLAG_MORE : 0), DATA.flags);
    f.writeUInt32LE(this.pid, DATA.tgid);
    f.writeUInt32LE(this.pid, DATA.tid);
    f.writeInt32LE(5, DATA.fd);
    f.writeUInt32LE(this.sockId % 2 ** 32, DATA.sockId);
    f.writeUInt32LE(Math.floor(this.sockId / 2 ** 32), DATA.sockId + 4);
    f.writeBigUInt64LE(BigInt(ConnectionSim._clockNs), DATA.tsNs);
    f.writeUInt32LE(this._seq[direction], DATA.seq);
    f.writeUInt32LE(data.length, DATA.msgSize);
    f.writeUInt32LE(copied, DATA.bufSize);
    if (!o.noSocket) {
      f.writeUInt16LE(lp, DATA.lport);
      f.writeUInt16LE(rp, DATA.rport);
      addr16(la).copy(f, DATA.laddr);
      addr16(ra).copy(f, DATA.raddr);
    }
    f.write((this._spec.comm ?? 'testproc').slice(0, 15), DATA.comm, 'latin1');
    data.copy(f, DATA.buf, 0, copied);
    this._seq[direction] = (this._seq[direction] + data.length) >>> 0;
    return f;
  }

  data(direction: 'egress' | 'ingress', bytes: string | Buffer, o?: DataOptions): DataEvent {
    return decode(this.dataFrame(direction, bytes, o)) as DataEvent;
  }

  closeFrame(): Buffer {
    ConnectionSim._clockNs += 1000;
    const f = Buffer.alloc(LAYOUT.ht_close_event.size);
    f[0] = C.HT_EV_CLOSE;
    f[LAYOUT.ht_close_event.fields.flags[0]] = this._spec.tls ? C.HT_FLAG_TLS : 0;
    f.writeUInt32LE(this.sockId % 2 ** 32, 8);
    f.writeUInt32LE(Math.floor(this.sockId / 2 ** 32), 12);
    f.writeBigUInt64LE(BigInt(ConnectionSim._clockNs), 16);
    return f;
  }

  close(): CloseEvent {
    return decode(this.closeFrame()) as CloseEvent;
  }
}

export function readyFrame(offsetNs = 1_700_000_000_000_000_000n, features = 0): Buffer {
  const f = Buffer.alloc(LAYOUT.ht_ready_event.size);
  f[0] = C.HT_EV_READY;
  f[1] = C.HT_LAYOUT_VERSION;
  f.writeUInt32LE(999, 4);
  f.writeBigInt64LE(offsetNs, 8);
  f.writeUInt32LE(C.HT_MAX_DATA, 16);
  f.writeUInt32LE(1 << 24, 20);
  f.writeUInt32LE(2, 24);
  f.writeUInt32LE(features, 28);
  return f;
}

export function decode(frame: Buffer): SourceEvent {
  const ev = decodeFrame(frame);
  if (typeof ev === 'string') throw new Error(`test built an undecodable frame: ${ev}`);
  return ev;
}
