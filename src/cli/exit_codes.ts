/**
 * The CLI's process exit codes, and the one mapping from a library error's
 * kind to its code: only the CLI turns errors into exit codes.
 *
 * @module
 */
import { ErrorKind, type ErrorKindValue } from "../errors.ts";

/** Documented process exit codes ({@link EXIT_CODE_DOCS}; README.md, "Exit codes"). */
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

/**
 * What each exit code means, the one place it is written: `short` for the
 * "Exit codes:" line of each --help (and so of mergemem(8)), `meaning` for
 * README.md's "Exit codes" table, which tests/unit/exit_codes_test.ts
 * keeps equal to it.
 */
export const EXIT_CODE_DOCS: Record<
  keyof typeof ExitCode,
  { short: string; meaning: string }
> = {
  Ok: {
    short: "ok",
    meaning:
      "success (a partial scan without `--strict` also exits 0, with a warning)",
  },
  Internal: {
    short: "internal error",
    meaning:
      "internal error: a bug; rerun with `MERGEMEM_DEBUG=1` and report it",
  },
  Usage: {
    short: "usage",
    meaning: "usage error: unknown option, malformed value",
  },
  NothingScannable: {
    short: "nothing scannable",
    meaning:
      "nothing scannable: no process matched, or none had memory to scan",
  },
  AllDenied: {
    short: "all denied",
    meaning: "every selected process was skipped for lack of permission",
  },
  Partial: {
    short: "partial",
    meaning: "some processes were skipped and `--strict` was given",
  },
  NoModule: {
    short: "no module",
    meaning:
      "the kernel module is not loaded or not usable (the hint says how to install and load it)",
  },
  ModuleMismatch: {
    short: "module mismatch",
    meaning: "the module speaks an incompatible API version or lacks a feature",
  },
  NoKsm: {
    short: "no KSM",
    meaning: "the kernel has no KSM (built without CONFIG_KSM)",
  },
  Refused: {
    short: "refused by policy",
    meaning:
      "refused by policy: explicit pids of several trust domains, another trust domain holds mergeable memory on the host (`--cross-user`, `--trust-domain`), unmerge without memory (`--force`)",
  },
  Failed: {
    short: "failed",
    meaning: "the operation failed part-way",
  },
  LockBusy: {
    short: "KSM lock busy",
    meaning:
      "another mergemem run held the KSM lock (`/run/mergemem/lock`) past `--lock-timeout`; nothing was changed",
  },
  Interrupted: {
    short: "interrupted",
    meaning:
      "interrupted by SIGINT or SIGTERM, after restoring ksmd's settings",
  },
};

/** The name of each exit code, by value. */
const NAME_OF = new Map(
  (Object.entries(ExitCode) as [keyof typeof ExitCode, ExitCodeValue][]).map((
    [name, code],
  ) => [code, name]),
);

/**
 * One exit code of a command's "Exit codes:" line: the code, or the code
 * and what it means for that command ("a partial scan warns").
 */
export type ExitCodeEntry = ExitCodeValue | [ExitCodeValue, string];

/**
 * The "Exit codes:" paragraph of a --help text, made from the codes the
 * command exits with: "Exit codes: 0 ok, 2 usage (...), ...", each code
 * with its short meaning ({@link EXIT_CODE_DOCS}) and the command's note,
 * wrapped at 76 columns.
 */
export function exitCodesHelp(entries: ExitCodeEntry[]): string {
  const items = entries.map((e) => {
    const [code, note] = typeof e === "number" ? [e, undefined] : e;
    const short = EXIT_CODE_DOCS[NAME_OF.get(code)!].short;
    // A code and its short meaning stay on one line (NUL: glue).
    const glued = `${code} ${short}`.replaceAll(" ", "\0");
    return `${glued}${note ? ` (${note})` : ""}`;
  });
  const lines: string[] = [];
  let line = "Exit codes:";
  for (const word of `${items.join(", ")}.`.split(" ")) {
    if (line.length + 1 + word.length > 76) {
      lines.push(line);
      line = word;
    } else line += ` ${word}`;
  }
  lines.push(line);
  return lines.join("\n").replaceAll("\0", " ");
}

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
