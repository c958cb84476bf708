/**
 * What a merge achieved, measured on the selection itself: the distinct
 * physical frames behind the candidate pages of the chosen VMAs, before
 * and after. The difference is the memory this selection freed, whatever
 * freed it (a KSM merge, a KSM zero page, a THP split onto the shared zero
 * page) and whatever other KSM users on the host did meanwhile, which the
 * global pages_sharing delta cannot tell apart.
 *
 * Candidate pages are those of the accounting (docs/accounting.md):
 * present and anonymous (pagemap bit 61 clear). The shared zero page, and
 * the huge zero page, cost nothing and are not frames of the selection;
 * they are recognised by KPF_ZERO_PAGE. Only pagemap and kpageflags are
 * read, never page contents (src/pages/frames.ts), so a measure is cheap
 * enough to repeat during the ksmd burst. PFNs need CAP_SYS_ADMIN
 * ({@link FramesHidden}).
 *
 * Processes that exit between two measures are left out of both: the
 * figure is over the survivors.
 *
 * One effect reaches beyond the chosen VMAs: to merge a small page of a
 * transparent huge page, KSM splits the huge page, and since Linux 6.12 a
 * split maps every zero-filled small page of it, in every process that
 * maps it, to the shared zero page. Where a huge page was shared since a
 * fork (a server's root parent and its workers), the parent's frames of it
 * are freed too (measured with php-fpm on 6.12: 480 of the root parent's
 * 510 huge-page frames). {@link freedNeighbours} counts those: frames of
 * pages left out of the merge, in a huge page a chosen page mapped, that no
 * page of the selection maps any more.
 *
 * @module
 */
import {
  distinctUnion,
  FramesHidden,
  presentFrames,
  ZeroPageFilter,
} from "../pages/frames.ts";
import type { VmaRange } from "../engine/marker.ts";
import {
  KPF_THP,
  KPF_ZERO_PAGE,
  lookupKpageflagsOrdered,
  pfnOf,
  readEntries,
} from "../pages/pagemap.ts";
import { systemPageSize } from "../pages/pagesize.ts";

export { FramesHidden, ZeroPageFilter };

/**
 * The frames of each process, by pid, in any order, repeats allowed
 * ({@link presentFrames}: unions sort once); a pid that is gone is
 * absent.
 */
export type FrameSets = Map<number, Float64Array>;

/** Reads the frames of every process; gone processes are left out. */
export function readSelectionFrames(
  vmas: Map<number, VmaRange[]>,
  zero: ZeroPageFilter,
): FrameSets {
  const out: FrameSets = new Map();
  for (const [pid, ranges] of vmas) {
    const f = presentFrames(pid, ranges, zero);
    if (f) out.set(pid, f);
  }
  return out;
}

/** What {@link freedSince} measures. */
export interface Freed {
  /** Distinct frames of the survivors at the first measure. */
  before: number;
  /** The same at the second. */
  after: number;
  /** Frames freed: gone (not pinned) minus new. */
  freed: number;
}

/**
 * Frames freed from `before` (which must not change) to each measure
 * passed to the function returned, over the processes present in both:
 * the frames the selection no longer maps, except those that pages left
 * out of the merge still map (`pinned`, in ascending order: a server's
 * parent keeps the frames it shares with its workers since the fork),
 * minus the frames it maps anew. The burst samples progress many times
 * against one `before`, whose union over the survivors is kept while they
 * stay the same, so a sample costs the union of its own measure and one
 * merge walk.
 */
export function freedSince(
  before: FrameSets,
  pinned: ArrayLike<number> = [],
): (after: FrameSets) => Freed {
  let key: string | undefined, b: Float64Array = new Float64Array(0);
  return (after) => {
    const survivors = [...before.keys()].filter((p) => after.has(p));
    if (survivors.join(",") !== key) {
      key = survivors.join(",");
      b = union(before, survivors);
    }
    const a = union(after, survivors);
    // One walk over both sorted unions and the sorted pinned frames.
    let gone = 0, added = 0, i = 0, j = 0, k = 0;
    while (i < b.length || j < a.length) {
      if (j >= a.length || (i < b.length && b[i] < a[j])) {
        const f = b[i++];
        while (k < pinned.length && pinned[k] < f) k++;
        if (k >= pinned.length || pinned[k] !== f) gone++;
      } else if (i >= b.length || a[j] < b[i]) {
        j++;
        added++;
      } else {
        i++;
        j++;
      }
    }
    return { before: b.length, after: a.length, freed: gone - added };
  };
}

