/**
 * merge(): the whole merge as a library call. It scans the selected
 * processes (through /dev/mergemem when it is loaded, else from user
 * space), keeps one trust domain (src/merge/trust.ts), chooses the VMAs
 * worth marking (src/merge/plan.ts), marks them with the module or the
 * ptrace engine (chosen in src/compose/engines.ts), runs ksmd in a burst that restores
 * its settings exactly (src/ksm/burst.ts), and reports predicted against
 * achieved savings as "mergemem.merge/3" (docs/json-schema.md).
 *
 * Achieved pages are measured on the selection itself
 * (src/merge/achieved.ts): the distinct frames behind the chosen VMAs'
 * candidate pages, before marking and after the burst. KSM's global
 * counters are reported beside it, since other KSM users on the host move
 * them too.
 *
 * @module
 */
import { allDenied, ErrorKind, ErrorReason, MergememError } from "../errors.ts";
import {
  type EngineChoice,
  openMarker,
  resolveBackend,
} from "../compose/engines.ts";
import {
  addOutcome,
  emptyOutcome,
  type MarkEngine,
  type Marker,
  type ThpChange,
  type VmaRange,
} from "../engine/marker.ts";
import { classifyMarkError } from "../engine/mark_error.ts";
import type { HashBackend } from "../engine/hash_backend.ts";
import type { ModuleHandle } from "../kmod/client.ts";
import {
  type BurstResult,
  DEFAULT_BURST_TIMEOUT_SECONDS,
  guardSignals,
  runBurst,
  throwIfInterrupted,
} from "../ksm/burst.ts";
import { type KsmLockOptions, withKsmLock } from "../ksm/lock.ts";
import { mergingPages } from "../ksm/process.ts";
import { addThpVmas, pruneThpRecords, type ThpVma } from "../ksm/thp_record.ts";
import { readSmaps } from "../pages/maps.ts";
import {
  KSM_DIR,
  type KsmState,
  readKsm,
  readKsmNumber,
  requireKsm,
} from "../ksm/sysfs.ts";
import { readComm, readUid } from "../proc/info.ts";
import { errnoCode } from "../errors.ts";
import { createUserBackend } from "../scan/user_backend.ts";
import { getChecksum } from "../hash/mod.ts";
import { VERSION } from "../version.ts";
import {
  type FrameSets,
  FramesHidden,
  freedNeighbours,
  freedSince,
  hugePageNeighbours,
  readSelectionFrames,
  ZeroPageFilter,
} from "./achieved.ts";
import {
  choosePlan,
  DEFAULT_MIN_SAVING,
  type MergePlan,
  type PlanScan,
  type ProcessPlan,
  scanForPlan,
} from "./plan.ts";
import {
  assertSoleHolder,
  chooseDomain,
  DEFAULT_TRUST_LEVEL,
  type DomainChoice,
  domainOf,
  type DomainPolicy,
  type DomainRules,
  type HeldDomain,
  type TrustDomain,
  type TrustLevel,
  wideningWarnings,
} from "./trust.ts";
import { ksmHolders } from "../ksm/holders.ts";
import { type Tenancy, TenancyReader } from "../proc/tenant.ts";
import { nameContainers } from "../proc/containers.ts";
import { listRuntimeContainers, type RuntimeListing } from "../proc/runtime.ts";

/**
 * Progress of a merge: `done` of `total` units of the current phase.
 * scan: pages hashed; mark: processes marked; ksmd: pages freed of the
 * prediction.
 */
export interface MergeProgress {
  /** The current phase. */
  phase: "scan" | "mark" | "ksmd";
  /** Units done in this phase. */
  done: number;
  /** Units expected in this phase. */
  total: number;
}

/**
 * What to merge and how. Marking and the burst run under the KSM lock
 * (src/ksm/lock.ts): `lockTimeoutSeconds`, `onLockWait` and `runDir` are
 * its options.
 */
export interface MergeOptions
  extends Pick<KsmLockOptions, "lockTimeoutSeconds" | "onLockWait" | "runDir"> {
  /** The selected process ids. */
  pids: number[];
  /**
   * A selection spanning several trust domains (src/merge/trust.ts):
   * "refuse" it (the default, right for explicit pids), or merge one
   * domain, the one already holding KSM or else the one with the most
   * saveable memory, and skip the others ("largest": right for
   * --comm/--user/--all on servers whose master runs as root and whose
   * workers as www-data).
   */
  domainPolicy?: DomainPolicy;
  /** One domain across the uids of a tenant (warned). */
  crossUser?: boolean;
  /** The tenant level of trust domains (default "namespace"). */
  trustLevel?: TrustLevel;
  /** Marking engine (default "auto": the module if loaded, else ptrace). */
  engine?: EngineChoice;
  /**
   * Mark whole processes with PR_SET_MEMORY_MERGE (6.4+, ptrace engine)
   * instead of the chosen VMAs: also covers mappings created later.
   */
  wholeProcess?: boolean;
  /**
   * Leave the chosen VMAs eligible for transparent huge pages. By default
   * each VMA the kernel would give huge pages (smaps THPeligible) is set
   * MADV_NOHUGEPAGE before it is marked, as khugepaged would otherwise
   * collapse merged pages back into private huge pages (README "Huge
   * pages"); unmerge undoes it (src/ksm/thp_record.ts).
   */
  keepThp?: boolean;
  /** Minimum net saving per VMA in pages (default 16). */
  minSaving?: number;
  /**
   * Give up waiting for ksmd after this many seconds (default
   * {@link DEFAULT_BURST_TIMEOUT_SECONDS}).
   */
  timeoutSeconds?: number;
  /** Plan and report only; mark nothing. */
  dryRun?: boolean;
  /** Mark, make sure ksmd runs, and return without waiting. */
  noWait?: boolean;
  /** pages_to_scan during the burst (default 10000). */
  burstPagesToScan?: number;
  /** A module handle to use (implies the module engine). */
  module?: ModuleHandle;
  /** A marker to use (tests); overrides engine and module. */
  marker?: Marker;
  /** The KSM sysfs directory. */
  ksmDir?: string;
  /** Progress callback, called often; see {@link MergeProgress}. */
  onProgress?: (p: MergeProgress) => void;
  /** Abort signal; by default SIGINT/SIGTERM are caught while merging. */
  signal?: AbortSignal;
}

