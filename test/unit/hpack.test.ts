import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { HpackDecoder } from '../../src/http/h2/hpack';
import { CODES, EOS, huffmanDecode } from '../../src/http/h2/huffman';

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const pairs = (fields: string[]) => fields.reduce<string[]>((out, v, i) => (i % 2 ? [...out.slice(0, -1), `${out[out.length - 1]}: ${v}`] : [...out, v]), []);

/** RFC 7541 Appendix C.3/C.4: three requests on one connection. */
const REQUESTS = [
  [':method: GET', ':scheme: http', ':path: /', ':authority: www.example.com'],
  [':method: GET', ':scheme: http', ':path: /', ':authority: www.example.com', 'cache-control: no-cache'],
  [':method: GET', ':scheme: https', ':path: /index.html', ':authority: www.example.com', 'custom-key: custom-value'],
];
const REQUEST_TABLE_SIZES = [57, 110, 164];

/** RFC 7541 Appendix C.5/C.6: three responses, table limited to 256 octets. */
const RESPONSES = [
  [':status: 302', 'cache-control: private', 'date: Mon, 21 Oct 2013 20:13:21 GMT', 'location: https://www.example.com'],
  [':status: 307', 'cache-control: private', 'date: Mon, 21 Oct 2013 20:13:21 GMT', 'location: https://www.example.com'],
  [
    ':status: 200',
    'cache-control: private',
    'date: Mon, 21 Oct 2013 20:13:22 GMT',
    'location: https://www.example.com',
    'content-encoding: gzip',
    'set-cookie: foo=ASDJKHQKBZXOQWEOPIUAXQWEOIU; max-age=3600; version=1',
  ],
];
const RESPONSE_TABLE_SIZES = [222, 222, 215];
const RESPONSE_TABLE_LENGTHS = [4, 4, 3];

const VECTORS = {
  'C.3 requests without Huffman': [
    '8286 8441 0f77 7777 2e65 7861 6d70 6c65 2e63 6f6d',
    '8286 84be 5808 6e6f 2d63 6163 6865',
    '8287 85bf 400a 6375 7374 6f6d 2d6b 6579 0c63 7573 746f 6d2d 7661 6c75 65',
  ],
  'C.4 requests with Huffman': [
    '8286 8441 8cf1 e3c2 e5f2 3a6b a0ab 90f4 ff',
    '8286 84be 5886 a8eb 1064 9cbf',
    '8287 85bf 4088 25a8 49e9 5ba9 7d7f 8925 a849 e95b b8e8 b4bf',
  ],
  'C.5 responses without Huffman': [
    '4803 3330 3258 0770 7269 7661 7465 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3120 474d 546e 1768 7474 7073 3a2f 2f77 7777 2e65 7861 6d70 6c65 2e63 6f6d',
    '4803 3330 37c1 c0bf',
    '88c1 611d 4d6f 6e2c 2032 3120 4f63 7420 3230 3133 2032 303a 3133 3a32 3220 474d 54c0 5a04 677a 6970 7738 666f 6f3d 4153 444a 4b48 514b 425a 584f 5157 454f 5049 5541 5851 5745 4f49 553b 206d 6178 2d61 6765 3d33 3630 303b 2076 6572 7369 6f6e 3d31',
  ],
  'C.6 responses with Huffman': [
    '4882 6402 5885 aec3 771a 4b61 96d0 7abe 9410 54d4 44a8 2005 9504 0b81 66e0 82a6 2d1b ff6e 919d 29ad 1718 63c7 8f0b 97c8 e9ae 82ae 43d3',
    '4883 640e ffc1 c0bf',
    '88c1 6196 d07a be94 1054 d444 a820 0595 040b 8166 e084 a62d 1bff c05a 839b d9ab 77ad 94e7 821d d7f2 e6c7 b335 dfdf cd5b 3960 d5af 2708 7f36 72c1 ab27 0fb5 291f 9587 3160 65c0 03ed 4ee5 b106 3d50 07',
  ],
};

