/**
 * The scan: select processes, read their maps and pagemap, hash their
 * present candidate pages through a {@link HashBackend}, then group, confirm
 * and count (src/dedup/).
 *
 * @module
 */
import { processGone, usageError } from "../errors.ts";
import { analyze, type MappingRef } from "../dedup/analyze.ts";
import { newTable, reserve, setPfn, sortOrder } from "../dedup/table.ts";
import {
  PAGE_EXCLUSIVE,
  PAGE_HASHED,
  PAGE_KSM,
  PAGE_PIN_OK,
  PAGE_THP,
  PAGE_ZERO_PAGE,
} from "../pages/flags.ts";
import { getChecksum } from "../hash/mod.ts";
import { type Mapping, readSmaps } from "../pages/maps.ts";
import {
  kpageflagsKsmReliable,
  KPF_KSM,
  KPF_THP,
  KPF_ZERO_PAGE,
  lookupKpageflagsOrdered,
  PM_EXCLUSIVE_HI,
  PM_FILE_HI,
  PM_PFN_HI_MASK,
  PM_PRESENT_HI,
  PM_SWAPPED_HI,
  readEntries,
} from "../pages/pagemap.ts";
import { systemPageSize } from "../pages/pagesize.ts";
import { mayHoldThp } from "../pages/thp.ts";
import type { ProcInfo } from "../proc/info.ts";
import {
  CAP_SYS_ADMIN,
  hasCapability,
  type Selection,
  selectProcesses,
  skipReasonOf,
} from "../proc/select.ts";
import type { HashBackend, PageRuns } from "./backend.ts";
import {
  addTotals,
  emptyTotals,
  type MappingResult,
  type ProcessResult,
  SCAN_SCHEMA,
  type ScanResult,
  type Strategy,
  type Totals,
} from "./result.ts";
import { createTableReader } from "./page_reader.ts";
import { createUserBackend } from "./user_backend.ts";

/** Progress of a running scan, reported after each batch of pages. */
export interface ScanProgress {
  /** The process being scanned. */
  pid: number;
  /** Processes finished (scanned or skipped). */
  processesDone: number;
  /** Processes selected. */
  processesTotal: number;
  /** Candidate pages read so far. */
  pagesDone: number;
  /** Expected candidate pages (from smaps; the real number may differ). */
  pagesTotal: number;
}

/** Options of {@link scan}. */
export interface ScanOptions {
  /** Which processes (default: every readable process). */
  selection?: Selection;
  /** Checksum name for the user back-end (default "xxh64"). */
  checksum?: string;
  /** "hash" (default) or "equalv". */
  strategy?: Strategy;
  /** The page-hash back-end; undefined for the user back-end. */
  backend?: HashBackend;
  /** Called after each batch; may be async (the scan awaits it). */
  onProgress?: (p: ScanProgress) => void | Promise<void>;
  /** Pagemap entries read per call (default 65536). */
  pagemapBatch?: number;
  /**
   * Opt-in: called once, after byte confirmation and before the scan
   * returns, with every counted page (see {@link ScanPages}), so that a
   * caller can recount any subset of the mappings without scanning again
   * (src/merge/plan.ts does). The arrays are handed over: the scan does
   * not use them afterwards.
   */
  onPages?: (pages: ScanPages) => void;
  /**
   * Confirm every hash match by comparing the pages' bytes. The default
   * trusts a good 64-bit hash ({@link TRUSTED_HASHES}, i.e. xxh64, the
   * default checksum and the kernel back-end's) with the hash strategy:
   * pages with equal hashes count as equal content without being re-read
   * (the collision bound is in docs/accounting.md; a collision could make
   * a figure off by a page, never merge different pages, since KSM
   * compares the bytes itself before it merges). Every other checksum
   * always confirms. true (`mergemem scan --verify`) always confirms;
   * false with another checksum is a usage error. A result that trusted
   * the hash says `confirmed: false`.
   */
  confirm?: boolean;
  /**
   * Read /proc/kpageflags (root only) for pages_ksm and pages_thp (default
   * true). False skips it and those figures are null: for callers that do
   * not report them, such as merge planning.
   */
  kpageflags?: boolean;
  /**
   * When given, the scan adds the wall time (ms) of each of its phases to
   * it, by phase name (for bench/scan_bench.ts).
   */
  profile?: ScanProfile;
}

