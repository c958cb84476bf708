/**
 * Merge planning: which whole VMAs of the selected processes to mark
 * mergeable, and how many pages KSM should then free.
 *
 * KSM can only be told about whole VMAs (split_vma is not exported), and
 * every page of a mergeable VMA costs KSM an rmap item (about 64 bytes) and
 * scanning time whether or not it ever merges. So a VMA is worth marking
 * only when its duplicate pages clearly outweigh that: mergemem marks a VMA
 * when (duplicate pages) − (present pages / 64) ≥ minSaving pages, with
 * minSaving defaulting to {@link DEFAULT_MIN_SAVING} (16 pages, 64 KiB).
 *
 * The page hashes come from the module's PAGEINFO (xxh64 in place, never
 * faulting pages in). The plan groups pages by hash; KSM compares bytes
 * itself before merging, so a hash collision can only make the prediction
 * slightly optimistic, never corrupt memory.
 *
 * @module
 */
import type { ModuleHandle } from "../kmod/client.ts";
import {
  MERGEMEM_PAGEINFO_MAX,
  MERGEMEM_PI_ANON,
  MERGEMEM_PI_HASHED,
  MERGEMEM_PI_KSM,
  MERGEMEM_PI_ZEROFILLED,
} from "../kmod/uapi.ts";

/** The page size mergemem assumes (x86-64, arm64 with 4K pages). */
export const PAGE_SIZE = 4096;

/** The default --min-saving, in pages per VMA. */
export const DEFAULT_MIN_SAVING = 16;

/** One mapping of /proc/PID/maps. */
export interface MapEntry {
  start: bigint;
  end: bigint;
  perms: string;
  path: string;
}

/** Parses /proc/PID/maps text. */
export function parseMaps(text: string): MapEntry[] {
  const out: MapEntry[] = [];
  for (const line of text.split("\n")) {
    const m = /^([0-9a-f]+)-([0-9a-f]+)\s+(\S+)\s+\S+\s+\S+\s+\S+\s*(.*)$/.exec(
      line,
    );
    if (!m) continue;
    out.push({
      start: BigInt("0x" + m[1]),
      end: BigInt("0x" + m[2]),
      perms: m[3],
      path: m[4].trim(),
    });
  }
  return out;
}

/**
 * Whether KSM could ever merge pages of this mapping: private, and not one
 * of the kernel's special mappings. (The module asks ksm_madvise, which
 * rejects the rest itself and reports them as skipped.)
 */
export function isCandidate(e: MapEntry): boolean {
  if (e.perms[3] !== "p") return false;
  if (e.perms[1] !== "w") return false; // read-only: no anonymous copies
  return !["[vsyscall]", "[vvar]", "[vvar_vclock]", "[vdso]", "[uprobes]"]
    .includes(e.path);
}

/** One VMA's analysis. */
export interface VmaPlan {
  start: bigint;
  end: bigint;
  path: string;
  /** Present anonymous pages hashed. */
  present: number;
  /** Pages whose content also appears elsewhere in the selection. */
  duplicate: number;
  /** Pages already merged by KSM. */
  ksm: number;
  /** Whether the plan marks it. */
  selected: boolean;
  /** Whether it already is mergeable (VmFlags "mg"). */
  alreadyMergeable: boolean;
}

/** One process's analysis. */
export interface ProcessPlan {
  pid: number;
  vmas: VmaPlan[];
}

/** The whole plan. */
export interface MergePlan {
  processes: ProcessPlan[];
  /** Pages KSM should free once the selected VMAs are merged. */
  predictedSaveablePages: number;
  /** Pages hashed in total. */
  pagesScanned: number;
}

/** Page hashes collected from one VMA (columnar, to stay small). */
interface VmaPages {
  proc: number;
  vma: number;
  hashes: BigUint64Array;
  ksm: Uint8Array;
}

/** Options of {@link planMerge}. */
export interface PlanOptions {
  /** Minimum net saving per VMA, in pages. */
  minSaving?: number;
  /** KSM's max_page_sharing (sharers per KSM page), default 256. */
  maxPageSharing?: number;
  /** Whether KSM maps zero pages to the shared zero page (use_zero_pages). */
  useZeroPages?: boolean;
  /** Paths of /proc/PID/smaps VmFlags readers, for tests. */
  proc?: string;
}

/** Reads the start addresses of the VMAs flagged "mg" in smaps. */
function mergeableStarts(pid: number, proc: string): Set<bigint> {
  const out = new Set<bigint>();
  let text = "";
  try {
    text = Deno.readTextFileSync(`${proc}/${pid}/smaps`);
  } catch {
    return out;
  }
  let cur: bigint | undefined;
  for (const line of text.split("\n")) {
    const r = /^([0-9a-f]+)-[0-9a-f]+\s/.exec(line);
    if (r) cur = BigInt("0x" + r[1]);
    else if (line.startsWith("VmFlags:") && cur !== undefined) {
      if (line.slice(8).trim().split(/\s+/).includes("mg")) out.add(cur);
    }
  }
  return out;
}

