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
  distinctFrames,
  FramesHidden,
  ZeroPageFilter,
} from "../pages/frames.ts";
import type { VmaRange } from "./marker.ts";

export { FramesHidden, ZeroPageFilter };

/** The frames of each process, by pid; a pid that is gone is absent. */
export type FrameSets = Map<number, Set<number>>;

/** Reads the frames of every process; gone processes are left out. */
export function readSelectionFrames(
  vmas: Map<number, VmaRange[]>,
  zero: ZeroPageFilter,
): FrameSets {
  const out: FrameSets = new Map();
  for (const [pid, ranges] of vmas) {
    const f = distinctFrames(pid, ranges, zero);
    if (f) out.set(pid, f);
  }
  return out;
}

/** Distinct frames in the union of the sets of `pids`. */
export function unionSize(sets: FrameSets, pids: Iterable<number>): number {
  return union(sets, pids).size;
}

/**
 * Frames freed between two measures, over the processes present in both:
 * the frames the selection no longer maps, except those that pages left
 * out of the merge still map (`pinned`: a server's parent keeps the frames
 * it shares with its workers since the fork), minus the frames it maps
 * anew. `before` and `after` are the distinct frames at both ends.
 */
export function framesFreed(
  before: FrameSets,
  after: FrameSets,
  pinned: ReadonlySet<number> = new Set(),
): { before: number; after: number; freed: number } {
  const survivors = [...before.keys()].filter((p) => after.has(p));
  const b = union(before, survivors), a = union(after, survivors);
  let gone = 0, added = 0;
  for (const f of b) if (!a.has(f) && !pinned.has(f)) gone++;
  for (const f of a) if (!b.has(f)) added++;
  return { before: b.size, after: a.size, freed: gone - added };
}

function union(sets: FrameSets, pids: Iterable<number>): Set<number> {
  const all = new Set<number>();
  for (const pid of pids) {
    for (const f of sets.get(pid) ?? []) all.add(f);
  }
  return all;
}