/**
 * Every page a scan counted, as columns indexed by row (0 ≤ row < count,
 * in no particular order). Two rows have the same `content` exactly when
 * their bytes were confirmed equal (0 is the zero-filled content); rows
 * with the same non-zero `frame` share one physical frame.
 */
export interface ScanPages {
  /** Rows in use. */
  count: number;
  /** The scan's mappings: row i lies in mappings[mapping[i]]. */
  mappings: readonly MappingRef[];
  /** Index into `mappings` per row. */
  mapping: Uint32Array;
  /** The page's index within its mapping. */
  page: Uint32Array;
  /**
   * The PFN, or without PFNs a stand-in: unique per exclusive page, 0 for
   * a non-exclusive one (count those as one frame per content).
   */
  frame: Uint32Array | Float64Array;
  /** The content class (confirmed by bytes unless `confirm: false`). */
  content: Uint32Array;
}

interface ProcState {
  info: ProcInfo;
  result: ProcessResult;
  maps: Mapping[];
  /** Global index of this process's first mapping. */
  firstMap: number;
  noncandidate: number;
  swapped: number;
  vanished: number;
  scanned: number;
}

/** The checksums that {@link ScanOptions.confirm} false may trust. */
export const TRUSTED_HASHES: readonly string[] = ["xxh64"];

/**
 * Scans the selected processes for pages KSM could merge.
 * @throws {MergememError} for a bad option (unknown checksum, a checksum
 *   that the given back-end does not compute, an unknown user, `confirm:
 *   false` without a 64-bit hash).
 */
