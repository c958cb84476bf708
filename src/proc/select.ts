/**
 * Choosing the processes to scan.
 *
 * Criteria combine as a union: a process matching any given comm, pid,
 * user, cgroup, unit, container, pod or Kubernetes namespace is selected (`{comms: ["httpd"], pids: [42]}` is every httpd plus
 * process 42). An empty selection, or `all: true`, means
 * every process the caller may read: all of them for root (or anyone with
 * CAP_SYS_PTRACE), otherwise those whose real uid is the caller's.
 *
 * Kernel threads, zombies and mergemem's own process are never selected. An
 * explicit pid that does not exist, is a zombie (exited, not yet reaped) or
 * vanishes while being looked at is returned as skipped with ESRCH and a
 * message saying which; the caller decides what that means.
 *
 * @module
 */
import { errnoCode } from "../errors.ts";
import {
  isKernelThread,
  listPids,
  type ProcInfo,
  readProcInfo,
} from "./info.ts";
import { resolveUsers } from "./users.ts";
import { cgroupPids, resolveCgroup, unitCgroup } from "./cgroup.ts";
import { needsRuntimeNames, readTenancies, tenantPids } from "./containers.ts";

/** The processes of the selection's cgroups, units, containers, pods
 * and Kubernetes namespaces. */
function servicePids(sel: Selection): Set<number> {
  const dirs = [
    ...(sel.cgroups ?? []).map((c) => resolveCgroup(c)),
    ...(sel.units ?? []).map((u) => unitCgroup(u)),
  ];
  const pids = new Set(dirs.flatMap((d) => cgroupPids(d)));
  if (hasTenantSelector(sel)) {
    const names = needsRuntimeNames(sel);
    for (const pid of tenantPids(sel, readTenancies(undefined, { names }))) {
      pids.add(pid);
    }
  }
  return pids;
}

function hasTenantSelector(sel: Selection): boolean {
  return !!(sel.containers?.length || sel.pods?.length ||
    sel.k8sNamespaces?.length || sel.images?.length ||
    sel.composeProjects?.length);
}

/** Which processes to scan. */
export interface Selection {
  /** Exact command names (/proc/PID/comm, as `pgrep -x`). */
  comms?: string[];
  /** Process ids. */
  pids?: number[];
  /** User names or uids (matched against the real uid). */
  users?: (string | number)[];
  /** Every readable process (the same as an empty selection). */
  all?: boolean;
  /** cgroup v2 paths: every process in them and below (src/proc/cgroup.ts). */
  cgroups?: string[];
  /** systemd units: every process in the unit's cgroup. */
  units?: string[];
  /** Containers: names, ids or id prefixes (src/proc/containers.ts). */
  containers?: string[];
  /** Pods: Kubernetes (NAME, NAMESPACE/NAME) or podman, or UID prefixes. */
  pods?: string[];
  /** Kubernetes namespaces: every process of their pods. */
  k8sNamespaces?: string[];
  /** Images: every container running one (through podman or docker). */
  images?: string[];
  /** Docker Compose / podman-compose projects (through podman or docker). */
  composeProjects?: string[];
}

/** The reasons a process can be skipped. */
export type SkipReason = "ESRCH" | "EACCES" | "EPERM";

/** A selected process that could not be looked at. */
export interface SkippedProcess {
  /** Process id. */
  pid: number;
  /** Why it was skipped (errno name). */
  reason: SkipReason;
  /** One-line message for the user. */
  message: string;
}

/** The outcome of {@link selectProcesses}. */
export interface SelectionResult {
  /** The selected processes, by ascending pid. */
  processes: ProcInfo[];
  /** Explicitly selected processes that could not be read. */
  skipped: SkippedProcess[];
  /** Notes for the user (kernel threads asked for by pid, ...). */
  warnings: string[];
}

