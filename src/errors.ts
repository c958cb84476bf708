/**
 * Errors that mergemem reports to its user. Every failure a user can
 * cause or meet (bad input, missing permission, missing module, vanished
 * process) is a {@link MergememError} with a one-line message and an
 * {@link ErrorKind}; anything else is a bug. Only the CLI turns them into
 * process exit codes (src/cli/exit_codes.ts).
 *
 * @module
 */

/**
 * What kind of failure a {@link MergememError} is, so that callers can
 * tell them apart; the CLI turns each into its documented exit code
 * (src/cli/exit_codes.ts).
 */
export const ErrorKind = {
  /** Bad input: unknown option, malformed value, conflicting options. */
  Usage: "usage",
  /** No process matched the selection, or none had scannable memory. */
  NothingScannable: "nothing-scannable",
  /** Every selected process was skipped: permission denied for all. */
  AllDenied: "all-denied",
  /** Some processes were skipped and strictness was asked for. */
  Partial: "partial",
  /** The /dev/mergemem module is not loaded or not usable. */
  NoModule: "no-module",
  /** The module speaks an incompatible API version or lacks a feature. */
  ModuleMismatch: "module-mismatch",
  /** KSM is not available: the kernel was built without CONFIG_KSM. */
  NoKsm: "no-ksm",
  /** Refused by policy: a cross-user selection, or an unmerge that could
   * exhaust memory; an option overrides it. */
  Refused: "refused",
  /** The operation ran but failed part-way (a system call failed). */
  Failed: "failed",
  /** Another run held the KSM lock longer than the lock timeout. */
  LockBusy: "lock-busy",
  /** Interrupted by SIGINT or SIGTERM (state was restored first). */
  Interrupted: "interrupted",
} as const;

/** One of the {@link ErrorKind} values. */
export type ErrorKindValue = typeof ErrorKind[keyof typeof ErrorKind];

/** An error meant for the user: a one-line message and its kind. */
export class MergememError extends Error {
  /** What kind of failure it is (the CLI's exit code follows from it). */
  readonly kind: ErrorKindValue;
  /** An optional second line telling the user what to do about it. */
  readonly hint?: string;

  /** Builds the error from its message, kind and optional hint. */
  constructor(message: string, kind: ErrorKindValue, hint?: string) {
    super(message);
    this.name = "MergememError";
    this.kind = kind;
    this.hint = hint;
  }
}

/** Shorthand for a usage error ({@link ErrorKind.Usage}). */
export function usageError(message: string): MergememError {
  return new MergememError(message, ErrorKind.Usage, "see 'mergemem --help'");
}

/**
 * The one error for "every selected process was denied": `count` processes,
 * none readable (or markable) by the caller. ErrorKind.AllDenied.
 */
export function allDenied(count: number): MergememError {
  return new MergememError(
    `permission denied for all ${count} selected process(es)`,
    ErrorKind.AllDenied,
    "run as root (sudo) or as the processes' owner; Yama ptrace_scope or an LSM may also forbid it",
  );
}

/** A failed system call, carrying the errno name (ESRCH, EACCES, ...). */
export class SyscallError extends Error {
  /** The errno number. */
  readonly errno: number;
  /** The errno name, such as "ESRCH". */
  readonly code: string;
  /** The call that failed, such as "process_vm_readv". */
  readonly syscall: string;

  /** Builds "syscall: CODE (detail)" from the failed call and its errno. */
  constructor(syscall: string, errno: number, code: string, detail?: string) {
    super(`${syscall}: ${code}${detail ? ` (${detail})` : ""}`);
    this.name = "SyscallError";
    this.errno = errno;
    this.code = code;
    this.syscall = syscall;
  }
}

/**
 * The error for a target process that no longer exists (ESRCH), which the
 * scan reports as skipped. `syscall` and `detail` say where it was noticed.
 */
export function processGone(syscall: string, detail: string): SyscallError {
  return new SyscallError(syscall, 3, "ESRCH", detail);
}

/**
 * The errno code ("ENOENT", "EACCES", ...) of an error thrown by Deno's
 * file APIs or by {@link SyscallError}, or undefined.
 */
export function errnoCode(err: unknown): string | undefined {
  if (err instanceof SyscallError) return err.code;
  if (err instanceof Deno.errors.NotFound) return "ENOENT";
  if (err instanceof Deno.errors.PermissionDenied) return "EACCES";
  if (err && typeof err === "object" && "code" in err) {
    const code = (err as { code: unknown }).code;
    if (typeof code === "string") return code;
  }
  // Deno gives errnos it has no class for (ESRCH from opening a zombie's
  // /proc/PID/pagemap, mem or smaps) only as "... (os error 3) ...".
  if (err instanceof Error) {
    const m = /\(os error (\d+)\)/.exec(err.message);
    if (m) return ERRNO_NAMES[Number(m[1])];
  }
  return undefined;
}

/** errno names by number (Linux, asm-generic/errno-base.h). */
const ERRNO_NAMES: Record<number, string> = {
  1: "EPERM",
  2: "ENOENT",
  3: "ESRCH",
  4: "EINTR",
  5: "EIO",
  12: "ENOMEM",
  13: "EACCES",
  14: "EFAULT",
  16: "EBUSY",
  22: "EINVAL",
};

/** The message of anything thrown (an Error's message, else its text). */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
