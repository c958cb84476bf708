/**
 * unmerge(): breaks the merges in the selected processes' mergeable VMAs
 * (MERGEMEM_IOC_UNMERGE, which is MADV_UNMERGEABLE) and reports
 * "mergemem.unmerge/1".
 *
 * Unmerging allocates a private copy of every merged page, so it first
 * checks that MemAvailable can hold them: the processes' ksm_merging_pages
 * (an upper bound) plus a reserve of 64 MiB or 2% of RAM, whichever is
 * larger. Otherwise it refuses (ErrorKind.Refused) unless force.
 *
 * @module
 */
import { allDenied, ErrorKind, ErrorReason, MergememError } from "../errors.ts";
import type { ModuleHandle } from "../kmod/client.ts";
import { type EngineChoice, openMarker } from "../compose/engines.ts";
import type { MarkEngine, ThpAction, VmaRange } from "../engine/marker.ts";
import {
  readThpRecord,
  removeThpVmas,
  type ThpRecord,
  type ThpVma,
} from "../ksm/thp_record.ts";
import { classifyMarkError, type MarkFailure } from "../engine/mark_error.ts";
import { guardSignals, runBurst } from "../ksm/burst.ts";
import { type KsmLockOptions, withKsmLock } from "../ksm/lock.ts";
import {
  mergingPages,
  readMergeableMappings,
  readProcessKsm,
} from "../ksm/process.ts";
import { systemPageSize } from "../pages/pagesize.ts";
import { readComm } from "../proc/info.ts";
import { VERSION } from "../version.ts";

/**
 * Options of {@link unmerge}; `lockTimeoutSeconds`, `onLockWait` and
 * `runDir` are those of the KSM lock (src/ksm/lock.ts).
 */
export interface UnmergeOptions
  extends Pick<KsmLockOptions, "lockTimeoutSeconds" | "onLockWait" | "runDir"> {
  /** The process ids to unmerge. */
  pids: number[];
  /** Unmerge even if MemAvailable looks too small. */
  force?: boolean;
  /** Marking engine (default "auto": the module if loaded, else ptrace). */
  engine?: EngineChoice;
  /** A module handle to use (implies the module engine). */
  module?: ModuleHandle;
  /** Skip the ksmd pass that brings ksm_merging_pages up to date. */
  noRefresh?: boolean;
  /** Longest time for that pass (default 30 s). */
  refreshTimeoutSeconds?: number;
}

/** One process in the unmerge report. */
export interface UnmergeProcessReport {
  /** Process id. */
  pid: number;
  /** Command name (/proc/PID/comm); "" when the process is gone. */
  comm: string;
  /** Mergeable VMAs UNMERGE unmarked. */
  vmas_unmarked: number;
  /** Total size of the unmarked VMAs, in bytes. */
  bytes_unmarked: number;
  /** /proc/PID/ksm_merging_pages before unmerging, in pages. */
  merging_pages_before: number;
  /** /proc/PID/ksm_merging_pages at the end, in pages. */
  merging_pages_after: number;
  /** ptrace engine: the longest time the process was held stopped, ms. */
  hold_ms_max: number | null;
  /** VMAs whose MADV_NOHUGEPAGE (set by an earlier merge) was undone. */
  thp_restored: number;
  /** Why this process failed; absent when it did not. */
  error?: string;
}

/** The unmerge report's schema identifier (docs/json-schema.md). */
export const UNMERGE_SCHEMA = "mergemem.unmerge/1";

/** The "mergemem.unmerge/1" report. */
export interface UnmergeReport {
  /** The schema identifier, {@link UNMERGE_SCHEMA}. */
  schema: typeof UNMERGE_SCHEMA;
  /** The mergemem version that made the report. */
  mergemem_version: string;
  /** Sum of ksm_merging_pages: at most this many pages become private. */
  pages_to_unshare: number;
  /** MemAvailable from /proc/meminfo, in bytes. */
  mem_available_bytes: number;
  /** Bytes kept free besides the unshared pages: max(64 MiB, 2% of RAM). */
  reserve_bytes: number;
  /** Whether force (--force) was given. */
  forced: boolean;
  /** The engine that unmarked the mappings. */
  engine: MarkEngine;
  /** The short ksmd pass that refreshes the counters, if one ran. */
  ksmd_refresh: { ended: string; seconds: number } | null;
  /** Notes for the user (a memory check overridden by `force`). */
  warnings: string[];
  /** One row per selected pid, in the order given. */
  processes: UnmergeProcessReport[];
}