/** One process in the merge report. */
export interface MergeProcessReport {
  /** Process id. */
  pid: number;
  /** Command name (/proc/PID/comm). */
  comm: string;
  /** Real uid of the process. */
  uid: number | null;
  /** Its container, or null (src/proc/tenant.ts). */
  container: Tenancy["container"];
  /** Its pod (Kubernetes: with namespace and name when known), or null. */
  pod: Tenancy["pod"];
  /** VMAs newly marked mergeable. */
  vmas_marked: number;
  /** Total size of the newly marked VMAs, in bytes. */
  bytes_marked: number;
  /** Chosen VMAs that already were mergeable (left as they were). */
  vmas_already_mergeable: number;
  /** Chosen VMAs KSM cannot handle (shared, VM_IO, ...), left untouched. */
  vmas_skipped: number;
  /** VMAs the plan chose (marked, already mergeable or skipped). */
  vmas_chosen: number;
  /** pages_duplicate summed over its chosen VMAs (candidate pages). */
  duplicate_pages: number;
  /** This process's share of predicted_saveable_pages. */
  predicted_saveable_pages: number;
  /** /proc/PID/ksm_merging_pages before marking, in pages. */
  merging_pages_before: number;
  /** /proc/PID/ksm_merging_pages at the end, in pages. */
  merging_pages_after: number;
  /** ptrace engine: the longest time the process was held stopped, ms. */
  hold_ms_max: number | null;
  /** The chosen VMAs this merge set MADV_NOHUGEPAGE on (unmerge undoes it). */
  thp_nohugepage: ThpVma[];
}

/** The trust domain the merge kept to. */
export interface TrustDomainReport {
  /** The tenant level ("namespace": namespaces, pods, containers). */
  level: TrustLevel;
  /** Whether the domain spans the uids of its tenant (--cross-user). */
  cross_user: boolean;
  /** How it was chosen: the selection's only domain, or one of several
   * (the one holding KSM already, else the largest; others skipped). */
  policy: DomainChoice["policy"];
  /** The domain merged, for people ("container web-1, uid 33"). */
  domain: string;
  /** The uids whose processes were merged. */
  uids: number[];
  /** Every uid in the selection. */
  uids_selected: number[];
  /** Every domain in the selection. */
  domains_selected: string[];
  /** Processes left out because they belong to another domain. */
  skipped_by_policy: {
    pid: number;
    comm: string;
    uid: number;
    domain: string;
  }[];
}

/** The merge report's schema identifier (docs/json-schema.md). */
export const MERGE_SCHEMA = "mergemem.merge/3";

