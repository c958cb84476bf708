/**
 * Errors that mergemem reports to its user, and the process exit codes
 * they map to. Every failure a user can cause or meet (bad input, missing
 * permission, missing module, vanished process) is a {@link MergememError}
 * with a one-line message; anything else is a bug and exits with
 * {@link ExitCode.Internal}.
 *
 * @module
 */

/** Documented process exit codes (see README.md, "Exit codes"). */
export const ExitCode = {
  /** Success. A partial scan without --strict also exits 0, with a warning. */
  Ok: 0,
  /** An unexpected internal error: a bug, please report it. */
  Internal: 1,
  /** Bad command line: unknown option, malformed value, conflicting flags. */
  Usage: 2,
  /** No process matched the selection, or none had scannable memory. */
  NothingScannable: 3,
  /** Every selected process was skipped: permission denied for all. */
  AllDenied: 4,
  /** Some processes were skipped and --strict was given. */
  Partial: 5,
  /** The /dev/mergemem module is not loaded or not usable. */
  NoModule: 6,
  /** The module speaks an incompatible API version or lacks a feature. */
  ModuleMismatch: 7,
  /** KSM is not available: the kernel was built without CONFIG_KSM. */
  NoKsm: 8,
  /** The operation was refused by policy: cross-user selection, or an
   * unmerge that could exhaust memory. Use the named flag to override. */
  Refused: 9,
  /** The operation ran but failed part-way (a system call failed). */
  Failed: 10,
  /** Another mergemem run held the KSM lock (/run/mergemem/lock) for
   * longer than the lock timeout (--lock-timeout). Nothing was changed. */
  LockBusy: 11,
  /** Interrupted by SIGINT or SIGTERM (state was restored first). */
  Interrupted: 130,
} as const;

/** One of the {@link ExitCode} values. */
export type ExitCodeValue = typeof ExitCode[keyof typeof ExitCode];

/** An error meant for the user: a one-line message and an exit code. */
export class MergememError extends Error {
  /** The exit code the CLI uses for this error. */
  readonly exitCode: ExitCodeValue;
  /** An optional second line telling the user what to do about it. */
  readonly hint?: string;

  /** Builds the error from its message, exit code and optional hint. */
  constructor(message: string, exitCode: ExitCodeValue, hint?: string) {
    super(message);
    this.name = "MergememError";
    this.exitCode = exitCode;
    this.hint = hint;
  }
}

/** Shorthand for a usage error (exit code 2). */
export function usageError(message: string): MergememError {
  return new MergememError(message, ExitCode.Usage, "see 'mergemem --help'");
}

/**
 * The one error for "every selected process was denied": `count` processes,
 * none readable (or markable) by the caller. ExitCode.AllDenied.
 */
export function allDenied(count: number): MergememError {
  return new MergememError(
    `permission denied for all ${count} selected process(es)`,
    ExitCode.AllDenied,
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
