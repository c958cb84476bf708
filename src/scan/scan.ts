/**
 * The scan: select processes, read their maps and pagemap, hash their
 * present candidate pages through a {@link HashBackend}, then group, confirm
 * and count (src/dedup/).
 *
 * @module
 */
import { messageOf, usageError } from "../errors.ts";
import { analyze, type MappingRef } from "../dedup/analyze.ts";
import { newTable, sortOrder } from "../dedup/table.ts";
import { getChecksum } from "../hash/mod.ts";
import { kpageflagsKsmReliable } from "../pages/pagemap.ts";
import { systemPageSize } from "../pages/pagesize.ts";
import {
  CAP_SYS_ADMIN,
  hasCapability,
  type Selection,
  selectProcesses,
} from "../proc/select.ts";
import type { HashBackend } from "../engine/hash_backend.ts";
import { classifyFrames, framesMayMatter } from "./classify.ts";
import { collectPages, type ScanProgress } from "./collect.ts";
import { readLayouts } from "./layouts.ts";
import { readTenancies } from "../proc/containers.ts";
import { createTableReader } from "./page_reader.ts";
import { lap, type ScanProfile } from "./profile.ts";
import { buildResults } from "./report.ts";
import { SCAN_SCHEMA, type ScanResult, type Strategy } from "./result.ts";
import { createUserBackend } from "./user_backend.ts";

export type { ScanProgress } from "./collect.ts";
export type { ScanProfile } from "./profile.ts";

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
  mapping: Uint16Array | Uint32Array;
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
      throw usageError(messageOf(err));
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
  const pfns = hasCapability(CAP_SYS_ADMIN);
  // The kernel back-end reports KSM and THP per page itself (and rightly
  // where kpageflags is wrong); otherwise /proc/kpageflags (root only).
  const classified = backend.classifies === true && pfns;
  let kpf: Deno.FsFile | null = null;
  try {
    if (opts.kpageflags !== false && !classified) {
      kpf = Deno.openSync("/proc/kpageflags");
    }
  } catch {
    kpf = null;
  }
  const root = kpf !== null || (classified && opts.kpageflags !== false);
  // A kernel bug can mark every anonymous page KSM: then say "unknown".
  const ksmFlag = classified ||
    (kpf !== null && kpageflagsKsmReliable(kpf) !== false);
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
  // Phase 1: read layouts (smaps of every process).
  const { states, results, expected } = readLayouts(sel, ps, pfns, root);
  const tenancies = readTenancies(results.map((r) => r.pid), { names: true });
  for (const r of results) {
    const t = tenancies.byPid.get(r.pid);
    r.container = t?.container ?? null;
    r.pod = t?.pod ?? null;
  }
  tp = lap(prof, "1.smaps", tp);

  // Phase 2: collect pages (pagemap and hashes) into the page table.
  const table = newTable(expected * 1.05 + 1024);
  const refs: MappingRef[] = [];
  try {
    await collectPages(states, table, refs, {
      backend,
      strategy,
      pageSize: ps,
      pfns,
      chunk: opts.pagemapBatch ?? 65536,
      done: sel.skipped.length + (sel.processes.length - states.length),
      total: sel.processes.length + sel.skipped.length,
      expected,
      profile: prof,
      onProgress: opts.onProgress,
    });
  } finally {
    if (ownBackend) backend.dispose?.();
  }
  tp = lap(prof, "2.pagemap+hash", tp);

  // Phase 3: classify frames (kpageflags, in PFN order).
  const order = new Uint32Array(table.length);
  if (kpf) {
    if (pfns) {
      classifyFrames(table, kpf, order, framesMayMatter(states, refs.length));
    }
    kpf.close();
    tp = lap(prof, "3.kpageflags", tp);
  }

  // Phase 4: group by hash, confirm, count (src/dedup/).
  sortOrder(table, "hash", order);
  tp = lap(prof, "4.sort.hash", tp);
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
  tp = lap(prof, "4.analyze", tp);
  opts.onPages?.({
    count: table.length,
    mappings: refs,
    mapping: table.mapIdx,
    page: table.pageIdx,
    frame: table.pfn,
    content: table.hashLo,
  });

  // Phase 5: build results.
  const totals = buildResults(states, results, c, ps, pfns, root, ksmFlag);
  results.sort((a, b) => a.pid - b.pid);
  lap(prof, "5.results", tp);
  return {
    schema: SCAN_SCHEMA,
    page_size: ps,
    strategy,
    checksum: strategy === "equalv" ? "none" : backend.checksum,
    backend: backend.name,
    marks_pages_accessed: backend.marksAccessed,
    pfns_available: pfns,
    elapsed_seconds: (performance.now() - t0) / 1000,
    totals,
    processes: results,
    warnings,
    ...(confirm ? {} : { confirmed: false }),
  };
}