/** Reads MemAvailable and MemTotal in bytes from /proc/meminfo text. */
export function parseMeminfo(
  text: string,
): { available: number; total: number } {
  const get = (k: string) => {
    const m = new RegExp(`^${k}:\\s+(\\d+) kB`, "m").exec(text);
    return m ? Number(m[1]) * 1024 : 0;
  };
  return { available: get("MemAvailable"), total: get("MemTotal") };
}

/** The memory kept free besides the unshared pages. */
export function reserveBytes(total: number): number {
  return Math.max(64 << 20, Math.floor(total * 0.02));
}

/**
 * The VMAs to unmark, each asking to undo the MADV_NOHUGEPAGE a merge set
 * (src/ksm/thp_record.ts), plus recorded VMAs that are no longer
 * mergeable (unmarked by other means) but still carry it.
 */
export function withThpRestore(
  vmas: VmaRange[],
  rec: ThpRecord | undefined,
): VmaRange[] {
  if (!rec) return vmas;
  const byStart = new Map(rec.vmas.map((v) => [BigInt(v.start), v]));
  const action = (v: ThpVma): ThpAction =>
    v.had_hugepage ? "restore-hugepage" : "restore";
  const out: VmaRange[] = vmas.map((r) => {
    const v = byStart.get(r.start);
    if (!v || BigInt(v.end) !== r.end) return r;
    byStart.delete(r.start);
    return { ...r, thp: action(v) };
  });
  for (const [start, v] of byStart) {
    out.push({ start, end: BigInt(v.end), thp: action(v) });
  }
  return out;
}

/** The report's error text of a process that could not be unmarked. */
function unmergeErrorText(f: MarkFailure, err: unknown): string {
  switch (f.kind) {
    case "skipped":
    case "denied":
      return f.reason;
    case "exited":
      return f.message ?? "exited";
    case "failed":
      return f.message;
    case "other":
      return `unmerge failed: ${f.code ?? String(err)}`;
    case "interrupted": // rethrown, never reported
      return `unmerge failed: ${String(err)}`;
  }
}

/**
 * Unmerges the selected processes.
 *
 * @throws MergememError Refused when memory looks insufficient and not
 *   force; NoModule/ModuleMismatch; AllDenied.
 */
export async function unmerge(opts: UnmergeOptions): Promise<UnmergeReport> {
  // Unmarking changes what KSM scans, and the refresh is a burst: one run
  // at a time (src/ksm/lock.ts); taking the lock repairs a crashed run.
  return await withKsmLock({
    lockTimeoutSeconds: opts.lockTimeoutSeconds,
    onLockWait: opts.onLockWait,
    runDir: opts.runDir,
    lockHolder: "mergemem unmerge",
  }, async (held) => {
    const r = await unmergeLocked(opts);
    r.warnings.unshift(...held.warnings);
    return r;
  });
}