describe('HPACK decoder: RFC 7541 Appendix C', () => {
  it('C.2.1 literal with indexing adds to the table', () => {
    const d = new HpackDecoder(true);
    const out = d.decode(hex('400a 6375 7374 6f6d 2d6b 6579 0d63 7573 746f 6d2d 6865 6164 6572'));
    assert.deepEqual(pairs(out.fields), ['custom-key: custom-header']);
    assert.equal(d.size, 55);
    assert.equal(d.length, 1);
  });

  it('C.2.2 literal without indexing and C.2.3 never indexed leave the table empty', () => {
    const d = new HpackDecoder(true);
    assert.deepEqual(pairs(d.decode(hex('040c 2f73 616d 706c 652f 7061 7468')).fields), [':path: /sample/path']);
    assert.deepEqual(pairs(d.decode(hex('1008 7061 7373 776f 7264 0673 6563 7265 74')).fields), ['password: secret']);
    assert.equal(d.size, 0);
  });

  it('C.2.4 indexed field from the static table', () => {
    assert.deepEqual(pairs(new HpackDecoder(true).decode(hex('82')).fields), [':method: GET']);
  });

  for (const [name, blocks] of Object.entries(VECTORS)) {
    it(`${name}: every block, the table size after each`, () => {
      const responses = name.includes('responses');
      const d = new HpackDecoder(true, responses ? 256 : 4096);
      blocks.forEach((b, i) => {
        const out = d.decode(hex(b));
        assert.equal(out.error, undefined);
        assert.equal(out.unknownFields, 0);
        assert.deepEqual(pairs(out.fields), (responses ? RESPONSES : REQUESTS)[i]);
        assert.equal(d.size, (responses ? RESPONSE_TABLE_SIZES : REQUEST_TABLE_SIZES)[i], `table size after block ${i + 1}`);
        if (responses) assert.equal(d.length, RESPONSE_TABLE_LENGTHS[i], `entries after block ${i + 1}`);
        assert.ok(d.synced);
      });
    });
  }
});

describe('HPACK decoder: dynamic table', () => {
  it('evicts the oldest entries first, and indices follow (C.5: :status 302 leaves for :status 307)', () => {
    const d = new HpackDecoder(true, 256);
    d.decode(hex(VECTORS['C.5 responses without Huffman'][0]));
    d.decode(hex(VECTORS['C.5 responses without Huffman'][1]));
    // 62 is now :status 307 (newest), 65 cache-control: private (oldest left); 66 is gone.
    assert.deepEqual(pairs(d.decode(hex('be c1')).fields), [':status: 307', 'cache-control: private']);
    const gone = d.decode(hex('c2'));
    assert.equal(gone.error, 'invalid', 'an index past a fully known table is invalid');
  });

  it('a size update shrinks the table and evicts; size 0 empties it', () => {
    const d = new HpackDecoder(true);
    d.decode(hex(VECTORS['C.3 requests without Huffman'][0]));
    d.decode(hex(VECTORS['C.3 requests without Huffman'][1]));
    assert.equal(d.size, 110);
    d.decode(hex('3f 22')); // size update: 5-bit prefix 31, then 34: 65 octets
    assert.equal(d.size, 53, 'only cache-control: no-cache (53) fits in 65');
    assert.equal(d.length, 1);
    d.decode(hex('20')); // size update to 0
    assert.equal(d.size, 0);
    assert.ok(d.synced);
  });

  it('a size update after a field is invalid (RFC 7541 §4.2)', () => {
    const d = new HpackDecoder(true);
    assert.equal(d.decode(hex('82 20')).error, 'invalid');
  });

  it('an entry larger than the table empties it and is not added', () => {
    const d = new HpackDecoder(true, 64);
    d.decode(hex('4003 6162 6301 78')); // abc: x, 36 octets
    assert.equal(d.length, 1);
    const big = Buffer.concat([hex('4003 6162 6320'), Buffer.alloc(32, 0x79)]); // abc: y*32 = 67 octets > 64
    assert.deepEqual(pairs(d.decode(big).fields), [`abc: ${'y'.repeat(32)}`]);
    assert.equal(d.length, 0);
    assert.equal(d.size, 0);
  });
});

