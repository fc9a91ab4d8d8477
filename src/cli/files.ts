/**
 * Paths given on the command line, checked before capture starts: files
 * headertap reads whole (--config, --hash-key-file) and files it writes
 * (--record). Each problem is one short reason the caller puts in its
 * UsageError, next to the flag and the fix.
 */
import { accessSync, closeSync, constants as fsConstants, fstatSync, openSync, readSync, statSync } from 'node:fs';
import * as path from 'node:path';

/** Files read whole at start are at most this big: a config or a key, never a capture. */
export const MAX_INPUT_FILE_BYTES = 1 << 20;

/** Why a path cannot be used; the message is a reason to quote ("no such file"). */
export class PathProblem extends Error {}

function errnoReason(err: unknown): string {
  const e = err as NodeJS.ErrnoException;
  switch (e.code) {
    case 'ENOENT':
      return 'no such file';
    case 'EACCES':
    case 'EPERM':
      return 'permission denied';
    case 'EISDIR':
      return 'is a directory';
    case 'ENOTDIR':
      return 'a part of the path is not a directory';
    default:
      return e.code ?? e.message;
  }
}

/**
 * A regular file's bytes, at most `maxBytes`. Sizes are checked before
 * reading (a 200 MB file is refused without being read), and the read stops
 * past the bound in case the file grows meanwhile. A FIFO or device is
 * refused without blocking on it.
 */
export function readSmallFile(file: string, maxBytes = MAX_INPUT_FILE_BYTES): Buffer {
  let fd: number;
  try {
    fd = openSync(file, fsConstants.O_RDONLY | fsConstants.O_NONBLOCK);
  } catch (err) {
    throw new PathProblem(errnoReason(err));
  }
  try {
    const st = fstatSync(fd);
    if (st.isDirectory()) throw new PathProblem('is a directory');
    if (!st.isFile()) throw new PathProblem('is not a regular file');
    const limit = `${maxBytes >= 1 << 20 ? `${maxBytes / (1 << 20)} MiB` : `${maxBytes} bytes`}`;
    if (st.size > maxBytes) throw new PathProblem(`is ${st.size} bytes, larger than the ${limit} allowed`);
    const buf = Buffer.alloc(Math.min(st.size, maxBytes) + 1);
    let n = 0;
    for (let got = -1; got !== 0 && n < buf.length; n += got) got = readSync(fd, buf, n, buf.length - n, null);
    if (n > maxBytes) throw new PathProblem(`grew past the ${limit} allowed while being read`);
    return buf.subarray(0, n);
  } catch (err) {
    if (err instanceof PathProblem) throw err;
    throw new PathProblem(errnoReason(err));
  } finally {
    closeSync(fd);
  }
}

/**
 * Checks, without creating anything, that `file` can be created or
 * overwritten: its directory exists and is writable, and the path is not a
 * directory or something other than a regular file.
 */
export function checkWritableFile(file: string): void {
  const dir = path.dirname(path.resolve(file));
  let st;
  try {
    st = statSync(dir);
  } catch (err) {
    const why = errnoReason(err);
    throw new PathProblem(why === 'no such file' ? `its directory ${dir} does not exist` : `its directory ${dir}: ${why}`);
  }
  if (!st.isDirectory()) throw new PathProblem(`${dir} is not a directory`);
  try {
    accessSync(dir, fsConstants.W_OK | fsConstants.X_OK);
  } catch {
    throw new PathProblem(`its directory ${dir} is not writable`);
  }
  let existing;
  try {
    existing = statSync(file);
  } catch {
    return; // it will be created
  }
  if (existing.isDirectory()) throw new PathProblem('is a directory');
  if (!existing.isFile()) throw new PathProblem('exists and is not a regular file');
  try {
    accessSync(file, fsConstants.W_OK);
  } catch {
    throw new PathProblem('exists and is not writable');
  }
}