/** The "mergemem.merge/3" report (docs/json-schema.md). */
export interface MergeReport {
  /** The schema identifier. */
  schema: typeof MERGE_SCHEMA;
  /** The mergemem version that made the report. */
  mergemem_version: string;
  /** Planned only (--dry-run): nothing marked, ksmd untouched. */
  dry_run: boolean;
  /** Marked and run=1 ensured without a burst or restore (--no-wait). */
  no_wait: boolean;
  /** The marking engine used, and why it was chosen. */
  engine: MarkEngine;
  /** Why that engine ("requested: ptrace", "auto: /dev/mergemem is loaded"). */
  engine_reason: string;
  /** Whole processes were marked (PR_SET_MEMORY_MERGE). */
  whole_process: boolean;
  /** "nohugepage": chosen THP-eligible VMAs were set MADV_NOHUGEPAGE;
   * "keep": left as they were (keepThp). */
  thp: "nohugepage" | "keep";
  /** Where the scan hashed pages: "kernel" or "user". */
  scan_backend: string;
  /** Whether the scan's reads marked the pages accessed (README "Page aging"). */
  scan_marks_pages_accessed: boolean;
  /** The trust domain kept to. */
  trust_domain: TrustDomainReport;
  /** Minimum net saving per VMA, in pages (--min-saving). */
  min_saving_pages: number;
  /** Page size in bytes. */
  page_size: number;
  /** Present candidate pages the scan read (chosen domain). */
  pages_scanned: number;
  /** Pages KSM should free: saveable_pages of the chosen VMAs alone. */
  predicted_saveable_pages: number;
  /** predicted_saveable_pages * page_size, in bytes. */
  predicted_saveable_bytes: number;
  /**
   * Pages this selection freed: distinct frames behind the chosen VMAs'
   * candidate pages before marking minus after the burst, over the
   * processes alive at both ends ("selection-frames"); or, without PFNs
   * (no CAP_SYS_ADMIN), the global delta of pages_sharing +
   * ksm_zero_pages ("global-counters").
   */
  achieved_pages: number;
  /**
   * Of achieved_pages, the frames freed beyond the chosen VMAs: small
   * pages of transparent huge pages that pages left out (a server's root
   * parent, since the fork) shared with chosen pages, which no page of the
   * selection maps since KSM split the huge page to merge (Linux 6.12 and
   * later map a split huge page's zero-filled small pages to the shared
   * zero page). Not part of the prediction.
   */
  achieved_outside_chosen_pages: number;
  /** achieved_pages * page_size, in bytes. */
  achieved_bytes: number;
  /** How achieved_pages was measured. */
  achieved_method: "selection-frames" | "global-counters";
  /** Distinct frames of the chosen VMAs before marking (null without PFNs). */
  frames_before: number | null;
  /** The same at the end (null without PFNs). */
  frames_after: number | null;
  /** KSM's global pages_sharing before marking, in pages. */
  pages_sharing_before: number;
  /** KSM's global pages_sharing at the end, in pages. */
  pages_sharing_after: number;
  /** KSM's global ksm_zero_pages before (null where the kernel lacks it). */
  ksm_zero_pages_before: number | null;
  /** The same at the end. */
  ksm_zero_pages_after: number | null;
  /** KSM's general_profit before marking, in bytes; null if absent. */
  general_profit_before: number | null;
  /** KSM's general_profit at the end, in bytes; null if absent. */
  general_profit_after: number | null;
  /** Seconds from run=1 to the end of the burst; 0 if none was waited for. */
  seconds: number;
  /** Why the ksmd burst ended; "not-run" when there was none. */
  ksmd_end: BurstResult["ended"] | "not-run";
  /** Full scans ksmd completed during the burst. */
  ksmd_full_scans: number;
  /** Every writable /sys/kernel/mm/ksm setting before, as strings. */
  ksm_settings_before: Record<string, string>;
  /** The same settings after the burst (restored), as strings. */
  ksm_settings_after: Record<string, string>;
  /** Settings that could not be restored exactly (name: wanted/got). */
  ksm_settings_restore_mismatch: Record<
    string,
    { wanted: string; got: string }
  >;
  /** Notes for the user (trust domain, other uids' mergeable memory). */
  warnings: string[];
  /** Selected processes left out, with the reason. */
  skipped: { pid: number; reason: string }[];
  /** One row per merged process, by ascending pid. */
  processes: MergeProcessReport[];
}

/** What merge() reports besides the rows: notes and skipped processes. */
interface Notes {
  /** Warnings for the report, in the order they arose. */
  warnings: string[];
  /** Selected processes left out, with the reason. */
  skipped: { pid: number; reason: string }[];
  /** The warning on unreadable KSM states was given. */
  holdersWarned?: boolean;
}

/** A process left out of the merge, for the report. */
function skip(notes: Notes, pid: number, reason: string): void {
  notes.skipped.push({ pid, reason });
}

/**
 * Merges the selected processes' duplicate pages. See the module doc.
 * The steps: {@link readUids}, {@link openEngine}, {@link planDomain},
 * {@link markAndBurst} (measure before, mark, then burst, under the KSM
 * lock; a dry run only measures), {@link finalReport}. Everything opened
 * (marker, hash back-end, signal guard, zero-page filter) is closed when
 * merge() returns or throws.
 *
 * @throws MergememError NoKsm, NoModule (engine "module"), ModuleMismatch,
 *   Refused (uids, policy "refuse"), AllDenied (no process accessible),
 *   NothingScannable, Interrupted.
 */
export async function merge(opts: MergeOptions): Promise<MergeReport> {
  const dir = opts.ksmDir ?? KSM_DIR;
  requireKsm(dir);
  const notes: Notes = { warnings: [], skipped: [] };
  const rules: DomainRules = {
    level: opts.trustLevel ?? DEFAULT_TRUST_LEVEL,
    crossUser: opts.crossUser ?? false,
  };
  const tenancy = new TenancyReader();
  const names = tenancyNamer();
  const members = readMembers(opts.pids, rules, tenancy, names, notes);
  using open = new DisposableStack();
  const engine = await openEngine(opts, open);
  // By default SIGINT/SIGTERM abort the merge (with KSM restored).
  const signal = opts.signal ??
    open.adopt(guardSignals(), (g) => g.dispose()).signal;
  const zero = open.adopt(new ZeroPageFilter(), (z) => z.close());
  const ksm = readKsm(dir);
  // With --whole-process every eligible mapping gets marked, so the
  // prediction counts them all.
  const minSaving = opts.wholeProcess
    ? 0
    : opts.minSaving ?? DEFAULT_MIN_SAVING;
  const held = () => heldDomains(rules, tenancy, names, notes);
  const planned = await planDomain({
    members,
    rules,
    held: held(),
    policy: opts.domainPolicy ?? "refuse",
    minSaving,
    backend: engine.backend,
    signal,
    onProgress: opts.onProgress,
  }, notes);
  const measure = () => measureBefore(planned.plan, members, dir, zero, notes);
  const { base, burst } = opts.dryRun
    ? { base: measure(), burst: undefined }
    : await markAndBurst(opts, dir, engine.marker, planned.plan, measure, {
      notes,
      signal,
      // Another run may have marked another domain since the plan.
      beforeMark: () => assertSoleHolder(held(), planned.domain.chosen),
    });
  return finalReport({
    opts,
    dir,
    members,
    rules,
    ksm,
    minSaving,
    engine,
    planned,
    base,
    burst,
    notes,
  });
}

