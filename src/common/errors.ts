/**
 * Typed errors with stable codes. Library code throws these; only the CLI
 * entry point turns them into one line on stderr and an exit status.
 */
export class HeadertapError extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** The user asked for something invalid: a flag, a value, a config key. Exit 2. */
export class UsageError extends HeadertapError {
  constructor(message: string) {
    super('HT_ERR_USAGE', message);
  }
}

/** The machine cannot run headertap as asked (privileges, kernel features). Exit 2. */
export class EnvironmentError extends HeadertapError {
  constructor(message: string) {
    super('HT_ERR_ENVIRONMENT', message);
  }
}

/** The eBPF loader failed or stopped unexpectedly. */
export class LoaderError extends HeadertapError {
  constructor(
    message: string,
    readonly exitCode: number | null,
  ) {
    super('HT_ERR_LOADER', message);
  }
}
