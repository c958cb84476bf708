/**
 * Selection helpers shared by the commands: turn parsed selectors into
 * pids with src/proc/select.ts, reporting skipped processes.
 *
 * @module
 */
import {
  type ErrorDetail,
  ErrorKind,
  MergememError,
  usageError,
} from "../errors.ts";
import { selectProcesses } from "../proc/select.ts";
import { noSelector, selectionOf, type SelectorArgs } from "./args.ts";

/** How many skipped processes an error names before "and N more". */
const NAMED_SKIPS = 5;

/**
 * The error for a selection that left nothing to work on: why each
 * process the user named was skipped (gone, a zombie, denied), or else
 * that nothing matched. ErrorKind.NothingScannable.
 */
export function nothingSelected(
  skipped: readonly { message: string }[],
  detail?: ErrorDetail,
): MergememError {
  const more = skipped.length - NAMED_SKIPS;
  return new MergememError(
    skipped.length === 0
      ? "no process matched the selection"
      : skipped.slice(0, NAMED_SKIPS).map((s) => s.message).join("; ") +
        (more > 0 ? `; and ${more} more` : ""),
    ErrorKind.NothingScannable,
    detail,
  );
}

/**
 * Resolves selectors to pids. Unlike scan, merge and unmerge change other
 * processes, so they need an explicit selector (--all counts).
 */
export function selectPids(
  cmd: string,
  sel: SelectorArgs,
): { pids: number[]; warnings: string[]; onlyPids: boolean } {
  if (noSelector(sel)) {
    throw usageError(
      `${cmd} needs a process selection: --comm, --pid, --user, --cgroup, --unit, --container, --pod, --k8s-namespace, --image, --compose-project or --all`,
    );
  }
  const r = selectProcesses(selectionOf(sel));
  const warnings = [...r.warnings, ...r.skipped.map((s) => s.message)];
  const pids = r.processes.map((p) => p.pid);
  if (pids.length === 0) throw nothingSelected(r.skipped);
  // Named pids are a deliberate choice: merge refuses them across uids
  // rather than choosing a trust domain for the user.
  const onlyPids = sel.pids.length > 0 &&
    noSelector({ ...sel, pids: [] });
  return { pids, warnings, onlyPids };
}
