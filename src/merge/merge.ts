/**
 * merge(): the whole merge as a library call. It scans the selected
 * processes with the kernel back-end (src/scan/, hashing through
 * /dev/mergemem), chooses the VMAs worth marking from the scan's
 * per-mapping counts (src/merge/plan.ts), marks them with
 * MERGEMEM_IOC_MERGE, runs ksmd in a burst that restores its settings
 * exactly (src/ksm/burst.ts), and reports predicted against achieved
 * savings as "mergemem.merge/1".
 *
 * Achieved pages are the global delta of pages_sharing (plus ksm_zero_pages
 * where the kernel counts it): the pages KSM freed. It is global because
 * KSM is; other mergeable memory on the host can add to it.
 *
 * @module
 */
import { ExitCode, MergememError } from "../errors.ts";
import { createKernelBackend } from "../kmod/backend.ts";
import {
  closeProcMem,
  type ModuleHandle,
  openModule,
  openProcMem,
} from "../kmod/client.ts";
import {
  MERGEMEM_FEATURE_MERGE,
  MERGEMEM_FEATURE_PAGEINFO,
} from "../kmod/uapi.ts";
import {
  type BurstResult,
  guardSignals,
  runBurst,
  throwIfInterrupted,
} from "../ksm/burst.ts";
import { mergingPages } from "../ksm/process.ts";
import { KSM_DIR, readKsm, readKsmNumber, requireKsm } from "../ksm/sysfs.ts";
import { readUid } from "../proc/info.ts";
import { VERSION } from "../version.ts";
import { DEFAULT_MIN_SAVING, type MergePlan, planMerge } from "./plan.ts";
import { checkTrustDomain, otherUidsMergeable } from "./trust.ts";

/**
 * Progress of a merge: `done` of `total` units of the current phase.
 * scan: pages hashed (`scan` numbers the scan, 1 unless rescanning);
 * mark: processes marked; ksmd: pages merged of the prediction.
 */
export interface MergeProgress {
  /** The current phase. */
  phase: "scan" | "mark" | "ksmd";
  /** Units done in this phase. */
  done: number;
  /** Units expected in this phase. */
  total: number;
  /** Which scan (1 = the first), during the scan phase. */
  scan?: number;
}

/** What to merge and how. */
export interface MergeOptions {
  /** The selected process ids. */
  pids: number[];
  /** Minimum net saving per VMA in pages (default 16). */
  minSaving?: number;
  /** Give up waiting for ksmd after this many seconds (default 60). */
  timeoutSeconds?: number;
  /** Plan and report only; mark nothing. */
  dryRun?: boolean;
  /** Mark, make sure ksmd runs, and return without waiting. */
  noWait?: boolean;
  /** Allow a selection spanning several uids. */
  crossUser?: boolean;
  /** pages_to_scan during the burst (default 10000). */
  burstPagesToScan?: number;
  /**
   * Re-check the plan by scanning the chosen VMAs again instead of
   * recounting the first scan in memory (PlanOptions.rescan; default
   * false, for comparison and cross-checks).
   */
  rescan?: boolean;
  /** A module handle to use (default: open /dev/mergemem). */
  module?: ModuleHandle;
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
  /** VMAs newly marked mergeable by MERGE. */
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
}