describe('HPACK decoder: state unknown (joined mid-connection, lost blocks)', () => {
  it('decodes literals and static references, leaves dynamic references out and counts them', () => {
    const d = new HpackDecoder(false);
    // :method GET (static), [62] unknown, literal x-new: 1 with indexing, [63] unknown, literal with unknown name [64]
    const out = d.decode(hex('82 be 4005 782d 6e65 7701 31 bf 7f01 0176'));
    assert.deepEqual(pairs(out.fields), [':method: GET', 'x-new: 1']);
    assert.equal(out.unknownFields, 3);
    assert.equal(out.error, undefined);
    assert.ok(!d.synced);
  });

  it('entries added since the join resolve at their exact indices; older ones stay unknown', () => {
    const d = new HpackDecoder(false);
    d.decode(hex('4001 6101 31')); // a: 1 -> [62]
    d.decode(hex('4001 6201 32')); // b: 2 -> [62], a: 1 -> [63]
    const out = d.decode(hex('bf be c0'));
    assert.deepEqual(pairs(out.fields), ['a: 1', 'b: 2']);
    assert.equal(out.unknownFields, 1, '[64] predates the join');
  });

  it('an entry with an unknown name keeps later indices aligned without resolving', () => {
    const d = new HpackDecoder(false);
    d.decode(hex('7f01 0178')); // name [64+] unknown, value x: inserted at [62]
    d.decode(hex('4001 6101 31')); // a: 1 -> [62], the unknown one -> [63]
    const out = d.decode(hex('be bf'));
    assert.deepEqual(pairs(out.fields), ['a: 1']);
    assert.equal(out.unknownFields, 1);
  });

  it('knows the table again once new entries leave no room for older ones', () => {
    const d = new HpackDecoder(false);
    d.setSettingsLimit(90);
    assert.ok(!d.synced);
    d.decode(hex('4001 6101 31')); // a: 1, 34 octets
    assert.ok(!d.synced, '56 octets could still hold an older entry');
    d.decode(hex('4001 6201 32')); // b: 2, 68 octets in all: less than 32 left
    assert.ok(d.synced);
    assert.equal(d.decode(hex('c0')).error, 'invalid');
  });

  it('a block cut short keeps the fields before the cut and forgets the table', () => {
    const d = new HpackDecoder(true);
    d.decode(hex('4001 6101 31'));
    const out = d.decode(hex('82 be 4001 6201'), { partial: true });
    assert.deepEqual(pairs(out.fields), [':method: GET', 'a: 1']);
    assert.equal(out.error, 'incomplete');
    assert.ok(!d.synced);
    assert.equal(d.decode(hex('be')).unknownFields, 1, 'a: 1 may have been evicted by what was lost');
  });

  it('a size update to 0 makes the state known again', () => {
    const d = new HpackDecoder(false);
    d.decode(hex('20 3fe1 1f 4001 6101 31')); // size 0, size 4096, then a: 1
    assert.ok(d.synced);
    assert.deepEqual(pairs(d.decode(hex('be')).fields), ['a: 1']);
  });
});

