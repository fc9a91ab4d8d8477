/**
 * Text that came from traffic or from other processes (header names and
 * values, paths, service names from /proc/PID/environ, file paths from
 * /proc/PID/maps), made safe for a human's terminal and for log files.
 *
 * Anyone who can send a request chooses those bytes. Printed raw, ESC
 * sequences move the cursor or clear the screen, CR overwrites a line, LF
 * (or U+2028/U+2029, or C1 NEL) starts a fake one, and bidirectional
 * overrides reorder what the eye reads (CVE-2021-42574). So every character
 * of these kinds is shown as a visible escape instead:
 *  - C0 controls U+0000–U+001F (TAB, CR and LF included), DEL U+007F and
 *    C1 controls U+0080–U+009F as `\xHH` (ESC is `\x1b`);
 *  - bidirectional embeddings, overrides and isolates (U+202A–U+202E,
 *    U+2066–U+2069), the deprecated format controls after them
 *    (U+206A–U+206F), the marks U+061C, U+200E, U+200F, and the line and
 *    paragraph separators U+2028, U+2029 as `\uHHHH` (RLO is `\u202e`);
 *  - a backslash as `\\`, so `\x1b` on screen always was ESC on the wire.
 * Everything else (printable ASCII, other Unicode) is shown as it is.
 *
 * Only what people read is escaped; the OTLP data keeps the exact values.
 */

/** The code points shown escaped (see above). */
// eslint-disable-next-line no-control-regex -- matching control characters is the point
const UNSAFE = /[\x00-\x1f\x7f-\x9f\\\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u206f]/g;

/** Inside JSON strings: what JSON.stringify leaves raw (it escapes C0, '"' and '\' itself). */
const JSON_UNSAFE = /[\x7f-\x9f\u061c\u200e\u200f\u2028\u2029\u202a-\u202e\u2066-\u206f]/g;

function hex(code: number, digits: number): string {
  return code.toString(16).padStart(digits, '0');
}

function escapeChar(ch: string): string {
  if (ch === '\\') return '\\\\';
  const code = ch.charCodeAt(0);
  return code < 0x100 ? `\\x${hex(code, 2)}` : `\\u${hex(code, 4)}`;
}

function jsonEscapeChar(ch: string): string {
  return `\\u${hex(ch.charCodeAt(0), 4)}`;
}

/** `text` with every control, bidi and line-separator character shown as a visible escape. */
export function visible(text: string): string {
  return text.replace(UNSAFE, escapeChar);
}

/**
 * JSON.stringify(value) on one line that no terminal acts on: DEL, C1,
 * bidirectional controls and U+2028/U+2029 become `\u` escapes too. Those
 * characters only ever occur inside JSON strings, so the line parses to
 * exactly the same value.
 */
export function jsonLine(value: unknown): string {
  return JSON.stringify(value).replace(JSON_UNSAFE, jsonEscapeChar);
}