/**
 * Hashes every candidate VMA of every process through PAGEINFO and decides
 * which VMAs to mark. `memFds` maps pid to an open /proc/PID/mem.
 */
export function planMerge(
  mod: ModuleHandle,
  memFds: Map<number, number>,
  opts: PlanOptions = {},
): MergePlan {
  const proc = opts.proc ?? "/proc";
  const minSaving = opts.minSaving ?? DEFAULT_MIN_SAVING;
  const processes: ProcessPlan[] = [];
  const pages: VmaPages[] = [];
  let scanned = 0;
  for (const [pid, fd] of memFds) {
    let maps: MapEntry[];
    try {
      maps = parseMaps(Deno.readTextFileSync(`${proc}/${pid}/maps`));
    } catch {
      continue; // gone
    }
    const mg = mergeableStarts(pid, proc);
    const plan: ProcessPlan = { pid, vmas: [] };
    for (const e of maps.filter(isCandidate)) {
      const hashes: bigint[] = [];
      const ksm: number[] = [];
      let addr = e.start;
      while (addr < e.end) {
        const n = Math.min(
          Number((e.end - addr) / BigInt(PAGE_SIZE)),
          MERGEMEM_PAGEINFO_MAX,
        );
        const b = mod.pageinfo(fd, addr, n);
        for (let i = 0; i < b.done; i++) {
          const f = b.flags[i];
          if (!(f & MERGEMEM_PI_ANON) || !(f & MERGEMEM_PI_HASHED)) continue;
          hashes.push(
            f & MERGEMEM_PI_ZEROFILLED && opts.useZeroPages ? 0n : b.hashes[i],
          );
          ksm.push(f & MERGEMEM_PI_KSM ? 1 : 0);
        }
        addr += BigInt(n * PAGE_SIZE);
      }
      scanned += hashes.length;
      const v: VmaPlan = {
        start: e.start,
        end: e.end,
        path: e.path,
        present: hashes.length,
        duplicate: 0,
        ksm: ksm.reduce((a, x) => a + x, 0),
        selected: hashes.length > 0,
        alreadyMergeable: mg.has(e.start),
      };
      pages.push({
        proc: processes.length,
        vma: plan.vmas.length,
        hashes: BigUint64Array.from(hashes),
        ksm: Uint8Array.from(ksm),
      });
      plan.vmas.push(v);
    }
    processes.push(plan);
  }

  // Choose VMAs; dropping one changes the others' duplicates, so repeat
  // until the choice is stable (a few rounds at most in practice).
  let predicted = 0;
  for (let round = 0; round < 8; round++) {
    const r = evaluate(processes, pages, opts);
    predicted = r.saveable;
    let changed = false;
    for (const p of processes) {
      for (const v of p.vmas) {
        if (!v.selected) continue;
        // Already-mergeable VMAs stay in: KSM scans them anyway.
        const worth = v.alreadyMergeable ||
          v.duplicate - v.present / 64 >= minSaving;
        if (!worth) {
          v.selected = false;
          changed = true;
        }
      }
    }
    if (!changed) break;
  }
  return {
    processes,
    predictedSaveablePages: predicted,
    pagesScanned: scanned,
  };
}

/**
 * Counts, over the selected VMAs, each VMA's duplicate pages and the pages
 * KSM would free: per distinct content with n unmerged copies, n − ⌈n /
 * max_page_sharing⌉ (one KSM page per max_page_sharing sharers), or n when
 * a KSM page of that content already exists (all join it). With
 * use_zero_pages, zero-filled pages all map to the zero page: n.
 */
function evaluate(
  processes: ProcessPlan[],
  pages: VmaPages[],
  opts: PlanOptions,
): { saveable: number } {
  const mps = opts.maxPageSharing ?? 256;
  const groups = new Map<bigint, { n: number; ksm: number }>();
  for (const vp of pages) {
    if (!processes[vp.proc].vmas[vp.vma].selected) continue;
    for (let i = 0; i < vp.hashes.length; i++) {
      const h = vp.hashes[i];
      let g = groups.get(h);
      if (!g) groups.set(h, g = { n: 0, ksm: 0 });
      if (vp.ksm[i]) g.ksm++;
      else g.n++;
    }
  }
  for (const vp of pages) {
    const v = processes[vp.proc].vmas[vp.vma];
    v.duplicate = 0;
    if (!v.selected) continue;
    for (let i = 0; i < vp.hashes.length; i++) {
      const g = groups.get(vp.hashes[i])!;
      if (!vp.ksm[i] && (g.n + g.ksm >= 2)) v.duplicate++;
    }
  }
  let saveable = 0;
  for (const [h, g] of groups) {
    if (g.n === 0) continue;
    if (h === 0n && opts.useZeroPages) saveable += g.n;
    else if (g.ksm > 0) saveable += g.n;
    else if (g.n >= 2) saveable += g.n - Math.ceil(g.n / mps);
  }
  return { saveable };
}