export async function scan(opts: ScanOptions = {}): Promise<ScanResult> {
  const t0 = performance.now();
  const strategy: Strategy = opts.strategy ?? "hash";
  if (strategy !== "hash" && strategy !== "equalv") {
    throw usageError(`unknown strategy '${strategy}' (hash or equalv)`);
  }
  const warnings: string[] = [];
  let backend = opts.backend;
  const ownBackend = !backend;
  if (backend) {
    if (opts.checksum && opts.checksum !== backend.checksum) {
      throw usageError(
        `the ${backend.name} back-end computes ${backend.checksum}, not ${opts.checksum}`,
      );
    }
  } else {
    let cs;
    try {
      // equalv compares corresponding pages directly: no hash is needed,
      // only zero detection, which "const" does at no cost.
      cs = getChecksum(
        strategy === "equalv" ? "const" : opts.checksum ?? "xxh64",
      );
    } catch (err) {
      throw usageError((err as Error).message);
    }
    backend = createUserBackend({ checksum: cs });
  }
  const confirm = opts.confirm ??
    (strategy !== "hash" || !TRUSTED_HASHES.includes(backend.checksum));
  if (!confirm) {
    const why = strategy !== "hash"
      ? `the ${strategy} strategy`
      : !TRUSTED_HASHES.includes(backend.checksum)
      ? `checksum ${backend.checksum}`
      : null;
    if (why !== null) {
      if (ownBackend) backend.dispose?.();
      throw usageError(
        `confirm: false trusts a 64-bit hash (${
          TRUSTED_HASHES.join(" or ")
        } with the hash strategy), not ${why}`,
      );
    }
  }
  let sel;
  try {
    sel = selectProcesses(opts.selection ?? {});
  } catch (err) {
    if (err instanceof TypeError) throw usageError(err.message);
    throw err;
  }
  warnings.push(...sel.warnings);

  const ps = systemPageSize();
  const kbPerPage = ps / 1024;
  const pfns = hasCapability(CAP_SYS_ADMIN);
  let kpf: Deno.FsFile | null = null;
  try {
    if (opts.kpageflags !== false) kpf = Deno.openSync("/proc/kpageflags");
  } catch {
    kpf = null;
  }
  const root = kpf !== null;
  // A kernel bug can mark every anonymous page KSM: then say "unknown".
  const ksmFlag = kpf !== null && kpageflagsKsmReliable(kpf) !== false;
  if (kpf !== null && !ksmFlag) {
    warnings.push(
      "this kernel's /proc/kpageflags marks every anonymous page as KSM; pages_ksm is unavailable",
    );
  }
  if (!pfns) {
    warnings.push(
      "no CAP_SYS_ADMIN: physical frame numbers are hidden, so already-shared pages are estimated from pagemap's exclusive bit and savings are estimates",
    );
  }

  const prof = opts.profile ?? {};
  let tp = performance.now();
  // Phase 1: smaps of every process (mappings, VmFlags, expected sizes).
  const states: ProcState[] = [];
  const results: ProcessResult[] = [];
  for (const s of sel.skipped) {
    results.push({
      pid: s.pid,
      comm: "",
      uid: -1,
      exe: null,
      skipped: { reason: s.reason, message: s.message },
      totals: emptyTotals(pfns, root),
      mappings: [],
    });
  }
  let expected = 0;
  for (const info of sel.processes) {
    const result: ProcessResult = {
      pid: info.pid,
      comm: info.comm,
      uid: info.uid,
      exe: info.exe,
      skipped: null,
      totals: emptyTotals(pfns, root),
      mappings: [],
    };
    results.push(result);
    try {
      const maps = readSmaps(info.pid);
      for (const m of maps) {
        if (m.ksmEligible) expected += (m.kb.Anonymous ?? 0) / kbPerPage;
      }
      states.push({
        info,
        result,
        maps,
        firstMap: 0,
        noncandidate: 0,
        swapped: 0,
        vanished: 0,
        scanned: 0,
      });
    } catch (err) {
      skip(result, err);
    }
  }

  tp = lap(prof, "smaps", tp);
  // Phase 2: pagemap and hashes, into the columnar table.
  const table = newTable(expected * 1.05 + 1024);
  const refs: MappingRef[] = [];
  const keyIds = new Map<string, number>();
  const chunk = opts.pagemapBatch ?? 65536;
  const pm = new Uint32Array(2 * chunk);
  const bits = new Uint8Array(chunk);
  const runs: PageRuns = {
    count: 0,
    addr: new Float64Array(chunk),
    pages: new Uint32Array(chunk),
  };
  let standIn = 1;
  let done = 0;
  const total = sel.processes.length + sel.skipped.length;
  done += sel.skipped.length + (sel.processes.length - states.length);

  for (const st of states) {
    const pid = st.info.pid;
    const rowStart = table.length;
    st.firstMap = refs.length;
    for (const m of st.maps) refs.push({ pid, start: m.start });
    let file: Deno.FsFile | null = null;
    let target = null;
    try {
      file = Deno.openSync(`/proc/${pid}/pagemap`);
      target = backend.open(pid);
      const ordinal = new Map<string, number>();
      for (let mi = 0; mi < st.maps.length; mi++) {
        const m = st.maps[mi];
        const g = st.firstMap + mi;
        const rss = (m.kb.Rss ?? 0) / kbPerPage;
        if (!m.ksmEligible) {
          st.noncandidate += rss;
          continue;
        }
        const npages = Math.round((m.end - m.start) / ps);
        st.scanned += npages;
        let keyId = 0;
        if (strategy === "equalv") {
          const k = `${m.kind}\0${m.path}`;
          const ord = ordinal.get(k) ?? 0;
          ordinal.set(k, ord + 1);
          const key = `${st.info.exe ?? st.info.comm}\0${k}\0${ord}`;
          keyId = keyIds.get(key) ?? keyIds.size;
          keyIds.set(key, keyId);
        }
        if (m.kb.Rss === 0 && (m.kb.Swap ?? 0) === 0) continue;
        // A pin of a small page of a fork-shared THP unshares it (copies it
        // in the target and splits the huge page) even when pagemap calls
        // it exclusive: never pin pages of a mapping that may hold THPs.
        const pinOk = !mayHoldThp(m);
        const vpn0 = Math.round(m.start / ps);
        for (let off = 0; off < npages; off += chunk) {
          const n = Math.min(chunk, npages - off);
          let tq = performance.now();
          if (readEntries(file, vpn0 + off, n, pm) < n) {
            throw processGone("read", "address space gone");
          }
          tq = lap(prof, "2.pagemap", tq);
          reserve(table, n);
          const row0 = table.length;
          // Pages that may be pinned first, then the others, as own runs:
          // the two are read differently (see PageRuns.noPin).
          let cnt = 0;
          let nx = 0;
          for (let k = 0; k < n; k++) {
            const hi = pm[2 * k + 1];
            if ((hi & PM_PRESENT_HI) === 0) {
              if (hi & PM_SWAPPED_HI) st.swapped++;
              continue;
            }
            if (hi & PM_FILE_HI) {
              st.noncandidate++;
              continue;
            }
            if (!pinOk || (hi & PM_EXCLUSIVE_HI) === 0) nx++;
            cnt++;
          }
          if (cnt === 0) continue;
          for (const pinned of [true, false]) {
            const rowA = pinned ? row0 : row0 + cnt - nx;
            let row = rowA;
            runs.count = 0;
            runs.noPin = !pinned;
            let lastPage = -2;
            for (let k = 0; k < n; k++) {
              const hi = pm[2 * k + 1];
              if ((hi & PM_PRESENT_HI) === 0 || (hi & PM_FILE_HI)) continue;
              const exclusive = (hi & PM_EXCLUSIVE_HI) !== 0;
              if ((pinOk && exclusive) !== pinned) continue;
              table.mapIdx[row] = g;
              table.pageIdx[row] = off + k;
              setPfn(
                table,
                row,
                pfns
                  ? (hi & PM_PFN_HI_MASK) * 0x100000000 + pm[2 * k]
                  : exclusive
                  ? standIn++
                  : 0,
              );
              bits[row - row0] = (exclusive ? PAGE_EXCLUSIVE : 0) |
                (pinned ? PAGE_PIN_OK : 0);
              row++;
              if (lastPage === k - 1) runs.pages[runs.count - 1]++;
              else {
                runs.addr[runs.count] = m.start + (off + k) * ps;
                runs.pages[runs.count] = 1;
                runs.count++;
              }
              lastPage = k;
            }
            if (runs.count === 0) continue;
            tq = lap(prof, "2.decode", tq);
            await backend.hashPages(target, runs, {
              hashLo: table.hashLo,
              hashHi: table.hashHi,
              flags: table.flags,
              offset: rowA,
            });
            tq = lap(prof, pinned ? "2.readv+hash" : "2.mem+hash", tq);
          }
          // Keep the rows that were read; drop the vanished ones.
          let w = row0;
          for (let k = 0; k < cnt; k++) {
            const r = row0 + k;
            if (!(table.flags[r] & PAGE_HASHED)) {
              st.vanished++;
              continue;
            }
            if (w !== r) {
              table.mapIdx[w] = table.mapIdx[r];
              table.pageIdx[w] = table.pageIdx[r];
              table.pfn[w] = table.pfn[r];
              table.hashLo[w] = table.hashLo[r];
              table.hashHi[w] = table.hashHi[r];
            }
            table.flags[w] = table.flags[r] | bits[k];
            if (strategy === "equalv") {
              table.hashHi[w] = keyId;
              table.hashLo[w] = table.pageIdx[w];
            }
            w++;
          }
          table.length = w;
          if (opts.onProgress) {
            await opts.onProgress({
              pid,
              processesDone: done,
              processesTotal: total,
              pagesDone: table.length,
              pagesTotal: Math.round(expected),
            });
          }
        }
      }
    } catch (err) {
      table.length = rowStart;
      skip(st.result, err);
    } finally {
      file?.close();
      if (target) backend.close(target);
    }
    done++;
  }
  if (ownBackend) backend.dispose?.();

  tp = lap(prof, "pagemap+hash", tp);
  // Phase 3: in PFN order, kpageflags and frames mapped twice; then in
  // hash order: group, confirm, count.
  const order = new Uint32Array(table.length);
  if (pfns) {
    sortOrder(table, "pfn", order);
    tp = lap(prof, "3.sort.pfn", tp);
    if (kpf) {
      const flags = table.flags;
      lookupKpageflagsOrdered(
        kpf,
        table.pfn,
        order,
        table.length,
        (i, lo) => {
          if (lo & (1 << KPF_KSM)) flags[i] |= PAGE_KSM;
          if (lo & (1 << KPF_THP)) flags[i] |= PAGE_THP;
          if (lo & (1 << KPF_ZERO_PAGE)) flags[i] |= PAGE_ZERO_PAGE;
        },
      );
    }
    tp = lap(prof, "3.shared+kpageflags", tp);
  }
  kpf?.close();
  sortOrder(table, "hash", order);
  tp = lap(prof, "3.sort.hash", tp);
  const reader = createTableReader(table, refs, ps);
  const c = analyze(table, refs, {
    pageSize: ps,
    pfns,
    order,
    profile: prof,
    labelAll: opts.onPages !== undefined,
    confirm,
    reader,
  });
  reader.close();
  tp = lap(prof, "3.analyze", tp);
  opts.onPages?.({
    count: table.length,
    mappings: refs,
    mapping: table.mapIdx,
    page: table.pageIdx,
    frame: table.pfn,
    content: table.hashLo,
  });

  const totals = {
    ...emptyTotals(pfns, root),
    processes: 0,
    processes_skipped: 0,
  };
  for (const st of states) {
    const r = st.result;
    if (r.skipped) continue;
    const t = r.totals;
    st.maps.forEach((m, mi) => {
      const g = st.firstMap + mi;
      const mr: MappingResult = {
        start: m.startHex,
        end: m.endHex,
        perms: m.perms,
        kind: m.kind,
        path: m.path,
        deleted: m.deleted,
        ksm_eligible: m.ksmEligible,
        rss_pages: (m.kb.Rss ?? 0) / kbPerPage,
        pages_present: c.present[g],
        pages_zero: c.zero[g],
        pages_duplicate: c.duplicate[g],
        pages_shared_already: pfns ? c.sharedAlready[g] : null,
        pages_shared_already_estimate: c.sharedEstimate[g],
        saveable_pages: c.saveable[g],
      };
      r.mappings.push(mr);
      t.rss_pages += mr.rss_pages;
      t.pages_present += mr.pages_present;
      t.pages_zero += mr.pages_zero;
      t.pages_duplicate += mr.pages_duplicate;
      if (t.pages_shared_already !== null) {
        t.pages_shared_already += c.sharedAlready[g];
      }
      t.pages_shared_already_estimate += mr.pages_shared_already_estimate;
      t.saveable_pages += mr.saveable_pages;
      if (t.pages_ksm !== null) t.pages_ksm += c.ksm[g];
      if (!ksmFlag) t.pages_ksm = null;
      if (t.pages_thp !== null) t.pages_thp += c.thp[g];
    });
    t.pages_scanned = st.scanned;
    t.noncandidate_present_pages = st.noncandidate;
    t.pages_swapped = st.swapped;
    t.pages_vanished = st.vanished;
    t.saveable_bytes = t.saveable_pages * ps;
  }
  for (const r of results) {
    if (r.skipped) totals.processes_skipped++;
    else {
      totals.processes++;
      addTotals(totals, r.totals);
    }
  }
  if (!ksmFlag) totals.pages_ksm = null;
  results.sort((a, b) => a.pid - b.pid);
  lap(prof, "results", tp);
  return {
    schema: SCAN_SCHEMA,
    page_size: ps,
    strategy,
    checksum: strategy === "equalv" ? "none" : backend.checksum,
    backend: backend.name,
    pfns_available: pfns,
    elapsed_seconds: (performance.now() - t0) / 1000,
    totals,
    processes: results,
    warnings,
    ...(confirm ? {} : { confirmed: false }),
  };
}

/** Wall time (ms) per phase of a scan, by phase name. */
export type ScanProfile = Record<string, number>;

/** Adds the time since `t` to `prof[name]`; returns now. */
export function lap(prof: ScanProfile, name: string, t: number): number {
  const now = performance.now();
  prof[name] = (prof[name] ?? 0) + now - t;
  return now;
}

/** Marks a process skipped, or rethrows an error that is not about it. */
function skip(r: ProcessResult, err: unknown): void {
  const reason = skipReasonOf(err);
  if (!reason) throw err;
  r.skipped = {
    reason,
    message: `${err instanceof Error ? err.message : String(err)}`,
  };
  r.mappings = [];
  const t: Totals = r.totals;
  for (const k of Object.keys(t) as (keyof Totals)[]) {
    if (t[k] !== null) (t as unknown as Record<string, number>)[k] = 0;
  }
}