/** A selected process: its uid, where it runs, and its trust domain. */
interface Member {
  /** Real uid. */
  uid: number;
  /** Container, pod, user namespace. */
  tenancy: Tenancy;
  /** Its trust domain under the merge's rules. */
  domain: TrustDomain;
}

/**
 * Step 1: the real uid, tenancy and trust domain of each selected
 * process. A process already gone is skipped ("gone"); one whose cgroup
 * or user namespace cannot be read is skipped too: with its tenant
 * unknown, it must not be merged with anyone.
 *
 * @throws MergememError NothingScannable when none is left.
 */
function readMembers(
  pids: number[],
  rules: DomainRules,
  reader: TenancyReader,
  names: Namer,
  notes: Notes,
): Map<number, Member> {
  const found = new Map<number, { uid: number; tenancy: Tenancy }>();
  let denied = 0;
  for (const pid of pids) {
    const uid = readUid(pid);
    if (uid === undefined) {
      skip(notes, pid, "gone");
      continue;
    }
    try {
      found.set(pid, { uid, tenancy: reader.read(pid) });
    } catch (err) {
      const code = errnoCode(err);
      if (code === "EACCES" || code === "EPERM") denied++;
      skip(
        notes,
        pid,
        code === "ENOENT" || code === "ESRCH"
          ? "gone"
          : `its trust domain is unknown: /proc/${pid}/cgroup or ns/user: ${
            code ?? String(err)
          }`,
      );
    }
  }
  names([...found.values()].map((f) => f.tenancy));
  const members = new Map<number, Member>();
  for (const [pid, { uid, tenancy }] of found) {
    members.set(pid, { uid, tenancy, domain: domainOf(uid, tenancy, rules) });
  }
  if (members.size === 0) {
    // Reading a process's user namespace needs the same right as reading
    // its memory: without it, permission is the answer (exit 4).
    if (denied > 0) throw allDenied(denied);
    throw new MergememError(
      notes.skipped.some((s) => s.reason !== "gone")
        ? `no selected process could be placed in a trust domain: ${
          notes.skipped[0].reason
        }`
        : "no selected process exists",
      ErrorKind.NothingScannable,
    );
  }
  return members;
}

/** Fills in container and podman pod names for the labels. */
type Namer = (ts: Tenancy[]) => void;

/**
 * A {@link Namer} for one merge: asks the runtimes on the host once, and
 * only when there are containers (names change between runs).
 */
function tenancyNamer(): Namer {
  let listing: RuntimeListing | undefined;
  return (ts) => {
    if (!ts.some((t) => t.container)) return;
    listing ??= listRuntimeContainers();
    nameContainers(new Map(ts.map((t, i) => [i, t])), listing);
  };
}

/**
 * The trust domains that hold mergeable memory on the host now
 * (src/ksm/holders.ts), each with its processes. A holder whose tenancy
 * cannot be read is a domain of its own.
 */
function heldDomains(
  rules: DomainRules,
  reader: TenancyReader,
  names: Namer,
  notes: Notes,
): HeldDomain[] {
  const scan = ksmHolders(new Set([Deno.pid]));
  if (scan.unreadable > 0 && !notes.holdersWarned) {
    notes.holdersWarned = true;
    notes.warnings.push(
      `the KSM state of ${scan.unreadable} process(es) could not be read ` +
        "(not root): the trust boundary is checked against the others only",
    );
  }
  const byKey = new Map<string, HeldDomain>();
  for (const h of scan.holders) {
    let domain: TrustDomain;
    try {
      const t = reader.read(h.pid);
      names([t]);
      domain = domainOf(h.uid, t, rules);
    } catch (err) {
      const code = errnoCode(err);
      if (code === "ENOENT" || code === "ESRCH") continue; // gone
      domain = {
        key: `unknown:${h.pid}`,
        label: `process ${h.pid} (${h.comm}) of unknown tenancy`,
      };
    }
    const d = byKey.get(domain.key) ?? { domain, processes: [] };
    d.processes.push({ pid: h.pid, comm: h.comm });
    byKey.set(domain.key, d);
  }
  return [...byKey.values()];
}

/** The marking engine and the hash back-end of a merge. */
interface Engine {
  /** The marker (opts.marker, or the one src/compose/engines.ts chose). */
  marker: Marker;
  /** Why that marker, for the report's engine_reason. */
  reason: string;
  /** The hash back-end the scan uses. */
  backend: HashBackend;
}

/**
 * Step 2: opens the marker (unless opts.marker is given) and the hash
 * back-end, each handed to `open` to be closed with it.
 *
 * @throws MergememError Usage (whole-process marking with an engine that
 *   cannot), NoModule, ModuleMismatch.
 */