/** The "mergemem.merge/1" report (docs/json-schema.md). */
export interface MergeReport {
  /** The schema identifier, "mergemem.merge/1". */
  schema: "mergemem.merge/1";
  /** The mergemem version that made the report. */
  mergemem_version: string;
  /** Planned only (--dry-run): nothing marked, ksmd untouched. */
  dry_run: boolean;
  /** Marked and run=1 ensured without a burst or restore (--no-wait). */
  no_wait: boolean;
  /** The module's API version and version string. */
  module: { api: number; version: string };
  /** Minimum net saving per VMA, in pages (--min-saving). */
  min_saving_pages: number;
  /** Page size in bytes. */
  page_size: number;
  /** Present candidate pages the first (whole) scan read. */
  pages_scanned: number;
  /** Scans the plan took (src/merge/plan.ts). */
  scans: number;
  /** Pages KSM should free: saveable_pages of the chosen VMAs alone. */
  predicted_saveable_pages: number;
  /** predicted_saveable_pages * page_size, in bytes. */
  predicted_saveable_bytes: number;
  /** Pages freed: global delta of pages_sharing (+ ksm_zero_pages). */
  achieved_pages: number;
  /** achieved_pages * page_size, in bytes. */
  achieved_bytes: number;
  /** KSM's global pages_sharing before marking, in pages. */
  pages_sharing_before: number;
  /** KSM's global pages_sharing at the end, in pages. */
  pages_sharing_after: number;
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
  /** Notes for the user (cross-user, other uids' mergeable memory, skips). */
  warnings: string[];
  /** Selected processes left out, with the reason. */
  skipped: { pid: number; reason: string }[];
  /** One row per scanned process, by ascending pid. */
  processes: MergeProcessReport[];
}

function saved(dir: string): number {
  return (readKsmNumber("pages_sharing", dir) ?? 0) +
    (readKsmNumber("ksm_zero_pages", dir) ?? 0);
}

/**
 * Merges the selected processes' duplicate pages. See the module doc.
 *
 * @throws MergememError NoKsm, NoModule, ModuleMismatch, Refused (uids),
 *   AllDenied (no process accessible), NothingScannable, Interrupted.
 */
