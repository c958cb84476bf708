/**
 * The scan: select processes, read their maps and pagemap, hash their
 * present candidate pages through a {@link HashBackend}, then group, confirm
 * and count (src/dedup/).
 *
 * @module
 */
import { messageOf, usageError } from "../errors.ts";
import {
  analyze,
  type MappingCounters,
  type MappingRef,
} from "../dedup/analyze.ts";
import {
  BOUND_Z,
  errorBound,
  estimate,
  HeavyHitters,
  KeyCounts,
  newSampleSums,
  processIndexes,
  sampleAccountant,
  type SampleSums,
  type SliceFilter,
} from "../dedup/sample.ts";
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
import {
  collectPages,
  type DroppedRows,
  type ScanProgress,
} from "./collect.ts";
import { readLayouts } from "./layouts.ts";
import { readTenancies } from "../proc/containers.ts";
import { createTableReader } from "./page_reader.ts";
import { lap, type ScanProfile } from "./profile.ts";
import { buildResults } from "./report.ts";
import {
  type PageCounts,
  SCAN_SCHEMA,
  type ScanResult,
  type Strategy,
  type Totals,
} from "./result.ts";
import type { ProcState } from "./layouts.ts";
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
  /** Pagemap entries read per call (default 65536; 16384 when sampling). */
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
  /**
   * Estimate instead of counting (`scan --sample N`): keep only the
   * contents of one slice of `sample`, chosen by content hash (every copy
   * of a content, and every page of a frame, together), and scale their
   * figures by `sample`; zero-filled pages are always counted exactly,
   * and so are the heavy contents, which a first pass finds
   * (HeavyHitters: every page is then read twice). The page table then
   * holds about 1/`sample` of the rows. Each
   * estimated figure comes with an error bound ({@link BOUND_Z} standard
   * errors); see src/dedup/sample.ts and ScanResult.sample. Needs the
   * hash strategy and xxh64 (a random hash); 1 counts everything.
   */
  sample?: number;
  /** Which slice a sampled scan keeps, 0..sample-1 (default 0). */
  sampleSlice?: number;
  /**
   * Bytes the page table (and its sort order) may take in an exact scan
   * (default {@link DEFAULT_MAX_MEMORY}). A scan whose expected rows
   * (smaps Anonymous) need more runs in passes, each keeping one content
   * slice; the figures are exact either way (ScanResult.passes). Ignored
   * with `onPages`, which needs every row at once.
   */
  maxMemory?: number;
}

/** The page table's default memory budget in an exact scan (16 MiB). */
export const DEFAULT_MAX_MEMORY = 16 * 1024 * 1024;

/**
 * Bytes per row of the page table (19) and its sort order (4), for the
 * choice of passes.
 */
export const ROW_BYTES = 23;

/**
 * The passes of an exact scan of about `rows` rows within `maxMemory`
 * bytes: 1 for small scans.
 */