async function openEngine(
  opts: MergeOptions,
  open: DisposableStack,
): Promise<Engine> {
  const marker = open.adopt(
    opts.marker ?? await openMarker(opts.engine ?? "auto", opts.module),
    (m) => m.close(),
  );
  if (opts.wholeProcess && !marker.markWholeProcess) {
    throw new MergememError(
      `whole-process marking needs the ptrace engine (PR_SET_MEMORY_MERGE), not the ${marker.engine} engine`,
      ErrorKind.Usage,
      { reason: ErrorReason.WholeProcessEngine },
    );
  }
  const { backend } = resolveBackend(
    "auto",
    () => createUserBackend({ checksum: getChecksum("xxh64") }),
  );
  open.defer(() => backend.dispose?.());
  return { marker, reason: engineReason(opts, marker), backend };
}

/** Why this marker: the report's engine_reason. */
function engineReason(opts: MergeOptions, marker: Marker): string {
  if (opts.marker) return "given";
  if (opts.module) return "module handle given";
  if (opts.engine && opts.engine !== "auto") {
    return `requested: ${opts.engine}`;
  }
  return marker.engine === "module"
    ? "auto: /dev/mergemem is loaded"
    : "auto: /dev/mergemem is not loaded";
}

/** What {@link planDomain} plans from. */
interface DomainInput {
  /** The selected processes that exist, with their domains. */
  members: Map<number, Member>;
  /** How domains are drawn. */
  rules: DomainRules;
  /** The domains holding mergeable memory on the host. */
  held: HeldDomain[];
  /** The policy for a selection spanning domains (src/merge/trust.ts). */
  policy: DomainPolicy;
  /** Minimum net saving per VMA, in pages. */
  minSaving: number;
  /** The hash back-end. */
  backend: HashBackend;
  /** Aborts the scan (Interrupted). */
  signal: AbortSignal;
  /** merge()'s progress callback. */
  onProgress?: (p: MergeProgress) => void;
}

/** The chosen trust domain and its plan. */
interface DomainPlan {
  /** The domain choice (policy, domain, warnings). */
  domain: DomainChoice;
  /** The plan of the chosen domain's processes. */
  plan: MergePlan;
  /** Selected processes of other domains, left out by policy. */
  skippedByPolicy: TrustDomainReport["skipped_by_policy"];
}

/**
 * Step 3: scans the whole selection once, chooses the trust domain
 * (src/merge/trust.ts) and plans it: every domain is planned from the one
 * scan, and the pages of the processes left out pin the frames they
 * share with the merged ones (a server's root parent and its workers).
 * Records the domain's and the plan's warnings and skipped processes.
 *
 * @throws MergememError Refused (domains, KSM held by another domain),
 *   AllDenied, NothingScannable (nothing left to plan), Interrupted.
 */
async function planDomain(
  input: DomainInput,
  notes: Notes,
): Promise<DomainPlan> {
  const { members, minSaving, signal } = input;
  let scanned: PlanScan | undefined;
  const scanAll = async () => {
    scanned ??= await scanForPlan({
      pids: [...members.keys()],
      backend: input.backend,
      onProgress: (_n, done, total) => {
        throwIfInterrupted(signal);
        input.onProgress?.({ phase: "scan", done, total });
      },
    });
    throwIfInterrupted(signal);
    return scanned;
  };
  const plans = new Map<string, MergePlan>();
  const domain = await chooseDomain(
    new Map([...members].map(([pid, m]) => [pid, m.domain])),
    input.policy,
    async (key, pids) => {
      const plan = choosePlan(await scanAll(), {
        minSaving,
        markable: new Set(pids),
      });
      plans.set(key, plan);
      return {
        pages: plan.predictedSaveablePages,
        live: plan.processes.length,
      };
    },
    input.held,
  );
  notes.warnings.push(...domain.warnings);
  const inside = new Set<number>();
  const skippedByPolicy: DomainPlan["skippedByPolicy"] = [];
  for (const [pid, m] of members) {
    if (m.domain.key === domain.chosen.key) inside.add(pid);
    else {
      skippedByPolicy.push({
        pid,
        uid: m.uid,
        comm: readComm(pid),
        domain: m.domain.label,
      });
    }
  }
  notes.warnings.push(
    ...wideningWarnings(
      [...inside].map((pid) => members.get(pid)!),
      input.rules,
    ),
  );
  // The chosen domain's plan, unless choosing it already planned it.
  const plan = plans.get(domain.chosen.key) ??
    choosePlan(await scanAll(), { minSaving, markable: inside });
  for (const s of skippedByPolicy) {
    skip(notes, s.pid, `${s.domain}: another trust domain`);
  }
  notes.warnings.push(...plan.warnings);
  for (const s of plan.skipped) {
    // The scan's ESRCH message names the file it met; for the report a
    // vanished process (exited, exec'd, a zombie) is simply "exited".
    skip(notes, s.pid, s.skip.reason === "ESRCH" ? "exited" : s.skip.message);
  }
  if (plan.processes.length === 0) {
    const denied = plan.skipped.filter((s) => s.skip.reason !== "ESRCH");
    if (denied.length > 0) throw allDenied(denied.length);
    throw new MergememError(
      skippedByPolicy.length === 0
        ? "every selected process is gone"
        : `every process of ${domain.chosen.label} is gone (the ${skippedByPolicy.length} of other trust domains are not merged by policy)`,
      ErrorKind.NothingScannable,
    );
  }
  return { domain, plan, skippedByPolicy };
}