function union(sets: FrameSets, pids: Iterable<number>): Float64Array {
  const arrays: Float64Array[] = [];
  for (const pid of pids) {
    const f = sets.get(pid);
    if (f) arrays.push(f);
  }
  return distinctUnion(arrays);
}

/**
 * Pages left out of a merge (in unchosen mappings or other processes of
 * the selection), by virtual address, whose frames may lie in a
 * transparent huge page that a chosen page maps too: parallel arrays.
 */
export interface HugeNeighbours {
  /** The process of each page. */
  pid: number[];
  /** The page's virtual address. */
  address: number[];
  /** Its frame (PFN) when the plan's scan read it. */
  frame: number[];
}

/**
 * The pages of `n` whose frame kpageflags calls part of a transparent huge
 * page (and not the huge zero page) now: only those can be freed by a
 * split. Empty when kpageflags cannot be read (then nothing beyond the
 * chosen VMAs is counted).
 */
export function hugePageNeighbours(
  n: HugeNeighbours,
  kpageflags = "/proc/kpageflags",
): HugeNeighbours {
  const out: HugeNeighbours = { pid: [], address: [], frame: [] };
  if (n.frame.length === 0) return out;
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(kpageflags);
  } catch {
    return out;
  }
  try {
    const order = Uint32Array.from(n.frame.keys());
    order.sort((a, b) => n.frame[a] - n.frame[b]);
    const keep = new Uint8Array(n.frame.length);
    lookupKpageflagsOrdered(file, n.frame, order, order.length, (k, lo) => {
      if ((lo & (1 << KPF_THP)) && !(lo & (1 << KPF_ZERO_PAGE))) keep[k] = 1;
    }, 16);
    for (let k = 0; k < keep.length; k++) {
      if (!keep[k]) continue;
      out.pid.push(n.pid[k]);
      out.address.push(n.address[k]);
      out.frame.push(n.frame[k]);
    }
  } finally {
    file.close();
  }
  return out;
}

/**
 * How many distinct frames of `n` no page of the selection maps any more:
 * the page of `n` that mapped each now maps another frame or none, and
 * no chosen page maps it (`chosenNow`, the chosen VMAs' frames now). A
 * frame whose process is gone counts as still mapped: an exit is not the
 * merge's doing.
 */
export function freedNeighbours(
  n: HugeNeighbours,
  chosenNow: FrameSets,
): number {
  if (n.frame.length === 0) return 0;
  const ps = systemPageSize();
  const still = new Set<number>();
  const byPid = new Map<number, number[]>();
  n.pid.forEach((pid, k) => {
    const ks = byPid.get(pid);
    if (ks) ks.push(k);
    else byPid.set(pid, [k]);
  });
  const entry = new Uint32Array(2);
  for (const [pid, ks] of byPid) {
    let file: Deno.FsFile;
    try {
      file = Deno.openSync(`/proc/${pid}/pagemap`);
    } catch {
      for (const k of ks) still.add(n.frame[k]);
      continue;
    }
    try {
      for (const k of ks) {
        if (readEntries(file, n.address[k] / ps, 1, entry) < 1) {
          still.add(n.frame[k]); // gone, or the address space changed
          continue;
        }
        if (pfnOf(entry[0], entry[1]) === n.frame[k]) still.add(n.frame[k]);
      }
    } catch {
      for (const k of ks) still.add(n.frame[k]);
    } finally {
      file.close();
    }
  }
  const freed = new Set(n.frame.filter((f) => !still.has(f)));
  for (const frames of chosenNow.values()) {
    if (freed.size === 0) break;
    for (const f of frames) freed.delete(f);
  }
  return freed.size;
}
