import type { Writable } from 'node:stream';
import { visible } from '../common/escape';
import type { Log } from '../common/log';

/** Streams and the message log the CLI writes to; replaced in tests. */
export interface CliIO {
  stdout: Writable;
  stderr: Writable;
  env: Record<string, string | undefined>;
}

export const processIO: CliIO = { stdout: process.stdout, stderr: process.stderr, env: process.env };

/**
 * Writes one line to stderr. Messages quote paths, names and values that
 * come from traffic or other processes: each is shown with its control and
 * bidi characters escaped, so it stays one line and cannot move the cursor.
 */
export function stderrLine(io: CliIO, text: string): void {
  io.stderr.write(`${visible(text)}\n`);
}

/** headertap's messages: one line each on stderr, prefixed, debug only with --verbose. */
export function stderrLog(io: CliIO, verbose: boolean): Log {
  const line = (s: string) => stderrLine(io, `headertap: ${s}`);
  return {
    info: line,
    warn: (s) => line(`warning: ${s}`),
    debug: verbose ? (s) => line(`debug: ${s}`) : () => {},
  };
}

/** A line writer that survives a closed pipe (`headertap run | head`). */
export function lineWriter(stream: Writable): (line: string) => void {
  let broken = false;
  stream.on('error', () => (broken = true));
  return (line) => {
    if (!broken) stream.write(line + '\n');
  };
}