/** What is measured before marking, and how to measure again. */
interface Baseline {
  /** One report row per planned process, by pid (marking fills them). */
  rows: Map<number, MergeProcessReport>;
  /** The chosen VMAs, per pid. */
  ranges: Map<number, VmaRange[]>;
  /** Distinct frames of the chosen VMAs; undefined without PFNs. */
  framesBefore: FrameSets | undefined;
  /** KSM's pages_sharing before marking. */
  sharing0: number;
  /** KSM's ksm_zero_pages before marking (null where absent). */
  zero0: number | null;
  /** KSM's general_profit before marking (null where absent). */
  profit0: number | null;
  /**
   * Pages freed so far: from the selection's frames, or without PFNs from
   * KSM's global counters (before and after are then null).
   */
  achievedNow(): { before: number | null; after: number | null; freed: number };
  /**
   * Frames freed beyond the chosen VMAs by the last {@link achievedNow}:
   * left-out pages' frames in huge pages the merge split
   * (src/merge/achieved.ts); 0 without PFNs.
   */
  freedOutsideChosen(): number;
  /** pages_sharing + ksm_zero_pages risen since the baseline (a hint). */
  globalSince(): number;
  /** Whether a planned process was still there at the last measure. */
  anyLeft(): boolean;
}

/** A row of the report for a planned process, before marking. */
function newRow(p: ProcessPlan, t: Tenancy | undefined): MergeProcessReport {
  return {
    pid: p.pid,
    comm: p.comm,
    uid: p.uid,
    container: t?.container ?? null,
    pod: t?.pod ?? null,
    vmas_marked: 0,
    bytes_marked: 0,
    vmas_already_mergeable: 0,
    vmas_skipped: 0,
    vmas_chosen: p.vmas.length,
    duplicate_pages: p.vmas.reduce((a, v) => a + v.pages_duplicate, 0),
    predicted_saveable_pages: p.vmas.reduce(
      (a, v) => a + v.saveable_pages,
      0,
    ),
    merging_pages_before: mergingPages(p.pid),
    merging_pages_after: 0,
    hold_ms_max: null,
    thp_nohugepage: [],
  };
}

/**
 * Step 4: the report rows (with ksm_merging_pages before), the distinct
 * frames behind the chosen VMAs (src/merge/achieved.ts; without PFNs a
 * warning, and KSM's global counters instead) and KSM's counters, before
 * anything is marked.
 */
function measureBefore(
  plan: MergePlan,
  members: Map<number, Member>,
  dir: string,
  zero: ZeroPageFilter,
  notes: Notes,
): Baseline {
  const rows = new Map<number, MergeProcessReport>();
  for (const p of plan.processes) {
    rows.set(p.pid, newRow(p, members.get(p.pid)?.tenancy));
  }
  const ranges = chosenRanges(plan);
  let framesBefore: FrameSets | undefined;
  try {
    framesBefore = readSelectionFrames(ranges, zero);
  } catch (err) {
    if (!(err instanceof FramesHidden)) throw err;
    notes.warnings.push(
      "achieved is measured with KSM's global counters: PFNs need CAP_SYS_ADMIN",
    );
  }
  const sharing0 = readKsmNumber("pages_sharing", dir) ?? 0;
  const zero0 = readKsmNumber("ksm_zero_pages", dir) ?? null;
  const global0 = globalSaved(dir);
  const profit0 = readKsmNumber("general_profit", dir) ?? null;
  const freed = framesBefore
    ? freedSince(framesBefore, plan.pinnedFrames)
    : undefined;
  const neighbours = framesBefore
    ? hugePageNeighbours(plan.hugeNeighbours)
    : undefined;
  // Processes of the selection still there at the last measure.
  let survivors = ranges.size;
  let last: FrameSets | undefined;
  return {
    rows,
    ranges,
    framesBefore,
    sharing0,
    zero0,
    profit0,
    achievedNow() {
      if (!freed) {
        return { before: null, after: null, freed: globalSaved(dir) - global0 };
      }
      const now = readSelectionFrames(ranges, zero);
      survivors = now.size;
      last = now;
      return freed(now);
    },
    freedOutsideChosen: () =>
      neighbours && last ? freedNeighbours(neighbours, last) : 0,
    globalSince: () => globalSaved(dir) - global0,
    anyLeft: () => survivors > 0,
  };
}

/** The abort signal and the notes of a merge, for its steps. */
interface RunContext {
  /** Warnings and skipped processes. */
  notes: Notes;
  /** Aborts (Interrupted), with KSM's settings restored. */
  signal: AbortSignal;
  /** Runs under the lock before anything is marked; throws to refuse. */
  beforeMark?: () => void;
}

/**
 * Steps 4 to 6 under the KSM lock (one run at a time marks memory and
 * drives ksmd; taking the lock also repairs the settings a crashed run
 * left behind): `measure` ({@link measureBefore}), {@link markPlanned},
 * then {@link burstKsmd}. The baseline is taken under the lock, so that
 * a run that waited for another one does not count that run's saving as
 * its own.
 *
 * @throws MergememError LockBusy, Interrupted, and the burst's errors.
 */
