/**
 * The HPACK Huffman code (RFC 7541 Appendix B), decode only.
 *
 * The code is canonical: within one bit length, codes count up in symbol
 * order, and each length starts where the previous one ended, shifted left.
 * So the 257 bit lengths below define every code; the unit test checks
 * generated codes against values printed in Appendix B and decodes the
 * Appendix C examples.
 */

/** Bit length of the code of each symbol 0..255, then EOS (256). */
// prettier-ignore
const CODE_LENGTHS = [
  13, 23, 28, 28, 28, 28, 28, 28, 28, 24, 30, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 30, 28, 28, 28, 28, 28, 28, 28, 28, 28,
  6, 10, 10, 12, 13, 6, 8, 11, 10, 10, 8, 11, 8, 6, 6, 6, 5, 5, 5, 6, 6, 6, 6, 6, 6, 6, 7, 8, 15, 6, 12, 10,
  13, 6, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 8, 7, 8, 13, 19, 13, 14, 6,
  15, 5, 6, 5, 6, 5, 6, 6, 6, 5, 7, 7, 6, 6, 6, 5, 6, 7, 6, 5, 5, 6, 7, 7, 7, 7, 7, 15, 11, 14, 13, 28,
  20, 22, 20, 20, 22, 22, 22, 23, 22, 23, 23, 23, 23, 23, 24, 23, 24, 24, 22, 23, 24, 23, 23, 23, 23, 21, 22, 23, 22, 23, 23, 24,
  22, 21, 20, 22, 22, 23, 23, 21, 23, 22, 22, 24, 21, 22, 23, 23, 21, 21, 22, 21, 23, 22, 23, 23, 20, 22, 22, 22, 23, 22, 22, 23,
  26, 26, 20, 19, 22, 23, 22, 25, 26, 26, 26, 27, 27, 26, 24, 25, 19, 21, 26, 27, 27, 26, 27, 24, 21, 21, 26, 26, 28, 27, 27, 27,
  20, 24, 20, 21, 22, 21, 21, 23, 22, 22, 25, 25, 24, 24, 26, 23, 26, 27, 26, 26, 27, 27, 27, 27, 27, 28, 27, 27, 27, 27, 27, 26,
  30,
];

export const EOS = 256;
const MAX_LENGTH = 30;

/** Symbols sorted by (length, symbol): the canonical order. */
const SORTED: number[] = [];
/** Per length: the first code of that length, how many codes, where they start in SORTED. */
const FIRST_CODE = new Array<number>(MAX_LENGTH + 1).fill(0);
const COUNT = new Array<number>(MAX_LENGTH + 1).fill(0);
const OFFSET = new Array<number>(MAX_LENGTH + 1).fill(0);
/** Per length: one past its last code, left-aligned in 32 bits (an unsigned upper bound for a 32-bit window). */
const LIMIT = new Array<number>(MAX_LENGTH + 1).fill(0);
/** Every symbol's code, for tests. */
export const CODES: ReadonlyArray<{ code: number; length: number }> = buildCodes();

function buildCodes(): Array<{ code: number; length: number }> {
  for (let len = 1; len <= MAX_LENGTH; len++) {
    OFFSET[len] = SORTED.length;
    for (let sym = 0; sym < CODE_LENGTHS.length; sym++) if (CODE_LENGTHS[sym] === len) SORTED.push(sym);
    COUNT[len] = SORTED.length - OFFSET[len];
  }
  const codes = new Array<{ code: number; length: number }>(CODE_LENGTHS.length);
  let code = 0;
  for (let len = 1; len <= MAX_LENGTH; len++) {
    FIRST_CODE[len] = code;
    for (let i = 0; i < COUNT[len]; i++) codes[SORTED[OFFSET[len] + i]] = { code: code + i, length: len };
    code += COUNT[len];
    LIMIT[len] = code * 2 ** (32 - len); // may be 2^32 for the last length: compared as a number
    code *= 2;
  }
  return codes;
}

/** 32 bits of `buf` starting at bit `pos`, padded with ones past the end (as HPACK pads). */
function window32(buf: Buffer, pos: number): number {
  const byte = pos >>> 3;
  const shift = pos & 7;
  let w = 0;
  for (let i = 0; i < 5; i++) {
    const b = byte + i < buf.length ? buf[byte + i] : 0xff;
    w = w * 256 + b; // 40 bits: exact in a double
  }
  return Math.floor(w / 2 ** (8 - shift)) % 2 ** 32;
}

/**
 * Decodes a Huffman-coded string literal. Returns undefined when it is not
 * valid HPACK Huffman: an EOS symbol, padding longer than 7 bits or not all
 * ones (RFC 7541 §5.2).
 */
export function huffmanDecode(buf: Buffer): Buffer | undefined {
  const out = Buffer.allocUnsafe(Math.floor((buf.length * 8) / 5));
  let n = 0;
  const total = buf.length * 8;
  let pos = 0;
  while (pos < total) {
    const left = total - pos;
    const w = window32(buf, pos);
    if (left <= 7 && w === 0xffffffff) break; // padding: the top bits of EOS
    let len = 5;
    while (len <= MAX_LENGTH && w >= LIMIT[len]) len++;
    if (len > MAX_LENGTH || len > left) return undefined;
    const sym = SORTED[OFFSET[len] + (Math.floor(w / 2 ** (32 - len)) - FIRST_CODE[len])];
    if (sym === EOS) return undefined;
    out[n++] = sym;
    pos += len;
  }
  return out.subarray(0, n);
}
