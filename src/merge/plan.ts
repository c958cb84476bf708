/**
 * Merge planning: which whole VMAs of the selected processes to mark
 * mergeable, and how many pages KSM should then free. The counting is the
 * scan's (src/scan/, docs/accounting.md): this file only chooses among the
 * scan's per-mapping results.
 *
 * KSM can only be told about whole VMAs (split_vma is not exported), and
 * every page of a mergeable VMA costs KSM an rmap item (about 64 bytes) and
 * scanning time whether or not it ever merges. So a KSM-eligible mapping is
 * worth marking only when its duplicate pages clearly outweigh that:
 * pages_duplicate − pages_present / 64 ≥ minSaving pages, with minSaving
 * defaulting to {@link DEFAULT_MIN_SAVING} (16 pages, 64 KiB). Mappings
 * that already are mergeable (VmFlags "mg") stay in: ksmd scans them
 * anyway.
 *
 * The prediction is the scan's saveable_pages over the chosen mappings,
 * counted as if only they had been scanned: a content that also sits in a
 * mapping left out must not count, since KSM will not merge with it. The
 * scan hands over its content class and frame per page
 * (ScanOptions.onPages), so the chosen mappings are recounted alone in
 * memory ({@link recount}, the scan's own rules of docs/accounting.md) and
 * the choice is re-checked on those counts until it no longer changes: one
 * scan.
 *
 * The plan scans with `confirm: false` (ScanOptions.confirm) when the
 * back-end's checksum is a 64-bit hash (the kernel back-end's xxh64):
 * pages with equal hashes count as equal without being re-read for a byte
 * comparison, the largest part of the scan's time otherwise. That is safe
 * because the plan is only a prediction: KSM compares the bytes itself
 * (memcmp_pages) before it merges, so a hash collision could at worst make
 * the prediction off by a page, never merge different pages.
 *
 * @module
 */
import {
  accountContent,
  type ContentCounts,
  newContentCounts,
} from "../dedup/accounting.ts";
import { readMergeableMappings } from "../ksm/process.ts";
import type { HugeNeighbours } from "./achieved.ts";
import type { HashBackend } from "../engine/hash_backend.ts";
import type { MappingResult, ScanResult, Skip } from "../scan/result.ts";
import { scan, type ScanPages } from "../scan/scan.ts";

/** The default --min-saving, in pages per VMA. */
export const DEFAULT_MIN_SAVING = 16;

/** One chosen mapping: the scan's counts over the chosen set. */
export interface PlannedVma extends MappingResult {
  /** It already was mergeable (VmFlags "mg"). */
  already_mergeable: boolean;
}

/** One scanned process. */
export interface ProcessPlan {
  /** Process id. */
  pid: number;
  /** Command name (/proc/PID/comm). */
  comm: string;
  /** Real uid of the process. */
  uid: number;
  /** The mappings to mark, in address order. */
  vmas: PlannedVma[];
}

/** The whole plan. */
export interface MergePlan {
  /** Page size in bytes. */
  page_size: number;
  /** The processes scanned (not skipped), by ascending pid. */
  processes: ProcessPlan[];
  /** The processes the scan could not read. */
  skipped: { pid: number; skip: Skip }[];
  /** The scan's notes for the user. */
  warnings: string[];
  /** Present candidate pages the scan read. */
  pagesScanned: number;
  /** Pages KSM should free once the chosen VMAs are merged. */
  predictedSaveablePages: number;
  /**
   * Frames of the chosen VMAs' pages that scanned pages left out also map
   * (another process's, or an unchosen mapping's): merging cannot free
   * them. In ascending order; empty without PFNs.
   */
  pinnedFrames: Float64Array;
  /**
   * Pages left out (see pinnedFrames) whose frames lie in the same
   * huge-page-sized block of physical memory as a chosen page's frame:
   * where that block is one transparent huge page, merging the chosen page
   * splits it, which can free these frames too (src/merge/achieved.ts,
   * {@link HugeNeighbours}). Empty without PFNs.
   */
  hugeNeighbours: HugeNeighbours;
}

/** Options of {@link scanForPlan}. */
export interface PlanScanOptions {
  /** The process ids to scan. */
  pids: number[];
  /** The page-hash back-end (merge uses the kernel one). */
  backend: HashBackend;
  /** Called during the scan (`scan` is always 1); may throw to abort. */
  onProgress?: (scan: number, pagesDone: number, pagesTotal: number) => void;
}

/** Options of {@link choosePlan}. */
export interface ChooseOptions {
  /** Minimum net saving per VMA, in pages. */
  minSaving?: number;
  /**
   * The processes whose VMAs may be marked (default: all scanned). The
   * others are scanned only for what they share: one trust domain is
   * planned in the light of the whole selection.
   */
  markable?: ReadonlySet<number>;
}

/** Options of {@link planMerge}. */
export interface PlanOptions extends PlanScanOptions, ChooseOptions {}

/** One scan of the selection, from which plans are chosen. */
export interface PlanScan {
  /** The scan's result. */
  result: ScanResult;
  /** Its pages: content class and frame per page. */
  pages: ScanPages;
  /** Each process's mappings already mergeable (start, "0x..."). */
  mergeable: Map<number, Set<string>>;
}