async function markAndBurst(
  opts: MergeOptions,
  dir: string,
  marker: Marker,
  plan: MergePlan,
  measure: () => Baseline,
  ctx: RunContext,
): Promise<{ base: Baseline; burst: BurstResult | undefined }> {
  return await withKsmLock({
    lockTimeoutSeconds: opts.lockTimeoutSeconds,
    onLockWait: opts.onLockWait,
    runDir: opts.runDir,
    lockHolder: "mergemem merge",
    signal: ctx.signal,
  }, async (held) => {
    ctx.notes.warnings.push(...held.warnings);
    ctx.beforeMark?.();
    const base = measure();
    await markPlanned(opts, marker, plan, base, ctx);
    throwIfInterrupted(ctx.signal);
    return {
      base,
      burst: await burstKsmd(opts, dir, plan, base, ctx.signal),
    };
  });
}

/**
 * Step 5: marks each planned process's chosen VMAs (or, with
 * wholeProcess, the whole process) and fills its row. A process the
 * marker cannot mark (src/engine/mark_error.ts) is skipped with its
 * reason and its row dropped; any other error ends the merge.
 */
async function markPlanned(
  opts: MergeOptions,
  marker: Marker,
  plan: MergePlan,
  base: Baseline,
  { notes, signal }: RunContext,
): Promise<void> {
  let done = 0;
  let thpUnsupported = 0;
  pruneThpRecords({ runDir: opts.runDir });
  for (const p of plan.processes) {
    opts.onProgress?.({
      phase: "mark",
      done: done++,
      total: plan.processes.length,
    });
    if (p.vmas.length === 0 && !opts.wholeProcess) continue;
    throwIfInterrupted(signal);
    const row = base.rows.get(p.pid)!;
    try {
      const out = emptyOutcome();
      addOutcome(
        out,
        opts.wholeProcess
          ? await marker.markWholeProcess!(p.pid, true, signal)
          : await marker.markProcess(
            p.pid,
            opts.keepThp
              ? base.ranges.get(p.pid)!
              : withNoHugepage(p.pid, base.ranges.get(p.pid)!),
            "merge",
            signal,
          ),
      );
      row.thp_nohugepage = out.thpChanged.map(thpVmaOf);
      addThpVmas(p.pid, row.thp_nohugepage, { runDir: opts.runDir });
      thpUnsupported += out.thpUnsupported;
      row.vmas_marked = out.vmasChanged;
      row.bytes_marked = out.bytesChanged;
      row.vmas_already_mergeable = out.vmasUnchanged;
      row.vmas_skipped = out.vmasSkipped;
      row.hold_ms_max = out.holdMs;
    } catch (err) {
      const reason = markSkipReason(err);
      if (reason === undefined) throw err;
      skip(notes, p.pid, reason);
      base.rows.delete(p.pid);
    }
  }
  if (thpUnsupported > 0) {
    notes.warnings.push(
      `${thpUnsupported} mapping(s) were left eligible for transparent huge ` +
        `pages: the ${marker.engine} engine cannot set MADV_NOHUGEPAGE ` +
        `here (update the module), so khugepaged may undo part of the saving`,
    );
  }
}

/**
 * The ranges, each asking for MADV_NOHUGEPAGE where the kernel would put
 * transparent huge pages (smaps THPeligible). A process whose smaps cannot
 * be read is left to the marker, which reports why.
 */
function withNoHugepage(pid: number, ranges: VmaRange[]): VmaRange[] {
  let eligible: Set<bigint>;
  try {
    eligible = new Set(
      readSmaps(pid).filter((m) => m.thpEligible).map((m) =>
        BigInt(m.startHex)
      ),
    );
  } catch {
    return ranges;
  }
  return ranges.map((r) =>
    eligible.has(r.start) ? { ...r, thp: "nohugepage" as const } : r
  );
}

/** A marker's THP change as the report and the THP record hold it. */
function thpVmaOf(c: ThpChange): ThpVma {
  return {
    start: `0x${c.start.toString(16)}`,
    end: `0x${c.end.toString(16)}`,
    had_hugepage: c.hadHugepage,
  };
}

/**
 * Why a process could not be marked, for the report; undefined for an
 * error that is not about that process (a bug, an interrupt).
 */
function markSkipReason(err: unknown): string | undefined {
  const f = classifyMarkError(err);
  switch (f.kind) {
    case "skipped":
    case "denied":
      return f.reason;
    case "exited":
      return "exited while marking";
    default:
      return undefined;
  }
}

/**
 * Step 6: when anything is mergeable now, runs ksmd in a burst
 * (src/ksm/burst.ts) until the selection freed the predicted pages, stops
 * freeing, is gone or the timeout passes, and restores its settings;
 * with noWait only makes sure ksmd runs. Undefined when nothing was
 * marked (no burst).
 */
