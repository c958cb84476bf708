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
 * @module
 */
import {
  distinctUnion,
  FramesHidden,
  presentFrames,
  ZeroPageFilter,
} from "../pages/frames.ts";
import type { VmaRange } from "../engine/marker.ts";

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
