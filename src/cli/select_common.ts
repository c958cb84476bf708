/**
 * Selection helpers shared by merge and unmerge: turn parsed selectors
 * into pids with src/proc/select.ts, reporting skipped processes.
 *
 * @module
 */
import { ErrorKind, MergememError, usageError } from "../errors.ts";
import { selectProcesses } from "../proc/select.ts";
import { noSelector, type SelectorArgs } from "./args.ts";

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
      `${cmd} needs a process selection: --comm, --pid, --user, --cgroup, --unit or --all`,
    );
  }
  const r = selectProcesses({
    comms: sel.comms,
    pids: sel.pids,
    users: sel.users,
    all: sel.all,
    cgroups: sel.cgroups,
    units: sel.units,
  });
  const warnings = [...r.warnings, ...r.skipped.map((s) => s.message)];
  const pids = r.processes.map((p) => p.pid);
  if (pids.length === 0) {
    throw new MergememError(
      "no process matched the selection",
      ErrorKind.NothingScannable,
    );
  }
  // Named pids are a deliberate choice: merge refuses them across uids
  // rather than choosing a trust domain for the user.
  const onlyPids = sel.pids.length > 0 && sel.comms.length === 0 &&
    sel.users.length === 0 && !sel.all && sel.cgroups.length === 0 &&
    sel.units.length === 0;
  return { pids, warnings, onlyPids };
}