/** The net saving rule of the module documentation. */
export function worthMarking(
  m: MappingResult,
  minSaving: number,
  alreadyMergeable: boolean,
): boolean {
  if (!m.ksm_eligible || m.pages_present === 0) return false;
  return alreadyMergeable ||
    m.pages_duplicate - m.pages_present / 64 >= minSaving;
}

/**
 * Scans the selected processes and chooses the VMAs to mark: one scan,
 * the choice re-checked on in-memory recounts. See the module
 * documentation.
 */
export async function planMerge(opts: PlanOptions): Promise<MergePlan> {
  return choosePlan(await scanForPlan(opts), opts);
}

/** The one scan a plan (or several: one per trust domain) is chosen from. */
export async function scanForPlan(opts: PlanScanOptions): Promise<PlanScan> {
  let pages: ScanPages | undefined;
  const result = await scan({
    selection: { pids: opts.pids },
    backend: opts.backend,
    onProgress: (p) => opts.onProgress?.(1, p.pagesDone, p.pagesTotal),
    onPages: (p) => pages = p,
    // pages_ksm and pages_thp play no part in the plan.
    kpageflags: false,
    // The scan's default: trust xxh64, confirm any other checksum (KSM
    // compares bytes before it merges), see the module documentation.
  });
  if (!pages) throw new Error("scan did not report its pages");
  const mergeable = new Map<number, Set<string>>();
  for (const p of result.processes) {
    if (p.skipped) continue;
    mergeable.set(
      p.pid,
      new Set(readMergeableMappings(p.pid).map((m) => m.startHex)),
    );
  }
  return { result, pages, mergeable };
}

/**
 * Chooses the VMAs to mark among the markable processes' mappings of a
 * scan, and predicts the saving: the choice on the whole scan's counts,
 * then on recounts of the chosen mappings alone until nothing more drops
 * out (it only shrinks).
 */
export function choosePlan(s: PlanScan, opts: ChooseOptions = {}): MergePlan {
  const minSaving = opts.minSaving ?? DEFAULT_MIN_SAVING;
  const { result: r, pages, mergeable: mg } = s;
  const markable = (pid: number) => !opts.markable || opts.markable.has(pid);
  // The scan's mapping index of each (pid, start).
  const index = new Map<string, number>();
  pages.mappings.forEach((m, g) => index.set(`${m.pid}:${m.start}`, g));
  const gOf = (pid: number, m: MappingResult) =>
    index.get(`${pid}:${parseInt(m.start, 16)}`) ?? -1;
  const live = r.processes.filter((p) => !p.skipped && markable(p.pid));

  const chosenG = new Uint8Array(pages.mappings.length);
  for (const p of live) {
    const set = mg.get(p.pid)!;
    for (const m of p.mappings) {
      const g = gOf(p.pid, m);
      if (g >= 0 && worthMarking(m, minSaving, set.has(m.start))) {
        chosenG[g] = 1;
      }
    }
  }
  let counts = recount(pages, chosenG);
  for (;;) {
    let dropped = false;
    for (const p of live) {
      const set = mg.get(p.pid)!;
      for (const m of p.mappings) {
        const g = gOf(p.pid, m);
        if (g < 0 || !chosenG[g]) continue;
        if (!worthMarking(alone(m, g, counts), minSaving, set.has(m.start))) {
          chosenG[g] = 0;
          dropped = true;
        }
      }
    }
    if (!dropped) break;
    counts = recount(pages, chosenG);
  }
  const chosen = new Map<number, PlannedVma[]>();
  for (const p of live) {
    const set = mg.get(p.pid)!;
    const vmas: PlannedVma[] = [];
    for (const m of p.mappings) {
      const g = gOf(p.pid, m);
      if (g < 0 || !chosenG[g]) continue;
      vmas.push({
        ...alone(m, g, counts),
        already_mergeable: set.has(m.start),
      });
    }
    chosen.set(p.pid, vmas);
  }
  const pinned = Float64Array.from(counts.pinned).sort();
  return result(
    r,
    chosen,
    markable,
    pinned,
    hugeNeighbourPages(pages, chosenG, r.page_size),
  );
}

/**
 * The pages left out (`chosen[mapping]` clear) whose frame shares a
 * PMD-sized block of frames (page size / 8 frames: 512 with 4 KiB pages,
 * the size and alignment of a PMD-mapped transparent huge page) with a
 * chosen page's frame. Whether the block really is one huge page is
 * checked when the merge measures (kpageflags, root only).
 */
export function hugeNeighbourPages(
  pages: ScanPages,
  chosen: Uint8Array,
  pageSize: number,
): HugeNeighbours {
  const { mapping, frame, page, count, mappings } = pages;
  const out: HugeNeighbours = { pid: [], address: [], frame: [] };
  const perBlock = pageSize / 8;
  const blocks = new Set<number>();
  for (let i = 0; i < count; i++) {
    if (chosen[mapping[i]] && frame[i] !== 0) {
      blocks.add(Math.floor(frame[i] / perBlock));
    }
  }
  if (blocks.size === 0) return out;
  for (let i = 0; i < count; i++) {
    if (chosen[mapping[i]] || frame[i] === 0) continue;
    if (!blocks.has(Math.floor(frame[i] / perBlock))) continue;
    const m = mappings[mapping[i]];
    out.pid.push(m.pid);
    out.address.push(m.start + page[i] * pageSize);
    out.frame.push(frame[i]);
  }
  return out;
}

