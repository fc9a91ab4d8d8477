/**
 * Counts the records in an OTLP export request without decoding them. Logs
 * and traces share the shape: request { 1: Resource* { 2: Scope* { 2: record* } } },
 * so counting field 2 of field 2 of field 1 counts log records or spans.
 */

function varint(buf: Buffer, off: number): [value: number, next: number] {
  let v = 0;
  let mul = 1;
  for (;;) {
    if (off >= buf.length) throw new Error('truncated varint');
    const b = buf[off++];
    v += (b & 0x7f) * mul;
    if (b < 0x80) return [v, off];
    mul *= 128;
  }
}

/** Calls fn with the payload of every length-delimited field `field` in buf[start, end). */
function eachField(buf: Buffer, start: number, end: number, field: number, fn: (s: number, e: number) => void): void {
  let off = start;
  while (off < end) {
    const [key, a] = varint(buf, off);
    off = a;
    const wire = key & 7;
    if (wire === 0) off = varint(buf, off)[1];
    else if (wire === 1) off += 8;
    else if (wire === 5) off += 4;
    else if (wire === 2) {
      const [len, b] = varint(buf, off);
      if (key >>> 3 === field) fn(b, b + len);
      off = b + len;
    } else throw new Error(`unsupported wire type ${wire}`);
  }
}

/** Log records (or spans) in an ExportLogsServiceRequest (or ExportTraceServiceRequest). */
export function countOtlpRecords(req: Buffer): number {
  let n = 0;
  eachField(req, 0, req.length, 1, (rs, re) => eachField(req, rs, re, 2, (ss, se) => eachField(req, ss, se, 2, () => n++)));
  return n;
}
