import type { Writable } from 'node:stream';
import type { Log } from '../common/log';

/** Streams and the message log the CLI writes to; replaced in tests. */
export interface CliIO {
  stdout: Writable;
  stderr: Writable;
  env: Record<string, string | undefined>;
}

export const processIO: CliIO = { stdout: process.stdout, stderr: process.stderr, env: process.env };

/** headertap's messages: one line each on stderr, prefixed, debug only with --verbose. */
export function stderrLog(io: CliIO, verbose: boolean): Log {
  const line = (s: string) => io.stderr.write(`headertap: ${s}\n`);
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