async function burstKsmd(
  opts: MergeOptions,
  dir: string,
  plan: MergePlan,
  base: Baseline,
  signal: AbortSignal,
): Promise<BurstResult | undefined> {
  const anything = [...base.rows.values()].some((r) =>
    r.vmas_marked + r.vmas_already_mergeable > 0
  );
  if (!anything) return undefined;
  const predicted = plan.predictedSaveablePages;
  opts.onProgress?.({ phase: "ksmd", done: 0, total: predicted });
  return await runBurst({
    dir,
    noWait: opts.noWait,
    pagesToScan: opts.burstPagesToScan,
    timeoutMs: (opts.timeoutSeconds ?? DEFAULT_BURST_TIMEOUT_SECONDS) * 1000,
    target: predicted,
    progress: () => base.achievedNow().freed,
    hint: base.globalSince,
    anyLeft: base.anyLeft,
    signal,
    runDir: opts.runDir,
    onProgress: (n) =>
      opts.onProgress?.({ phase: "ksmd", done: n, total: predicted }),
  });
}

/** Everything {@link finalReport} reports. */
interface ReportInput {
  opts: MergeOptions;
  dir: string;
  members: Map<number, Member>;
  rules: DomainRules;
  /** KSM's state before anything was done. */
  ksm: KsmState;
  minSaving: number;
  engine: Engine;
  planned: DomainPlan;
  base: Baseline;
  /** The burst; undefined for none (dry run, nothing marked). */
  burst: BurstResult | undefined;
  notes: Notes;
}

/**
 * Step 7: measures the end state (ksm_merging_pages of each row, KSM's
 * settings and counters, the pages the selection freed) and builds the
 * "mergemem.merge/3" report.
 */
function finalReport(r: ReportInput): MergeReport {
  const { opts, dir, planned, base, burst } = r;
  const { plan } = planned;
  for (const row of base.rows.values()) {
    row.merging_pages_after = mergingPages(row.pid);
  }
  const after = readKsm(dir);
  const end = opts.dryRun
    ? { before: null, after: null, freed: 0 }
    : base.achievedNow();
  const outside = opts.dryRun ? 0 : base.freedOutsideChosen();
  const ps = plan.page_size;
  const frames = base.framesBefore && !opts.dryRun;
  return {
    schema: MERGE_SCHEMA,
    mergemem_version: VERSION,
    dry_run: opts.dryRun ?? false,
    no_wait: opts.noWait ?? false,
    engine: r.engine.marker.engine,
    engine_reason: r.engine.reason,
    whole_process: opts.wholeProcess ?? false,
    thp: opts.keepThp ? "keep" : "nohugepage",
    scan_backend: r.engine.backend.name,
    scan_marks_pages_accessed: r.engine.backend.marksAccessed,
    trust_domain: trustReport(r),
    min_saving_pages: r.minSaving,
    page_size: ps,
    pages_scanned: plan.pagesScanned,
    predicted_saveable_pages: plan.predictedSaveablePages,
    predicted_saveable_bytes: plan.predictedSaveablePages * ps,
    achieved_pages: end.freed + outside,
    achieved_bytes: (end.freed + outside) * ps,
    achieved_outside_chosen_pages: outside,
    achieved_method: base.framesBefore ? "selection-frames" : "global-counters",
    frames_before: frames ? end.before : null,
    frames_after: frames ? end.after : null,
    pages_sharing_before: base.sharing0,
    pages_sharing_after: after.counters.pages_sharing ?? 0,
    ksm_zero_pages_before: base.zero0,
    ksm_zero_pages_after: readKsmNumber("ksm_zero_pages", dir) ?? null,
    general_profit_before: base.profit0,
    general_profit_after: after.counters.general_profit ?? null,
    seconds: burst?.seconds ?? 0,
    ksmd_end: burst?.ended ?? "not-run",
    ksmd_full_scans: burst?.fullScans ?? 0,
    ksm_settings_before: burst?.settingsBefore ?? r.ksm.knobs,
    ksm_settings_after: burst?.settingsAfter ?? after.knobs,
    ksm_settings_restore_mismatch: burst?.restoreMismatch ?? {},
    warnings: r.notes.warnings,
    skipped: r.notes.skipped,
    processes: [...base.rows.values()],
  };
}

/** The report's trust_domain section. */
function trustReport(r: ReportInput): TrustDomainReport {
  const { domain } = r.planned;
  const all = [...r.members.values()];
  const inside = all.filter((m) => m.domain.key === domain.chosen.key);
  const sorted = (xs: number[]) => [...new Set(xs)].sort((a, b) => a - b);
  return {
    level: r.rules.level,
    cross_user: r.rules.crossUser,
    policy: domain.policy,
    domain: domain.chosen.label,
    uids: sorted(inside.map((m) => m.uid)),
    uids_selected: sorted(all.map((m) => m.uid)),
    domains_selected: [...new Set(all.map((m) => m.domain.label))].sort(),
    skipped_by_policy: r.planned.skippedByPolicy,
  };
}

/** KSM's global saving: pages_sharing + ksm_zero_pages. */
function globalSaved(dir: string): number {
  return (readKsmNumber("pages_sharing", dir) ?? 0) +
    (readKsmNumber("ksm_zero_pages", dir) ?? 0);
}

/** The chosen VMAs of a plan, per pid, as byte ranges. */
function chosenRanges(plan: MergePlan): Map<number, VmaRange[]> {
  const out = new Map<number, VmaRange[]>();
  for (const p of plan.processes) {
    out.set(
      p.pid,
      p.vmas.map((v) => ({ start: BigInt(v.start), end: BigInt(v.end) })),
    );
  }
  return out;
}
