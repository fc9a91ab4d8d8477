/** Where the CLI turns options into secret-handling rules: header rules, the hash key, recording masks. */
import { UsageError } from '../common/errors';
import { PathProblem, readSmallFile } from './files';
import { CaptureRules } from '../otel';
import { RecordingMasker, RecordingWriter } from '../source';
import { HASH_KEY_ENV, type RunOptions } from './options';

/** Shorter keys make the hashes of short secrets easy to brute-force. */
export const MIN_HASH_KEY_BYTES = 16;

const MAKE_ONE = 'e.g. `head -c 32 /dev/urandom | base64 > /etc/headertap/hash.key`';

/**
 * The HMAC key for --hash-headers: the bytes of --hash-key-file (a trailing
 * newline dropped), else the HEADERTAP_HASH_KEY environment variable.
 * Undefined when no hashing is asked for. Errors name the file or variable,
 * never the key.
 */
export function loadHashKey(
  opts: { hashHeaders: readonly string[]; hashKeyFile?: string },
  env: Record<string, string | undefined>,
): Buffer | undefined {
  if (opts.hashHeaders.length === 0) return undefined;
  let key: Buffer;
  let source: string;
  if (opts.hashKeyFile !== undefined) {
    source = `--hash-key-file ${opts.hashKeyFile}`;
    try {
      key = readSmallFile(opts.hashKeyFile);
    } catch (err) {
      if (!(err instanceof PathProblem)) throw err;
      throw new UsageError(`cannot read ${source}: ${err.message}; point it at a file holding the --hash-headers key, ${MAKE_ONE}`);
    }
    let end = key.length;
    while (end > 0 && (key[end - 1] === 0x0a || key[end - 1] === 0x0d)) end--;
    key = key.subarray(0, end);
  } else if (env[HASH_KEY_ENV] !== undefined && env[HASH_KEY_ENV] !== '') {
    source = `${HASH_KEY_ENV}`;
    key = Buffer.from(env[HASH_KEY_ENV], 'utf8');
  } else {
    throw new UsageError(
      `--hash-headers needs a key: pass --hash-key-file FILE or set ${HASH_KEY_ENV}, ${MAKE_ONE}`,
    );
  }
  if (key.length < MIN_HASH_KEY_BYTES) {
    throw new UsageError(`the key in ${source} is ${key.length} bytes; --hash-headers needs at least ${MIN_HASH_KEY_BYTES}, ${MAKE_ONE}`);
  }
  return key;
}

/**
 * The header rules of a run: capture/exclude per side, redact, hash with its
 * key, and the scoped rules of the config file (`rules:`), compiled whole.
 * Also its hash key (for the rules digest), undefined when nothing is hashed.
 */
export function captureRulesOf(opts: RunOptions, env: Record<string, string | undefined>): { rules: CaptureRules; hashKey?: Buffer } {
  // A key is needed as soon as anything is hashed, globally or for some workloads.
  const hashKey = loadHashKey({ hashHeaders: [...opts.hashHeaders, ...opts.rules.flatMap((r) => r.hash ?? [])], hashKeyFile: opts.hashKeyFile }, env);
  const rules = new CaptureRules({
    global: {
      capture: opts.captureHeaders,
      exclude: opts.excludeHeaders,
      ...(opts.captureRequestHeaders ? { captureRequest: opts.captureRequestHeaders } : {}),
      ...(opts.captureResponseHeaders ? { captureResponse: opts.captureResponseHeaders } : {}),
      excludeRequest: opts.excludeRequestHeaders,
      excludeResponse: opts.excludeResponseHeaders,
      redact: opts.redactHeaders,
      hash: opts.hashHeaders,
      ...(hashKey ? { hashKey } : {}),
    },
    scoped: opts.rules,
  });
  return hashKey ? { rules, hashKey } : { rules };
}

/**
 * A --record writer that hides every value `isSecret` names (the rules in
 * force, any workload's) before it reaches the file (see
 * src/source/recording-masker.ts).
 */
export function maskedRecorder(file: string, isSecret: (name: string) => boolean): { write(chunk: Buffer): void; close(): Promise<void> } {
  const writer = new RecordingWriter(file);
  const masker = new RecordingMasker(isSecret);
  let corrupt = false;
  return {
    write(chunk) {
      if (corrupt) return;
      const masked = masker.push(chunk);
      if (masked === undefined) corrupt = true; // the loader source reports it; write nothing unmasked
      else if (masked.length) writer.write(masked);
    },
    close: () => writer.close(),
  };
}