export function passesFor(rows: number, maxMemory: number): number {
  return Math.max(1, Math.ceil(rows * ROW_BYTES / maxMemory));
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
  const sampleN = opts.sample;
  const fail = (msg: string): never => {
    if (ownBackend) backend.dispose?.();
    throw usageError(msg);
  };
  if (sampleN !== undefined) {
    if (!Number.isInteger(sampleN) || sampleN < 1 || sampleN > 2 ** 20) {
      fail(`sample: expected a whole number 1..${2 ** 20}, got ${sampleN}`);
    }
    if (strategy !== "hash" || !TRUSTED_HASHES.includes(backend.checksum)) {
      fail(
        `sampling needs a random hash of the content: the hash strategy with ${
          TRUSTED_HASHES.join(" or ")
        }, not ${strategy === "hash" ? backend.checksum : strategy}`,
      );
    }
  }
  const sampleSlice = opts.sampleSlice ?? 0;
  if (
    !Number.isInteger(sampleSlice) || sampleSlice < 0 ||
    sampleSlice >= (sampleN ?? 1)
  ) {
    fail(
      `sample slice: expected a whole number 0..${
        (sampleN ?? 1) - 1
      }, got ${sampleSlice}`,
    );
  }
  const maxMemory = opts.maxMemory ?? DEFAULT_MAX_MEMORY;
  if (!(maxMemory > 0)) {
    fail(`max memory: expected bytes > 0, got ${maxMemory}`);
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

  // Phases 2-4, once per pass: a sampled scan keeps one content slice, an
  // exact scan too big for maxMemory runs in passes of one slice each
  // (the figures of the slices add up: src/dedup/sample.ts).
  const sampled = sampleN !== undefined;
  const passes = sampled || opts.onPages
    ? 1
    : passesFor(expected * 1.05, maxMemory);
  // A sampled table grows as rows come. An exact one is allocated at its
  // expected size, every pass reusing it from row 0: the kernel backs
  // only the rows written, so it costs the rows of the biggest pass (and
  // never a copy for growing).
  const table = newTable(sampled ? 0 : expected * 1.05 + 1024);
  const refs: MappingRef[] = [];
  // Zero-filled rows are counted instead of kept where that loses nothing
  // (sampled: everywhere; in passes: where no frame can be KSM or THP,
  // whose flags come from kpageflags or the kernel back-end per row).
  let countable: Uint8Array | null = null;
  if (!sampled && passes > 1 && (kpf || classified) && pfns) {
    let g = 0;
    for (const st of states) {
      st.firstMap = g;
      g += st.maps.length;
    }
    countable = framesMayMatter(states, g).map((x) => x ^ 1);
  }
  const dropped: DroppedRows | undefined = sampled || passes > 1
    ? {
      others: sampled,
      present: [],
      sharedEstimate: [],
      zero: [],
      zeroKept: new Set(),
      zeroFrame: -1,
      zeroFrameKept: [],
      zeroShared: [],
      heavy: [],
      heavyKept: new KeyCounts(),
      zeroCountable: countable,
    }
    : undefined;
  let total: MappingCounters | null = null;
  let sums: SampleSums | null = null;
  const kept = new Map<ProcState, number[]>();
  let orderBuf = new Uint32Array(0);
  const pagesRead = { n: 0 };
  const heavyPass = sampled && sampleN! > 1;
  const heavyHitters = new HeavyHitters();
  let counted: KeyCounts | undefined;
  try {
    // A sampled scan first finds its heavy contents (HeavyHitters) in a
    // pass of its own (pass -1), which keeps no row.
    for (let pass = heavyPass ? -1 : 0; pass < passes; pass++) {
      const slice: SliceFilter | undefined = pass < 0
        ? { n: sampleN!, index: -1, zero: false }
        : sampled
        ? { n: sampleN, index: sampleSlice, zero: true }
        : passes > 1
        ? { n: passes, index: pass, zero: pass === 0 }
        : undefined;
      table.length = 0;
      refs.length = 0;
      // Per-process page counts are taken in the first pass only.
      if (pass === 1) {
        for (const st of states) {
          kept.set(st, [st.scanned, st.noncandidate, st.swapped, st.vanished]);
        }
      }
      await collectPages(states, table, refs, {
        backend,
        strategy,
        pageSize: ps,
        pfns,
        // A sampled scan keeps few rows: smaller chunks keep the rows
        // being decoded and hashed (3 chunks at most) small too.
        chunk: opts.pagemapBatch ?? (sampled ? 16384 : 65536),
        done: sel.skipped.length + (sel.processes.length - states.length),
        total: sel.processes.length + sel.skipped.length,
        expected: expected * (passes + (heavyPass ? 1 : 0)),
        pagesRead,
        profile: prof,
        onProgress: opts.onProgress,
        slice,
        ...(pass < 0
          ? { heavy: { observe: heavyHitters } }
          : { dropped, ...(counted ? { heavy: { counted } } : {}) }),
      });
      if (pass < 0) {
        counted = heavyHitters.keys();
        for (const st of states) {
          st.scanned =
            st.noncandidate =
            st.swapped =
            st.vanished =
              0;
        }
        tp = lap(prof, "2.heavy", tp);
        continue;
      }
      for (const [st, v] of kept) {
        [st.scanned, st.noncandidate, st.swapped, st.vanished] = v;
      }
      tp = lap(prof, "2.pagemap+hash", tp);

      // Phase 3: classify frames (kpageflags, in PFN order). One order
      // array for every pass: a pass's garbage would otherwise stay
      // until V8 collects it, adding up over the passes.
      if (orderBuf.length < table.length) {
        orderBuf = new Uint32Array(0);
        orderBuf = new Uint32Array(passes > 1 ? table.capacity : table.length);
      }
      const order = orderBuf.subarray(0, table.length);
      if (kpf && pfns) {
        classifyFrames(table, kpf, order, framesMayMatter(states, refs.length));
        tp = lap(prof, "3.kpageflags", tp);
      }

      // Phase 4: group by hash, confirm, count (src/dedup/).
      sortOrder(table, "hash", order);
      tp = lap(prof, "4.sort.hash", tp);
      if (sampled) {
        sums = newSampleSums(processIndexes(refs.map((r) => r.pid)));
      }
      const reader = createTableReader(table, refs, ps);
      const c = analyze(table, refs, {
        pageSize: ps,
        pfns,
        order,
        profile: prof,
        labelAll: opts.onPages !== undefined,
        confirm,
        reader,
        ...(sums ? { accountant: sampleAccountant(sums, table.flags) } : {}),
      });
      reader.close();
      tp = lap(prof, "4.analyze", tp);
      total = total === null ? c : addCounters(total, c);
    }
  } finally {
    if (ownBackend) backend.dispose?.();
    kpf?.close();
  }
  const c = total!;
  opts.onPages?.({
    count: table.length,
    mappings: refs,
    mapping: table.mapIdx,
    page: table.pageIdx,
    frame: table.pfn,
    content: table.hashLo,
  });
  if (dropped && !sums) {
    // Zero-filled rows counted instead of kept (DroppedRows).
    for (let i = 0; i < c.present.length; i++) {
      const z = dropped.zero[i] ?? 0, zs = dropped.zeroShared[i] ?? 0;
      c.present[i] += z + zs;
      c.zero[i] += z + zs;
      c.saveable[i] += z;
      c.sharedAlready[i] += zs;
      c.sharedEstimate[i] += zs;
    }
  }
  const counters = sums && dropped
    ? estimatedCounters(c, sums, dropped, sampleN!)
    : c;

  // Phase 5: build results.
  const totals = buildResults(
    states,
    results,
    counters,
    ps,
    pfns,
    root && !(sampled && sampleN! > 1),
    ksmFlag,
  );
  if (sums) addErrorBounds(states, totals, sums, sampleN!, ps, pfns);
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
    ...(sampled
      ? { sample: { slices: sampleN, slice: sampleSlice, z: BOUND_Z } }
      : {}),
    ...(passes > 1 ? { passes } : {}),
  };
}