/** A mapping's scan counts with the recounted ones put in. */
function alone(m: MappingResult, g: number, c: Recount): MappingResult {
  return {
    ...m,
    pages_duplicate: c.duplicate[g],
    saveable_pages: c.saveable[g],
    pages_shared_already: m.pages_shared_already === null
      ? null
      : c.sharedAlready[g],
  };
}

/** Per-mapping counts of {@link recount} (index: the scan's mapping), and
 * the frames that pages left out also map. */
export type Recount = ContentCounts & { pinned: Set<number> };

/**
 * Counts pages_duplicate, saveable_pages and pages_shared_already of the
 * mappings with `chosen[g]` set as if only they had been scanned, from a
 * scan's content classes and frames: each content's pages, ordered by
 * frame, go through the scan's own rules ({@link accountContent},
 * docs/accounting.md). A frame that a page left out also maps is pinned:
 * merging cannot free it, so it is not saveable.
 */
export function recount(pages: ScanPages, chosen: Uint8Array): Recount {
  const { mapping, frame, content, count } = pages;
  // The frames that pages left out map, then those of them that chosen
  // pages map too. Usually few pages are left out (merge plans most).
  const outside = new Set<number>();
  let maxLabel = 0, n = 0;
  for (let i = 0; i < count; i++) {
    if (!chosen[mapping[i]]) {
      if (frame[i] !== 0) outside.add(frame[i]);
      continue;
    }
    n++;
    if (content[i] > maxLabel) maxLabel = content[i];
  }
  const pinned = new Set<number>();
  if (outside.size > 0) {
    for (let i = 0; i < count; i++) {
      if (chosen[mapping[i]] && outside.has(frame[i])) pinned.add(frame[i]);
    }
  }
  const c: Recount = { ...newContentCounts(pages.mappings.length), pinned };
  const isPinned = pinned.size > 0 ? (f: number) => pinned.has(f) : undefined;
  // Bucket the chosen rows by content (a counting sort), then order each
  // bucket by (frame, row).
  const start = new Uint32Array(maxLabel + 2);
  for (let i = 0; i < count; i++) {
    if (chosen[mapping[i]]) start[content[i] + 1]++;
  }
  for (let l = 0; l <= maxLabel; l++) start[l + 1] += start[l];
  const rows = new Uint32Array(n);
  const fill = start.slice(0, maxLabel + 1);
  for (let i = 0; i < count; i++) {
    if (chosen[mapping[i]]) rows[fill[content[i]]++] = i;
  }
  const byFrame = (a: number, b: number) =>
    frame[a] !== frame[b] ? frame[a] - frame[b] : a - b;
  const cols = { mapping, page: pages.page, frame };
  for (let l = 0; l <= maxLabel; l++) {
    const s = start[l], e = start[l + 1];
    if (e - s < 2) continue;
    // A bucket holds its rows in ascending order, so a stable sort by
    // frame orders it by (frame, row). Most buckets are a few pages: an
    // insertion sort there, much cheaper than a sort call per bucket.
    if (e - s <= SMALL_BUCKET) {
      for (let j = s + 1; j < e; j++) {
        const r = rows[j], f = frame[r];
        let k = j;
        for (; k > s && frame[rows[k - 1]] > f; k--) rows[k] = rows[k - 1];
        rows[k] = r;
      }
    } else rows.subarray(s, e).sort(byFrame);
    accountContent(cols, rows, s, e, l === 0, c, isPinned);
  }
  return c;
}

/** Buckets up to this size are insertion-sorted (see {@link recount}). */
const SMALL_BUCKET = 32;

function result(
  r: ScanResult,
  chosen: Map<number, PlannedVma[]>,
  markable: (pid: number) => boolean,
  pinnedFrames: Float64Array,
  hugeNeighbours: HugeNeighbours,
): MergePlan {
  let predicted = 0, scanned = 0;
  const processes: ProcessPlan[] = [];
  for (const p of r.processes) {
    if (p.skipped || !markable(p.pid)) continue;
    scanned += p.totals.pages_present;
    const vmas = chosen.get(p.pid) ?? [];
    predicted += vmas.reduce((a, v) => a + v.saveable_pages, 0);
    processes.push({ pid: p.pid, comm: p.comm, uid: p.uid, vmas });
  }
  return {
    page_size: r.page_size,
    processes,
    skipped: r.processes.filter((p) => p.skipped && markable(p.pid)).map((
      p,
    ) => ({
      pid: p.pid,
      skip: p.skipped!,
    })),
    warnings: r.warnings,
    pagesScanned: scanned,
    predictedSaveablePages: predicted,
    pinnedFrames,
    hugeNeighbours,
  };
}
