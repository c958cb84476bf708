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
 * mapping left out must not count, since KSM will not merge with it. When a
 * mapping left out holds duplicate or zero-filled pages, the chosen
 * mappings are therefore scanned again on their own (the other pages are
 * hidden from the scan by {@link restrictBackend}) and the choice is
 * re-checked on those counts; at most {@link MAX_SCANS} scans.
 *
 * @module
 */
import { readMergeableMappings } from "../ksm/process.ts";
import type {
  HashBackend,
  HashTarget,
  PageHashOutput,
  PageRuns,
} from "../scan/backend.ts";
import type { MappingResult, ScanResult, Skip } from "../scan/result.ts";
import { scan } from "../scan/scan.ts";

/** The default --min-saving, in pages per VMA. */
export const DEFAULT_MIN_SAVING = 16;

/** The most scans one plan takes (the first one plus re-checks). */
export const MAX_SCANS = 3;

/** One chosen mapping: the scan's counts over the chosen set. */
export interface PlannedVma extends MappingResult {
  /** It already was mergeable (VmFlags "mg"). */
  already_mergeable: boolean;
}

/** One scanned process. */
export interface ProcessPlan {
  pid: number;
  comm: string;
  uid: number;
  /** The mappings to mark, in address order. */
  vmas: PlannedVma[];
}

/** The whole plan. */
export interface MergePlan {
  page_size: number;
  /** The processes scanned (not skipped), by ascending pid. */
  processes: ProcessPlan[];
  /** The processes the scan could not read. */
  skipped: { pid: number; skip: Skip }[];
  warnings: string[];
  /** Present candidate pages the first (whole) scan read. */
  pagesScanned: number;
  /** Pages KSM should free once the chosen VMAs are merged. */
  predictedSaveablePages: number;
  /** Scans it took (1 when the first scan's counts were already exact). */
  scans: number;
}

/** Options of {@link planMerge}. */
export interface PlanOptions {
  pids: number[];
  /** The page-hash back-end (merge uses the kernel one). */
  backend: HashBackend;
  /** Minimum net saving per VMA, in pages. */
  minSaving?: number;
  /** Called during the scans; may throw to abort (Ctrl-C). */
  onProgress?: (scan: number, pagesDone: number, pagesTotal: number) => void;
}

/** Address ranges [start, end) per pid. */
type Ranges = Map<number, [number, number][]>;

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
 * Scans the selected processes and chooses the VMAs to mark. See the
 * module documentation.
 */
export async function planMerge(opts: PlanOptions): Promise<MergePlan> {
  const minSaving = opts.minSaving ?? DEFAULT_MIN_SAVING;
  const mergeable = new Map<number, Set<string>>();
  let keep: Ranges | undefined;
  let first: ScanResult | undefined;
  for (let n = 1;; n++) {
    const r = await scan({
      selection: { pids: opts.pids },
      backend: keep ? restrictBackend(opts.backend, keep) : opts.backend,
      onProgress: (p) => opts.onProgress?.(n, p.pagesDone, p.pagesTotal),
    });
    first ??= r;
    // The last scan counted the kept mappings alone: keep them all, so
    // that its counts are exactly the prediction.
    const last = keep !== undefined && n === MAX_SCANS;
    const chosen = new Map<number, PlannedVma[]>();
    for (const p of r.processes) {
      if (p.skipped) continue;
      if (!mergeable.has(p.pid)) {
        mergeable.set(
          p.pid,
          new Set(readMergeableMappings(p.pid).map((m) => m.startHex)),
        );
      }
      const mg = mergeable.get(p.pid)!;
      const kept = keep?.get(p.pid);
      chosen.set(
        p.pid,
        p.mappings.filter((m) =>
          last
            ? inRanges(kept, parseInt(m.start, 16))
            : worthMarking(m, minSaving, mg.has(m.start))
        ).map((m) => ({ ...m, already_mergeable: mg.has(m.start) })),
      );
    }
    // Exact when no content of a chosen mapping can also sit in a mapping
    // left out; otherwise scan the chosen ones alone and choose again.
    const exact = last || [...chosen.values()].every((v) => !v.length) ||
      r.processes.every((p) =>
        p.mappings.every((m) =>
          (m.pages_duplicate === 0 && m.pages_zero === 0) ||
          chosen.get(p.pid)?.some((c) => c.start === m.start)
        )
      );
    if (exact) return result(r, first, chosen, n);
    keep = new Map();
    for (const [pid, vmas] of chosen) {
      keep.set(
        pid,
        vmas.map((v) => [parseInt(v.start, 16), parseInt(v.end, 16)]),
      );
    }
  }
}

function result(
  r: ScanResult,
  first: ScanResult,
  chosen: Map<number, PlannedVma[]>,
  scans: number,
): MergePlan {
  let predicted = 0;
  const processes: ProcessPlan[] = [];
  for (const p of r.processes) {
    if (p.skipped) continue;
    const vmas = chosen.get(p.pid) ?? [];
    predicted += vmas.reduce((a, v) => a + v.saveable_pages, 0);
    processes.push({ pid: p.pid, comm: p.comm, uid: p.uid, vmas });
  }
  return {
    page_size: r.page_size,
    processes,
    skipped: r.processes.filter((p) => p.skipped).map((p) => ({
      pid: p.pid,
      skip: p.skipped!,
    })),
    warnings: first.warnings,
    pagesScanned: first.totals.pages_present,
    predictedSaveablePages: predicted,
    scans,
  };
}

function inRanges(
  ranges: [number, number][] | undefined,
  addr: number,
): boolean {
  return ranges?.some(([s, e]) => addr >= s && addr < e) ?? false;
}

/**
 * A back-end that hashes only the pages inside `keep` (per pid) and reports
 * every other page as not read (flags 0), so that the scan counts the kept
 * mappings as if nothing else had been scanned. The scan builds its runs
 * per mapping, so a run lies wholly inside or outside a kept VMA. The
 * hidden pages count as pages_vanished, which the plan does not use.
 */
export function restrictBackend(
  inner: HashBackend,
  keep: Ranges,
): HashBackend {
  return {
    name: inner.name,
    checksum: inner.checksum,
    open: (pid: number) => inner.open(pid),
    async hashPages(
      target: HashTarget,
      runs: PageRuns,
      out: PageHashOutput,
    ): Promise<number> {
      const ranges = keep.get(target.pid);
      let k = 0;
      for (let i = 0; i < runs.count;) {
        const inside = inRanges(ranges, runs.addr[i]);
        let j = i, pages = 0;
        while (j < runs.count && inRanges(ranges, runs.addr[j]) === inside) {
          pages += runs.pages[j++];
        }
        const offset = out.offset + k;
        if (inside) {
          await inner.hashPages(target, {
            count: j - i,
            addr: runs.addr.subarray(i, j),
            pages: runs.pages.subarray(i, j),
            notExclusive: runs.notExclusive,
          }, { ...out, offset });
        } else out.flags.fill(0, offset, offset + pages);
        k += pages;
        i = j;
      }
      return k;
    },
    close: (target: HashTarget) => inner.close(target),
  };
}