/** a + b, mapping by mapping (b's arrays may be reused). */
function addCounters(a: MappingCounters, b: MappingCounters): MappingCounters {
  for (const k of Object.keys(a) as (keyof MappingCounters)[]) {
    const x = a[k], y = b[k];
    for (let i = 0; i < x.length; i++) x[i] += y[i];
  }
  return a;
}

/**
 * The counters of a sampled scan, mapping by mapping: the rows dropped
 * added to the exact counts, and the sampled figures as estimates
 * (Float64Arrays: a scaled figure may pass 2^32).
 */
function estimatedCounters(
  c: MappingCounters,
  sums: SampleSums,
  dropped: DroppedRows,
  n: number,
): MappingCounters {
  const m = c.present.length;
  const out = {
    ...c,
    duplicate: new Float64Array(m),
    sharedAlready: new Float64Array(m),
    saveable: new Float64Array(m),
  };
  for (let i = 0; i < m; i++) {
    const zero = dropped.zero[i] ?? 0, zs = dropped.zeroShared[i] ?? 0;
    const heavy = dropped.heavy[i] ?? 0;
    c.present[i] += (dropped.present[i] ?? 0) + zero + zs + heavy;
    c.zero[i] += zero + zs;
    c.sharedEstimate[i] += (dropped.sharedEstimate[i] ?? 0) + zs;
    for (const f of ["duplicate", "sharedAlready", "saveable"] as const) {
      const exact = sums.exact[f][i] +
        (f === "saveable"
          ? zero + heavy
          : f === "sharedAlready"
          ? zs
          : f === "duplicate"
          ? heavy
          : 0);
      out[f][i] = estimate(exact, sums.sampled[f][i], 0, n).estimate;
    }
  }
  return out as unknown as MappingCounters;
}

/** Writes the error bounds of a sampled scan into its results. */
function addErrorBounds(
  states: ProcState[],
  totals: Totals,
  sums: SampleSums,
  n: number,
  ps: number,
  pfns: boolean,
): void {
  type Sampled = { duplicate: number; sharedAlready: number; saveable: number };
  const set = (
    t: PageCounts,
    sq: SampleSums["sqTotal"],
    i: number,
    s: Sampled,
  ) => {
    const nonZero = t.pages_present - t.pages_zero;
    const b = (f: keyof Sampled) => errorBound(sq[f][i], n, n * s[f], nonZero);
    t.pages_duplicate_error_bound = b("duplicate");
    t.pages_shared_already_error_bound = pfns ? b("sharedAlready") : null;
    t.saveable_pages_error_bound = b("saveable");
  };
  const all: Sampled = { duplicate: 0, sharedAlready: 0, saveable: 0 };
  for (const st of states) {
    const r = st.result;
    if (r.skipped) continue;
    const proc: Sampled = { duplicate: 0, sharedAlready: 0, saveable: 0 };
    r.mappings.forEach((mr, mi) => {
      const g = st.firstMap + mi;
      const s: Sampled = {
        duplicate: sums.sampled.duplicate[g],
        sharedAlready: sums.sampled.sharedAlready[g],
        saveable: sums.sampled.saveable[g],
      };
      for (const f of ["duplicate", "sharedAlready", "saveable"] as const) {
        proc[f] += s[f];
        all[f] += s[f];
      }
      set(mr, sums.sqMapping, g, s);
    });
    set(r.totals, sums.sqProcess, sums.procOf[st.firstMap] ?? 0, proc);
    r.totals.saveable_bytes_error_bound = r.totals.saveable_pages_error_bound! *
      ps;
  }
  set(totals, sums.sqTotal, 0, all);
  totals.saveable_bytes_error_bound = totals.saveable_pages_error_bound! * ps;
}
