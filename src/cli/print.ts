import { jsonLine } from '../common/escape';
import { toJsonLine, toPretty } from '../common/flat-record';
import { toPrettySpan } from '../common/flat-span';
import type { ReceivedBatch } from '../receiver';

/**
 * Prints what a receiver got: each log record, then each span (from
 * `run --emit-spans`), as readable blocks or one JSON object a line. Both
 * show controls and bidi characters from traffic escaped (src/common/escape.ts).
 */
export function batchPrinter(format: 'pretty' | 'jsonl', out: (line: string) => void): (batch: ReceivedBatch) => void {
  if (format === 'jsonl') {
    return (batch) => {
      for (const r of batch.records) out(toJsonLine(r));
      for (const s of batch.spans) out(jsonLine(s));
    };
  }
  return (batch) => {
    for (const r of batch.records) out(toPretty(r) + '\n');
    for (const s of batch.spans) out(toPrettySpan(s) + '\n');
  };
}
