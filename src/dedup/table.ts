/**
 * The page table of a scan: one row per hashed candidate page, stored as
 * columns of typed arrays (25 bytes a page) instead of one object a page,
 * so that a scan of millions of pages stays small.
 *
 * @module
 */

/** The content is all zero bytes. */
export const F_ZERO = 2;
/** pagemap bit 56: mapped exactly once. */
export const F_EXCLUSIVE = 4;
/** kpageflags: a KSM page. */
export const F_KSM = 8;
/** kpageflags: part of a transparent huge page. */
export const F_THP = 16;
/** kpageflags: the kernel's shared zero page. */
export const F_ZERO_PAGE = 32;
/** Another row has the same (real) PFN: the frame is already shared. */
export const F_SHARED = 64;

/** Columns of the page table. Row i is page i; see the field docs. */
export interface PageTable {
  /** Rows in use. */
  length: number;
  /** Rows allocated. */
  capacity: number;
  /** Index of the page's mapping in the scan's mapping list. */
  mapIdx: Uint32Array;
  /** The page's index within its mapping. */
  pageIdx: Uint32Array;
  /**
   * The PFN, or, without PFNs, a stand-in: a unique number per exclusive
   * page and 0 for every non-exclusive one (see docs/accounting.md).
   */
  pfn: Float64Array;
  /** Low and high halves of the 64-bit content hash (or grouping key). */
  hashLo: Uint32Array;
  hashHi: Uint32Array;
  /** F_* bits (bit 0 is PAGE_HASHED, always set in the table). */
  flags: Uint8Array;
}

/** Creates an empty table with room for `capacity` rows. */
export function newTable(capacity: number): PageTable {
  capacity = Math.max(1024, Math.ceil(capacity));
  return {
    length: 0,
    capacity,
    mapIdx: new Uint32Array(capacity),
    pageIdx: new Uint32Array(capacity),
    pfn: new Float64Array(capacity),
    hashLo: new Uint32Array(capacity),
    hashHi: new Uint32Array(capacity),
    flags: new Uint8Array(capacity),
  };
}

function grown<T extends Uint32Array | Float64Array | Uint8Array>(
  a: T,
  n: number,
  cap: number,
): T {
  const b = new (a.constructor as new (n: number) => T)(cap);
  b.set(a.subarray(0, n));
  return b;
}

/** Makes room for `extra` more rows (grows by 1.5x at least). */
export function reserve(t: PageTable, extra: number): void {
  const need = t.length + extra;
  if (need <= t.capacity) return;
  const cap = Math.max(need, Math.ceil(t.capacity * 1.5));
  t.mapIdx = grown(t.mapIdx, t.length, cap);
  t.pageIdx = grown(t.pageIdx, t.length, cap);
  t.pfn = grown(t.pfn, t.length, cap);
  t.hashLo = grown(t.hashLo, t.length, cap);
  t.hashHi = grown(t.hashHi, t.length, cap);
  t.flags = grown(t.flags, t.length, cap);
  t.capacity = cap;
}

/**
 * Sorts rows [0, length) in place by (hashHi, hashLo, pfn, mapIdx,
 * pageIdx), or by PFN alone: equal contents become neighbours, and within them each
 * frame's rows are contiguous and in scan order. An in-place quicksort
 * that swaps every column, so sorting needs no extra memory per row.
 */
export function sortTable(t: PageTable, by: "hash" | "pfn" = "hash"): void {
  const { hashHi, hashLo, pfn, mapIdx, pageIdx, flags } = t;
  const less = by === "pfn"
    ? (i: number, j: number) => pfn[i] < pfn[j]
    : (i: number, j: number): boolean => {
      if (hashHi[i] !== hashHi[j]) return hashHi[i] < hashHi[j];
      if (hashLo[i] !== hashLo[j]) return hashLo[i] < hashLo[j];
      if (pfn[i] !== pfn[j]) return pfn[i] < pfn[j];
      if (mapIdx[i] !== mapIdx[j]) return mapIdx[i] < mapIdx[j];
      return pageIdx[i] < pageIdx[j];
    };
  const swap = (i: number, j: number): void => {
    let x = hashHi[i];
    hashHi[i] = hashHi[j];
    hashHi[j] = x;
    x = hashLo[i];
    hashLo[i] = hashLo[j];
    hashLo[j] = x;
    x = pfn[i];
    pfn[i] = pfn[j];
    pfn[j] = x;
    x = mapIdx[i];
    mapIdx[i] = mapIdx[j];
    mapIdx[j] = x;
    x = pageIdx[i];
    pageIdx[i] = pageIdx[j];
    pageIdx[j] = x;
    x = flags[i];
    flags[i] = flags[j];
    flags[j] = x;
  };
  const stack: number[] = [0, t.length - 1];
  while (stack.length) {
    let hi = stack.pop()!;
    let lo = stack.pop()!;
    while (hi - lo > 16) {
      // Median of three to the front as the pivot.
      const mid = (lo + hi) >>> 1;
      if (less(mid, lo)) swap(mid, lo);
      if (less(hi, lo)) swap(hi, lo);
      if (less(hi, mid)) swap(hi, mid);
      swap(lo, mid);
      let i = lo + 1, j = hi;
      for (;;) {
        while (i <= j && less(i, lo)) i++;
        while (j >= i && less(lo, j)) j--;
        if (i >= j) break;
        swap(i++, j--);
      }
      swap(lo, j);
      // Recurse into the smaller side, loop on the larger.
      if (j - lo < hi - j) {
        stack.push(j + 1, hi);
        hi = j - 1;
      } else {
        stack.push(lo, j - 1);
        lo = j + 1;
      }
    }
    for (let i = lo + 1; i <= hi; i++) {
      for (let j = i; j > lo && less(j, j - 1); j--) swap(j, j - 1);
    }
  }
}

/**
 * Sets {@link F_SHARED} on every row whose PFN another row has too: a frame
 * mapped twice among the scanned pages (fork COW, KSM, the zero page).
 * Sorts the table by PFN to do so; PFN 0 (no PFN known) is never shared.
 */
export function markSharedFrames(t: PageTable): void {
  sortTable(t, "pfn");
  const { pfn, flags } = t;
  for (let i = 0; i < t.length; i++) {
    const p = pfn[i];
    if (
      p !== 0 &&
      ((i > 0 && pfn[i - 1] === p) || (i + 1 < t.length && pfn[i + 1] === p))
    ) flags[i] |= F_SHARED;
  }
}