describe('HPACK decoder: bad input', () => {
  it('rejects index 0, EOS in a string, long padding, bad field names, huge integers', () => {
    for (const bad of ['80', '4081 ff01 61', '0082 fe7f 0161', '0001 4101 61', 'ff ffff ffff ff01', '3fe1 ffff ffff 7f']) {
      const d = new HpackDecoder(true);
      const out = d.decode(hex(bad));
      assert.equal(out.error, 'invalid', bad);
      assert.ok(!d.synced, 'an invalid block forgets the table');
    }
  });

  it('keeps a value holding LF, CR or NUL (which HTTP forbids) as sent, counts it, and keeps the table in step', () => {
    const d = new HpackDecoder(true);
    // a: "x\ny" with incremental indexing, b: "\r", c: "\0" without indexing, then a reference to the new entry (62)
    const out = d.decode(hex('4001 6103 780a 79 0001 6201 0d 0001 6301 00 be'));
    assert.equal(out.error, undefined);
    assert.deepEqual(out.fields, ['a', 'x\ny', 'b', '\r', 'c', '\0', 'a', 'x\ny']);
    assert.equal(out.invalidValues, 4);
    assert.ok(d.synced);
    assert.equal(new HpackDecoder(true).decode(hex('0001 6101 62')).invalidValues, 0);
  });

  it('reports a block that ends inside a field as incomplete', () => {
    assert.equal(new HpackDecoder(true).decode(hex('4005 6162')).error, 'incomplete');
  });

  it('never throws on random bytes', () => {
    let seed = 7;
    const rand = () => (seed = (seed * 1103515245 + 12345) >>> 0) >>> 8;
    for (let n = 0; n < 3000; n++) {
      const d = new HpackDecoder(n % 2 === 0, 256);
      for (let b = 0; b < 4; b++) {
        const buf = Buffer.alloc(rand() % 64);
        for (let i = 0; i < buf.length; i++) buf[i] = rand() & 0xff;
        const out = d.decode(buf);
        assert.ok(out.fields.length % 2 === 0);
      }
    }
  });
});

describe('HPACK Huffman code', () => {
  it('matches codes printed in RFC 7541 Appendix B', () => {
    const printed: Array<[number, number, number]> = [
      [0, 0x1ff8, 13],
      [32, 0x14, 6],
      [48, 0x0, 5],
      [97, 0x3, 5],
      [127, 0xffffffc, 28],
      [200, 0x3ffffe2, 26],
      [255, 0x3ffffee, 26],
      [EOS, 0x3fffffff, 30],
    ];
    for (const [sym, code, length] of printed) assert.deepEqual(CODES[sym], { code, length }, `symbol ${sym}`);
  });

  it('is a complete prefix code (Kraft sum exactly 1)', () => {
    assert.equal(CODES.reduce((s, c) => s + 2 ** -c.length, 0), 1);
  });

  it('round-trips every byte value through an encoder built from the table', () => {
    const encode = (bytes: Buffer) => {
      let bits = '';
      for (const b of bytes) bits += CODES[b].code.toString(2).padStart(CODES[b].length, '0');
      bits += '1'.repeat((8 - (bits.length % 8)) % 8);
      return Buffer.from(bits.match(/.{8}/g)!.map((x) => parseInt(x, 2)));
    };
    const all = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
    assert.deepEqual(huffmanDecode(encode(all)), all);
    assert.deepEqual(huffmanDecode(hex('f1e3 c2e5 f23a 6ba0 ab90 f4ff')), Buffer.from('www.example.com'));
  });

  it('rejects padding longer than 7 bits or not all ones, and EOS', () => {
    assert.equal(huffmanDecode(hex('1fff')), undefined, 'a then 11 bits of padding');
    assert.equal(huffmanDecode(hex('0000 0000 00ff')), undefined, 'eight 0s then a whole byte of padding');
    assert.deepEqual(huffmanDecode(hex('0000 0000 00')), Buffer.from('00000000'), 'eight 0s, no padding');
    assert.equal(huffmanDecode(hex('00')), undefined, '0 then 000 padding');
    assert.equal(huffmanDecode(hex('ffff fffc')), undefined, 'EOS');
    assert.deepEqual(huffmanDecode(hex('07')), Buffer.from('0'), '0 then 111 padding');
  });
});
