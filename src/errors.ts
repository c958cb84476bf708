/**
 * Errors that mergemem reports to its user. Every failure a user can
 * cause or meet (bad input, missing permission, missing module, vanished
 * process) is a {@link MergememError} with a one-line message and an
 * {@link ErrorKind}, and an {@link ErrorReason} where the kind alone does
 * not say what the user can do; anything else is a bug. Only the CLI turns
 * them into process exit codes (src/cli/exit_codes.ts) and hints
 * (src/cli/hints.ts).
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

/**
 * Why a {@link MergememError} happened, where its kind alone does not say
 * what the user can do about it. The CLI picks its hint from the reason, or
 * else from the kind (src/cli/hints.ts); the library names no CLI flag and
 * writes no hint. Each reason belongs to one kind, named first below.
 */
export const ErrorReason = {
  /** NoModule: /dev/mergemem exists but the caller may not open it. */
  DeviceDenied: "device-denied",
  /** NoModule: the ptrace engine does not run on this host's architecture. */
  PtraceUnsupported: "ptrace-unsupported",
  /** ModuleMismatch: /dev/mergemem does not answer the handshake (ENOTTY). */
  NotMergemem: "not-mergemem",
  /** ModuleMismatch: the module lacks a feature this mergemem needs. */
  ModuleTooOld: "module-too-old",
  /** Usage: whole-process marking needs PR_SET_MEMORY_MERGE (Linux 6.4+). */
  NoMemoryMerge: "no-memory-merge",
  /** Usage: whole-process marking needs the ptrace engine. */
  WholeProcessEngine: "whole-process-engine",
  /** Refused: KSM is unmerging everything (run=2). */
  KsmUnmerging: "ksm-unmerging",
  /** Refused: explicit pids span several trust domains (uids, containers,
   * pods, namespaces). */
  CrossDomain: "cross-domain",
  /** Refused: another trust domain holds mergeable memory on the host. */
  KsmHeld: "ksm-held",
  /** Refused: unmerging could exhaust memory. */
  LowMemory: "low-memory",
  /** Failed: the KSM journal could not be written; nothing was changed. */
  JournalUnwritable: "journal-unwritable",
  /** Failed: a KSM setting or the KSM lock was denied to a non-root caller. */
  NeedsRoot: "needs-root",
  /** AllDenied: pagemap hides frame numbers without CAP_SYS_ADMIN. */
  FramesHidden: "frames-hidden",
  /** NothingScannable: no cgroup v2 hierarchy is mounted. */
  NoCgroup2: "no-cgroup2",
  /** NothingScannable: the named cgroup does not exist. */
  NoSuchCgroup: "no-such-cgroup",
  /** NothingScannable: no container, pod or namespace of that name; the
   * message lists those there are. */
  NoSuchContainer: "no-such-container",
  /** NothingScannable: a systemd unit has no cgroup; carries the `unit`. */
  UnitNotRunning: "unit-not-running",
  /** NothingScannable: a caller without root selected every process and
   * owns none that could be scanned. */
  OwnProcessesOnly: "own-processes-only",
  /** Usage: no such command; carries the `commands` there are. */
  UnknownCommand: "unknown-command",
} as const;

/** One of the {@link ErrorReason} values. */
export type ErrorReasonValue = typeof ErrorReason[keyof typeof ErrorReason];

/** The reasons whose hint needs data, with that data. */
type ReasonWithData =
  | { reason: typeof ErrorReason.UnitNotRunning; unit: string }
  | { reason: typeof ErrorReason.UnknownCommand; commands: readonly string[] };

/**
 * A {@link MergememError}'s reason, with the data its hint needs (a
 * unit-not-running error names its `unit`).
 */
export type ErrorDetail =
  | { reason: Exclude<ErrorReasonValue, ReasonWithData["reason"]> }
  | ReasonWithData;

/** An error meant for the user: a one-line message, its kind and reason. */
export class MergememError extends Error {
  /** What kind of failure it is (the CLI's exit code follows from it). */
  readonly kind: ErrorKindValue;
  /** Why, where the kind does not say enough for the CLI's hint. */
  readonly detail?: ErrorDetail;

  /** Builds the error from its message, kind and optional reason. */
  constructor(message: string, kind: ErrorKindValue, detail?: ErrorDetail) {
    super(message);
    this.name = "MergememError";
    this.kind = kind;
    this.detail = detail;
  }

  /** The reason of {@link detail}, if any. */
  get reason(): ErrorReasonValue | undefined {
    return this.detail?.reason;
  }
}

/** Shorthand for a usage error ({@link ErrorKind.Usage}). */
export function usageError(message: string): MergememError {
  return new MergememError(message, ErrorKind.Usage);
}

/**
 * The one error for "every selected process was denied": `count` processes,
 * none readable (or markable) by the caller. ErrorKind.AllDenied.
 */
export function allDenied(count: number): MergememError {
  return new MergememError(
    `permission denied for all ${count} selected process(es)`,
    ErrorKind.AllDenied,
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

// errno names for the values mergemem meets, by number (Linux; x86-64
// and arm64 agree): the one table, also for src/ffi/libc.ts (errnoName).
const ERRNO_NAMES: Readonly<Record<number, string>> = {
  1: "EPERM",
  2: "ENOENT",
  3: "ESRCH",
  4: "EINTR",
  5: "EIO",
  7: "E2BIG",
  9: "EBADF",
  11: "EAGAIN",
  12: "ENOMEM",
  13: "EACCES",
  14: "EFAULT",
  16: "EBUSY",
  19: "ENODEV",
  22: "EINVAL",
  25: "ENOTTY",
  38: "ENOSYS",
  77: "EBADFD",
  95: "EOPNOTSUPP",
};

/** A symbolic name for an errno value, such as "ESRCH" ("errno N" else). */
export function errnoName(value: number): string {
  return ERRNO_NAMES[value] ?? `errno ${value}`;
}

/** The message of anything thrown (an Error's message, else its text). */
export function messageOf(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
