/**
 * The CLI's hints: the second line ("mergemem: hint: ...") after an
 * error, telling the user what to do about it. The library throws errors
 * with a kind and, where the kind alone does not say enough, a reason
 * (src/errors.ts); this is the one table from those to the hint text, so
 * that only the CLI names its own flags and the install steps.
 *
 * @module
 */
import {
  type ErrorDetail,
  ErrorKind,
  type ErrorKindValue,
  ErrorReason,
  type ErrorReasonValue,
  MergememError,
} from "../errors.ts";
import type { JournalStaleReason, JournalStatus } from "../status/status.ts";

/** How the module is installed: the Debian package, or install.sh elsewhere. */
const INSTALL_MODULE = "apt-get install mergemem-dkms, or sudo ./install.sh";

/** The hint for each reason; a function where the hint needs its data. */
const BY_REASON: {
  [R in ErrorReasonValue]:
    | string
    | ((detail: Extract<ErrorDetail, { reason: R }>) => string);
} = {
  [ErrorReason.DeviceDenied]:
    "the module gives /dev/mergemem mode 0666 itself (no udev rule): if " +
    "'ls -l /dev/mergemem' shows less, something changed it; else a " +
    "security module (AppArmor, SELinux) or a container's device rules deny it",
  [ErrorReason.PtraceUnsupported]:
    `load the mergemem module instead (${INSTALL_MODULE})`,
  [ErrorReason.NotMergemem]:
    `is another driver using that name? reinstall: ${INSTALL_MODULE}`,
  [ErrorReason.ModuleTooOld]: `upgrade the module: ${INSTALL_MODULE}`,
  [ErrorReason.NoMemoryMerge]:
    "mark the chosen mappings instead (without --whole-process)",
  [ErrorReason.WholeProcessEngine]:
    "pass --engine ptrace with --whole-process, or leave --whole-process out",
  [ErrorReason.KsmUnmerging]: "set /sys/kernel/mm/ksm/run to 0 or 1 first",
  [ErrorReason.CrossDomain]:
    "select one domain (--user, --container, --pod, --k8s-namespace), or widen it (--cross-user, --trust-domain) if they trust each other",
  [ErrorReason.KsmHeld]:
    "unmerge the other domain first (mergemem unmerge --pid PIDS), or widen the domain (--cross-user, --trust-domain host) if they trust each other",
  [ErrorReason.NoSuchContainer]:
    "see 'podman ps', 'docker ps' or /var/log/pods for the names there are",
  [ErrorReason.LowMemory]: "free memory first, or pass --force",
  [ErrorReason.JournalUnwritable]:
    "nothing was changed; the journal lets a later run repair a crash",
  [ErrorReason.NeedsRoot]: "changing KSM settings or marking memory needs root",
  [ErrorReason.FramesHidden]: "run as root",
  [ErrorReason.NoCgroup2]:
    "--cgroup and --unit need cgroup v2 (mount -t cgroup2 none /sys/fs/cgroup)",
  [ErrorReason.NoSuchCgroup]:
    "see /proc/PID/cgroup or 'systemctl status UNIT' for a process's cgroup",
  [ErrorReason.UnitNotRunning]: (d) =>
    `check with 'systemctl status ${d.unit}'`,
  [ErrorReason.OwnProcessesOnly]:
    "without root only your own processes are scanned: try sudo",
  [ErrorReason.UnknownCommand]: (d) =>
    `commands: ${d.commands.join(", ")}; see 'mergemem --help'`,
};

/** The hint for an error without a reason, by its kind (if it has one). */
const BY_KIND: Partial<Record<ErrorKindValue, string>> = {
  [ErrorKind.Usage]: "see 'mergemem --help'",
  [ErrorKind.AllDenied]:
    "run as root (sudo) or as the processes' owner; Yama ptrace_scope or an LSM may also forbid it",
  [ErrorKind.NoModule]:
    `install it (${INSTALL_MODULE}), then sudo modprobe mergemem`,
  [ErrorKind.ModuleMismatch]:
    `install matching versions of the module and the tool (${INSTALL_MODULE})`,
  [ErrorKind.NoKsm]:
    "the kernel was built without CONFIG_KSM; mergemem needs it to merge pages",
  [ErrorKind.LockBusy]:
    "another mergemem run is changing ksmd's settings or marking memory; wait for it, or raise --lock-timeout",
};

/**
 * The note after a merge that left processes of other uids out by policy
 * (the report lists them, flag-free, in trust_domain.skipped_by_policy).
 */
export const SKIPPED_BY_POLICY_NOTE =
  "processes of other trust domains were left out: --cross-user (uids) or --trust-domain (containers, pods, namespaces) widens the domain";

/** The hint after a status whose journal is stale, by why it was not
 * restored (src/status/status.ts); none while another run restores it. */
const STALE_JOURNAL: Record<JournalStaleReason, string | undefined> = {
  "needs-root":
    "run 'sudo mergemem status' to restore them (a merge or unmerge as root does too)",
  "lock-held": undefined,
  "failed":
    "'mergemem status --json' shows the settings to restore (journal.settings)",
};

/** The hint line after a status report's stale journal, if any. */
export function journalHintLine(
  journal: JournalStatus | null,
): string | undefined {
  const why = journal?.state === "stale" ? journal.stale_reason : null;
  const hint = why === null ? undefined : STALE_JOURNAL[why];
  return hint === undefined ? undefined : `mergemem: hint: ${hint}`;
}

/** The hint after an internal error (a bug, not a MergememError). */
const INTERNAL_ERROR_HINT =
  "this is a bug; rerun with MERGEMEM_DEBUG=1 for details and report it";

/**
 * The line the CLI writes after an error's message, if it has a hint:
 * anything thrown that is not a MergememError is a bug.
 */
export function hintLine(err: unknown): string | undefined {
  const hint = err instanceof MergememError ? hintOf(err) : INTERNAL_ERROR_HINT;
  return hint === undefined ? undefined : `mergemem: hint: ${hint}`;
}

/** The hint for a user-facing error, or undefined if it has none. */
export function hintOf(err: MergememError): string | undefined {
  const detail = err.detail;
  if (detail === undefined) return BY_KIND[err.kind];
  const hint = BY_REASON[detail.reason];
  // The table's type pairs each reason's function with its own detail.
  return typeof hint === "string"
    ? hint
    : (hint as (d: ErrorDetail) => string)(detail);
}
