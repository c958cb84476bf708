/**
 * The counting rules of docs/accounting.md, in one pure function over the
 * pages of one content. The scan's analysis (analyze.ts) and the merge
 * plan's recount of chosen mappings (src/merge/plan.ts) both count with it.
 *
 * @module
 */

/**
 * Counted pages as columns indexed by row. Rows with the same non-zero
 * `frame` share one physical frame; frame 0 means "no frame number known"
 * (no CAP_SYS_ADMIN, a non-exclusive page): all such rows of one content
 * stand for ONE frame (docs/accounting.md, "Without CAP_SYS_ADMIN").
 */
export interface PageColumns {
  /** The page's mapping (an index into the caller's mapping list, which
   * is in scan order: processes by pid, mappings by address). */
  mapping: Uint16Array | Uint32Array;
  /** The page's index within its mapping. */
  page: Uint32Array;
  /** The PFN, a stand-in, or 0 (see above). */
  frame: Uint32Array | Float64Array;
}

/** Per-mapping figures the accounting adds to (index: mapping). */
export interface ContentCounts {
  /** pages_duplicate. */
  duplicate: Uint32Array;
  /** saveable_pages. */
  saveable: Uint32Array;
  /** pages_shared_already. */
  sharedAlready: Uint32Array;
}

/** Per-mapping counters of `mappings` mappings, all 0. */
export function newContentCounts(mappings: number): ContentCounts {
  return {
    duplicate: new Uint32Array(mappings),
    saveable: new Uint32Array(mappings),
    sharedAlready: new Uint32Array(mappings),
  };
}

/**
 * Accounts the pages of ONE content: `rows[start, end)`, ordered by
 * (frame, row), adding to `out` (docs/accounting.md):
 *
 * - a page is **shared already** when another page of the list has its
 *   (non-zero) frame;
 * - a **frame head** is the first row of each frame (of each content for
 *   frame 0);
 * - when the content sits on two or more frames, every page of it is a
 *   **duplicate** unless the content is zero-filled (`zeroContent`), and
 *   every head but the **keeper** (the head whose page comes first in
 *   scan order: mapping, then page) is **saveable**, charged to its own
 *   mapping.
 *
 * Frames are never shared between contents (a frame has one content), so
 * counting each content alone gives the figures of the whole scan.
 *
 * `pinned` (the merge plan's recount) names frames that pages outside the
 * counted set also map: merging the counted pages cannot free them, so
 * they are neither the keeper nor saveable (docs/accounting.md, "Frames
 * pinned by pages left out").
 */
export function accountContent(
  cols: PageColumns,
  rows: ArrayLike<number>,
  start: number,
  end: number,
  zeroContent: boolean,
  out: ContentCounts,
  pinned?: (frame: number) => boolean,
): void {
  const { mapping, page, frame } = cols;
  // A pinned frame stays in use whatever KSM does (pages outside the
  // counted set map it): it is neither the keeper nor saveable.
  const isPinned = (f: number) => f !== 0 && pinned !== undefined && pinned(f);
  let frames = 0, keeper = -1;
  for (let j = start; j < end; j++) {
    const i = rows[j];
    if (j > start && frame[i] === frame[rows[j - 1]]) continue;
    frames++;
    if (isPinned(frame[i])) continue;
    if (
      keeper < 0 || mapping[i] < mapping[keeper] ||
      (mapping[i] === mapping[keeper] && page[i] < page[keeper])
    ) keeper = i;
  }
  for (let j = start; j < end; j++) {
    const i = rows[j];
    const f = frame[i];
    const head = j === start || f !== frame[rows[j - 1]];
    if (
      f !== 0 && (!head || (j + 1 < end && frame[rows[j + 1]] === f))
    ) out.sharedAlready[mapping[i]]++;
    if (frames < 2) continue;
    if (!zeroContent) out.duplicate[mapping[i]]++;
    if (head && i !== keeper && !isPinned(f)) out.saveable[mapping[i]]++;
  }
}