/** True if the current process has `cap` (a capability number) in CapEff. */
export function hasCapability(cap: number): boolean {
  try {
    const m = /^CapEff:\s+([0-9a-f]+)/m.exec(
      Deno.readTextFileSync("/proc/self/status"),
    );
    return m !== null && ((BigInt("0x" + m[1]) >> BigInt(cap)) & 1n) === 1n;
  } catch {
    return false;
  }
}

/** CAP_SYS_PTRACE: lets the caller read every process. */
export const CAP_SYS_PTRACE = 19;
/** CAP_SYS_ADMIN: makes pagemap report PFNs. */
export const CAP_SYS_ADMIN = 21;

/** Maps an error met while reading /proc/PID to a skip reason. */
export function skipReasonOf(err: unknown): SkipReason | undefined {
  const code = errnoCode(err);
  if (code === "ENOENT" || code === "ESRCH") return "ESRCH";
  if (code === "EACCES" || code === "EPERM") return code;
  return undefined;
}

/** A one-line message for a skip reason. */
export function skipMessage(reason: SkipReason, pid: number): string {
  switch (reason) {
    case "ESRCH":
      return `process ${pid} does not exist (or exited)`;
    case "EACCES":
      return `permission denied reading process ${pid}`;
    case "EPERM":
      return `operation not permitted on process ${pid}`;
  }
}

/** Selects processes; see the module documentation for the rules. */
export function selectProcesses(sel: Selection = {}): SelectionResult {
  const self = Deno.pid;
  const uids = sel.users?.length ? new Set(resolveUsers(sel.users)) : null;
  const comms = sel.comms?.length ? new Set(sel.comms) : null;
  const explicit = sel.pids?.length ? [...new Set(sel.pids)] : null;
  const inCgroups = sel.cgroups?.length || sel.units?.length ||
      hasTenantSelector(sel)
    ? servicePids(sel)
    : null;
  const everything = !sel.all && !uids && !comms && !explicit && !inCgroups;
  const privileged = hasCapability(CAP_SYS_PTRACE);
  const myUid = Deno.uid() ?? -1;

  const result: SelectionResult = { processes: [], skipped: [], warnings: [] };
  const onlyPids = explicit && !uids && !comms && !sel.all && !inCgroups;
  const candidates = onlyPids ? explicit : listPids();
  if (explicit && !onlyPids) {
    // Named pids that are not in /proc at all are still reported.
    for (const pid of explicit) {
      if (!candidates.includes(pid) && pid !== self) {
        result.skipped.push({
          pid,
          reason: "ESRCH",
          message: skipMessage("ESRCH", pid),
        });
      }
    }
  }
  const named = new Set(explicit ?? []);
  for (const pid of candidates.sort((a, b) => a - b)) {
    if (pid === self) {
      if (named.has(pid)) result.warnings.push(`pid ${pid} is mergemem itself`);
      continue;
    }
    let info: ProcInfo;
    try {
      info = readProcInfo(pid);
    } catch (err) {
      const reason = skipReasonOf(err);
      if (reason === undefined) throw err;
      // A process that vanished between listing and reading is simply gone
      // unless the user named it.
      if (named.has(pid)) {
        result.skipped.push({ pid, reason, message: skipMessage(reason, pid) });
      }
      continue;
    }
    if (isKernelThread(info)) {
      if (named.has(pid)) {
        result.warnings.push(`pid ${pid} is a kernel thread`);
      }
      continue;
    }
    if (info.state === "Z" || info.state === "X") {
      // A zombie has no memory left; to the user who named it, it is gone.
      if (named.has(pid)) {
        result.skipped.push({
          pid,
          reason: "ESRCH",
          message: info.state === "Z"
            ? `process ${pid} is a zombie (exited, not yet reaped)`
            : skipMessage("ESRCH", pid),
        });
      }
      continue;
    }
    const everyReadable = everything || sel.all;
    if (everyReadable) {
      if (!privileged && info.uid !== myUid) continue;
    } else if (
      !named.has(pid) && !comms?.has(info.comm) && !uids?.has(info.uid) &&
      !inCgroups?.has(pid)
    ) continue;
    result.processes.push(info);
  }
  return result;
}
