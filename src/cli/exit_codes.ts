/**
 * The CLI's process exit codes, and the one mapping from a library error's
 * kind to its code: only the CLI turns errors into exit codes.
 *
 * @module
 */
import { ErrorKind, type ErrorKindValue } from "../errors.ts";

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

/** The exit code of each kind of {@link MergememError}. */
const EXIT_CODE_OF: Record<ErrorKindValue, ExitCodeValue> = {
  [ErrorKind.Usage]: ExitCode.Usage,
  [ErrorKind.NothingScannable]: ExitCode.NothingScannable,
  [ErrorKind.AllDenied]: ExitCode.AllDenied,
  [ErrorKind.Partial]: ExitCode.Partial,
  [ErrorKind.NoModule]: ExitCode.NoModule,
  [ErrorKind.ModuleMismatch]: ExitCode.ModuleMismatch,
  [ErrorKind.NoKsm]: ExitCode.NoKsm,
  [ErrorKind.Refused]: ExitCode.Refused,
  [ErrorKind.Failed]: ExitCode.Failed,
  [ErrorKind.LockBusy]: ExitCode.LockBusy,
  [ErrorKind.Interrupted]: ExitCode.Interrupted,
};

/** The exit code for an error of this kind. */
export function exitCodeOf(kind: ErrorKindValue): ExitCodeValue {
  return EXIT_CODE_OF[kind];
}