async function unmergeLocked(opts: UnmergeOptions): Promise<UnmergeReport> {
  const before = new Map(opts.pids.map((p) => [p, mergingPages(p)]));
  const need = [...before.values()].reduce((a, b) => a + b, 0);
  const pageSize = systemPageSize();
  const mem = parseMeminfo(Deno.readTextFileSync("/proc/meminfo"));
  const reserve = reserveBytes(mem.total);
  const warnings: string[] = [];
  if (need * pageSize + reserve > mem.available) {
    const msg = `unmerging needs up to ${need * pageSize} bytes for ${need} ` +
      `pages becoming private, but MemAvailable is ${mem.available} bytes ` +
      `(keeping ${reserve} in reserve)`;
    if (!opts.force) {
      throw new MergememError(
        msg,
        ErrorKind.Refused,
        { reason: ErrorReason.LowMemory },
      );
    }
    warnings.push(`forced despite low memory: ${msg}`);
  }
  const marker = await openMarker(opts.engine ?? "auto", opts.module);
  const processes: UnmergeProcessReport[] = [];
  let denied = 0;
  try {
    for (const pid of opts.pids) {
      const row: UnmergeProcessReport = {
        pid,
        comm: readComm(pid),
        vmas_unmarked: 0,
        bytes_unmarked: 0,
        merging_pages_before: before.get(pid) ?? 0,
        merging_pages_after: 0,
        hold_ms_max: null,
        thp_restored: 0,
      };
      processes.push(row);
      const thp = readThpRecord(pid, { runDir: opts.runDir });
      const vmas = withThpRestore(
        readMergeableMappings(pid).map((m) => ({
          start: BigInt(m.startHex),
          end: BigInt(m.endHex),
        })),
        thp,
      );
      // A process marked whole (PR_SET_MEMORY_MERGE, --whole-process)
      // would mark its new mappings again: clear that first. ksm_stat
      // shows it from 6.18 on; older kernels cannot tell (README).
      const mergeAny = readProcessKsm(pid)?.stat.ksm_merge_any === "yes";
      if (vmas.length === 0 && !mergeAny) continue;
      try {
        if (mergeAny && marker.markWholeProcess) {
          await marker.markWholeProcess(pid, false);
        }
        const r = await marker.markProcess(pid, vmas, "unmerge");
        row.vmas_unmarked = r.vmasChanged;
        row.bytes_unmarked = r.bytesChanged;
        row.hold_ms_max = r.holdMs;
        row.thp_restored = r.thpChanged.length;
        if (thp && r.thpUnsupported === 0) {
          // Every recorded VMA was seen to: restored, already without
          // the flag, or gone. An engine that cannot restore keeps them.
          removeThpVmas(pid, thp.vmas.map((v) => v.start), {
            runDir: opts.runDir,
          });
        } else if (r.thpUnsupported > 0) {
          warnings.push(
            `pid ${pid}: ${r.thpUnsupported} mapping(s) keep the ` +
              `MADV_NOHUGEPAGE an earlier merge set: the ${marker.engine} ` +
              `engine cannot clear it (the module can; unmerge again with it)`,
          );
        }
      } catch (err) {
        const f = classifyMarkError(err);
        if (f.kind === "interrupted") throw err;
        if (f.kind === "denied") denied++;
        row.error = unmergeErrorText(f, err);
        if (f.kind === "other" && (f.code === "ENOMEM" || f.code === "EINTR")) {
          throw new MergememError(
            `unmerging pid ${pid} failed: ${f.code}`,
            f.code === "EINTR" ? ErrorKind.Interrupted : ErrorKind.Failed,
          );
        }
      }
    }
  } finally {
    marker.close();
  }
  // UNMERGE breaks the merges at once, but ksm_merging_pages only drops
  // when ksmd next visits the process and drops its rmap items; with
  // run=0 that never happens and the counters would lie. A short burst
  // (settings restored exactly, as for merge) brings them up to date.
  const total = () => opts.pids.reduce((a, p) => a + mergingPages(p), 0);
  let refresh: UnmergeReport["ksmd_refresh"] = null;
  if (total() > 0 && !opts.noRefresh) {
    const guard = guardSignals();
    try {
      const b = await runBurst({
        progress: () => -total(),
        target: 0,
        timeoutMs: (opts.refreshTimeoutSeconds ?? 30) * 1000,
        signal: guard.signal,
        runDir: opts.runDir,
      });
      refresh = { ended: b.ended, seconds: b.seconds };
    } finally {
      guard.dispose();
    }
  }
  for (const row of processes) row.merging_pages_after = mergingPages(row.pid);
  if (denied === opts.pids.length && denied > 0) {
    throw allDenied(denied);
  }
  return {
    schema: UNMERGE_SCHEMA,
    mergemem_version: VERSION,
    pages_to_unshare: need,
    mem_available_bytes: mem.available,
    reserve_bytes: reserve,
    forced: opts.force ?? false,
    engine: marker.engine,
    ksmd_refresh: refresh,
    warnings,
    processes,
  };
}
