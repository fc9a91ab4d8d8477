import type { Writable } from 'node:stream';
import { format } from 'node:util';
import * as grpc from '@grpc/grpc-js';
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

/**
 * @grpc/grpc-js logs errors to the console by itself (e.g. "E No address
 * added out of total 1 resolved" before our own message on a busy port).
 * headertap reports those failures itself, so grpc's lines are shown only
 * with --verbose, as debug lines.
 */
export function routeGrpcLogs(io: CliIO, verbose: boolean): void {
  grpc.setLogger({ error: (...args: unknown[]) => stderrLine(io, `headertap: debug: grpc: ${format(...args)}`) });
  grpc.setLogVerbosity(verbose ? grpc.logVerbosity.ERROR : grpc.logVerbosity.NONE);
}