export async function merge(opts: MergeOptions): Promise<MergeReport> {
  const dir = opts.ksmDir ?? KSM_DIR;
  requireKsm(dir);
  const warnings: string[] = [];
  const skipped: { pid: number; reason: string }[] = [];

  // Trust domain first: refuse before touching anything.
  const uids = new Map<number, number>();
  for (const pid of opts.pids) {
    const uid = readUid(pid);
    if (uid === undefined) {
      skipped.push({ pid, reason: "gone" });
      warnings.push(`skipped pid ${pid}: gone`);
    } else uids.set(pid, uid);
  }
  if (uids.size === 0) {
    throw new MergememError(
      "no selected process exists",
      ExitCode.NothingScannable,
    );
  }
  const trust = checkTrustDomain(uids, opts.crossUser ?? false);
  warnings.push(...trust.warnings);
  warnings.push(...otherUidsMergeable(trust.uids, new Set(uids.keys())));

  const own = opts.module === undefined;
  const mod = opts.module ??
    openModule({
      features: MERGEMEM_FEATURE_PAGEINFO | MERGEMEM_FEATURE_MERGE,
    });
  const backend = createKernelBackend(mod);
  const guard = opts.signal ? undefined : guardSignals();
  const signal = opts.signal ?? guard!.signal;
  const fds = new Map<number, number>();
  try {
    const ksm = readKsm(dir);
    const minSaving = opts.minSaving ?? DEFAULT_MIN_SAVING;
    const plan: MergePlan = await planMerge({
      pids: [...uids.keys()],
      backend,
      minSaving,
      rescan: opts.rescan,
      onProgress: (n, done, total) => {
        throwIfInterrupted(signal);
        opts.onProgress?.({ phase: "scan", scan: n, done, total });
      },
    });
    throwIfInterrupted(signal);
    warnings.push(...plan.warnings);
    for (const s of plan.skipped) {
      skipped.push({ pid: s.pid, reason: s.skip.message });
      warnings.push(`skipped pid ${s.pid}: ${s.skip.message}`);
    }
    if (plan.processes.length === 0) {
      const denied = plan.skipped.some((s) => s.skip.reason !== "ESRCH");
      throw new MergememError(
        denied
          ? "permission denied for every selected process"
          : "every selected process is gone",
        denied ? ExitCode.AllDenied : ExitCode.NothingScannable,
        denied ? "run as root or as the processes' owner" : undefined,
      );
    }

    const rows = new Map<number, MergeProcessReport>();
    for (const p of plan.processes) {
      rows.set(p.pid, {
        pid: p.pid,
        comm: p.comm,
        uid: p.uid,
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
      });
    }
    const sharing0 = readKsmNumber("pages_sharing", dir) ?? 0;
    const saved0 = saved(dir);
    const profit0 = readKsmNumber("general_profit", dir) ?? null;

    let burst: BurstResult | undefined;
    if (!opts.dryRun) {
      let marked = 0;
      for (const p of plan.processes) {
        opts.onProgress?.({
          phase: "mark",
          done: marked++,
          total: plan.processes.length,
        });
        if (p.vmas.length === 0) continue;
        const row = rows.get(p.pid)!;
        let fd: number;
        try {
          fd = openProcMem(p.pid);
        } catch (err) {
          if (!(err instanceof MergememError)) throw err;
          warnings.push(`pid ${p.pid}: ${err.message}`);
          continue;
        }
        fds.set(p.pid, fd);
        for (const v of p.vmas) {
          throwIfInterrupted(signal);
          try {
            const r = mod.merge(fd, BigInt(v.start), BigInt(v.end));
            row.vmas_marked += r.vmasChanged;
            row.bytes_marked += r.bytesChanged;
            row.vmas_already_mergeable += r.vmasUnchanged;
            row.vmas_skipped += r.vmasSkipped;
          } catch (err) {
            // The process exited or exec'd: nothing left to merge there.
            const code = (err as { code?: string }).code;
            if (code === "ESRCH") {
              warnings.push(`pid ${p.pid} exited while marking`);
              break;
            }
            throw err;
          }
        }
      }
      const anything = [...rows.values()].some((r) =>
        r.vmas_marked + r.vmas_already_mergeable > 0
      );
      if (anything) {
        const predicted = plan.predictedSaveablePages;
        opts.onProgress?.({ phase: "ksmd", done: 0, total: predicted });
        burst = await runBurst({
          dir,
          noWait: opts.noWait,
          pagesToScan: opts.burstPagesToScan,
          timeoutMs: (opts.timeoutSeconds ?? 60) * 1000,
          target: plan.predictedSaveablePages,
          progress: () => saved(dir) - saved0,
          signal,
          onProgress: (n) =>
            opts.onProgress?.({ phase: "ksmd", done: n, total: predicted }),
        });
      }
    }
    for (const row of rows.values()) {
      row.merging_pages_after = mergingPages(row.pid);
    }
    const after = readKsm(dir);
    const achieved = opts.dryRun ? 0 : saved(dir) - saved0;
    const ps = plan.page_size;
    return {
      schema: "mergemem.merge/1",
      mergemem_version: VERSION,
      dry_run: opts.dryRun ?? false,
      no_wait: opts.noWait ?? false,
      module: { api: mod.api, version: mod.moduleVersion },
      min_saving_pages: minSaving,
      page_size: ps,
      pages_scanned: plan.pagesScanned,
      scans: plan.scans,
      predicted_saveable_pages: plan.predictedSaveablePages,
      predicted_saveable_bytes: plan.predictedSaveablePages * ps,
      achieved_pages: achieved,
      achieved_bytes: achieved * ps,
      pages_sharing_before: sharing0,
      pages_sharing_after: after.counters.pages_sharing ?? 0,
      general_profit_before: profit0,
      general_profit_after: after.counters.general_profit ?? null,
      seconds: burst?.seconds ?? 0,
      ksmd_end: burst?.ended ?? "not-run",
      ksmd_full_scans: burst?.fullScans ?? 0,
      ksm_settings_before: burst?.settingsBefore ?? ksm.knobs,
      ksm_settings_after: burst?.settingsAfter ?? after.knobs,
      ksm_settings_restore_mismatch: burst?.restoreMismatch ?? {},
      warnings,
      skipped,
      processes: [...rows.values()],
    };
  } finally {
    for (const fd of fds.values()) closeProcMem(fd);
    backend.dispose?.();
    if (own) mod.close();
    guard?.dispose();
  }
}
