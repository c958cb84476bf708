/**
 * The page table of a scan: one row per hashed candidate page, stored as
 * columns of typed arrays (19 bytes a page) instead of one object a page,
 * so that a scan of millions of pages stays small.
 *
 * @module
 */

/** Columns of the page table. Row i is page i; see the field docs. */
export interface PageTable {
  /** Rows in use. */
  length: number;
  /** Rows allocated. */
  capacity: number;
  /**
   * Index of the page's mapping in the scan's mapping list. A Uint16Array
   * (2 bytes a page) until a value of 2^16 or more is stored through
   * {@link setMapIdx}, which widens it to a Uint32Array.
   */
  mapIdx: Uint16Array | Uint32Array;
  /** The page's index within its mapping. */
  pageIdx: Uint32Array;
  /**
   * The PFN, or, without PFNs, a stand-in: a unique number per exclusive
   * page and 0 for every non-exclusive one (see docs/accounting.md).
   * A Uint32Array (4 bytes a page) until a value of 2^32 or more is stored
   * through {@link setPfn}, which widens it to a Float64Array.
   */
  pfn: Uint32Array | Float64Array;
  /** Low and high halves of the 64-bit content hash (or grouping key). */
  hashLo: Uint32Array;
  hashHi: Uint32Array;
  /** PAGE_* bits of src/pages/flags.ts (PAGE_HASHED always set). */
  flags: Uint8Array;
}

/** Creates an empty table with room for `capacity` rows. */
export function newTable(capacity: number): PageTable {
  capacity = Math.max(1024, Math.ceil(capacity));
  return {
    length: 0,
    capacity,
    mapIdx: new Uint16Array(capacity),
    pageIdx: new Uint32Array(capacity),
    pfn: new Uint32Array(capacity),
    hashLo: new Uint32Array(capacity),
    hashHi: new Uint32Array(capacity),
    flags: new Uint8Array(capacity),
  };
}

function grown<
  T extends Uint16Array | Uint32Array | Float64Array | Uint8Array,
>(
  a: T,
  n: number,
  cap: number,
): T {
  const b = new (a.constructor as new (n: number) => T)(cap);
  b.set(a.subarray(0, n));
  return b;
}

/** Stores a mapping index at row `i`, widening the column if needed. */
export function setMapIdx(t: PageTable, i: number, v: number): void {
  if (v > 0xffff && !(t.mapIdx instanceof Uint32Array)) {
    const w = new Uint32Array(t.capacity);
    w.set(t.mapIdx);
    t.mapIdx = w;
  }
  t.mapIdx[i] = v;
}

/** Stores a PFN (or stand-in) at row `i`, widening the column if needed. */
export function setPfn(t: PageTable, i: number, v: number): void {
  if (v > 0xffffffff && !(t.pfn instanceof Float64Array)) {
    const w = new Float64Array(t.capacity);
    w.set(t.pfn);
    t.pfn = w;
  }
  t.pfn[i] = v;
}

/** Makes room for `extra` more rows (grows by 1.5x at least). */
export function reserve(t: PageTable, extra: number): void {
  const need = t.length + extra;
  if (need <= t.capacity) return;
  const cap = Math.max(need, Math.ceil(t.capacity * 1.5));
  t.mapIdx = grown<Uint16Array | Uint32Array>(t.mapIdx, t.length, cap);
  t.pageIdx = grown(t.pageIdx, t.length, cap);
  t.pfn = grown<Uint32Array | Float64Array>(t.pfn, t.length, cap);
  t.hashLo = grown(t.hashLo, t.length, cap);
  t.hashHi = grown(t.hashHi, t.length, cap);
  t.flags = grown(t.flags, t.length, cap);
  t.capacity = cap;
}

/** [0, 1, ..., n - 1]. */
export function identity(n: number, into?: Uint32Array): Uint32Array {
  const o = into ?? new Uint32Array(n);
  for (let i = 0; i < n; i++) o[i] = i;
  return o;
}

// The columns the sort helpers below compare; set by sortOrder.
let cHi: Uint32Array = new Uint32Array(0);
let cLo: Uint32Array = cHi;
let cPfn: Uint32Array | Float64Array = cHi;

/** Row a before row b by (hashHi, hashLo, pfn, row). */
function lessHash(a: number, b: number): boolean {
  const ha = cHi[a], hb = cHi[b];
  if (ha !== hb) return ha < hb;
  const la = cLo[a], lb = cLo[b];
  if (la !== lb) return la < lb;
  const pa = cPfn[a], pb = cPfn[b];
  if (pa !== pb) return pa < pb;
  return a < b;
}

/** Row a before row b by (pfn, row). */
function lessPfn(a: number, b: number): boolean {
  const pa = cPfn[a], pb = cPfn[b];
  if (pa !== pb) return pa < pb;
  return a < b;
}

/** Sorts order[lo, hi] (inclusive) with an in-place introsort-like
 * quicksort (keys are distinct: the row breaks ties). */
function sortRange(
  o: Uint32Array,
  lo: number,
  hi: number,
  byHash: boolean,
): void {
  const less = byHash ? lessHash : lessPfn;
  const stack: number[] = [];
  for (;;) {
    while (hi - lo > 16) {
      const mid = (lo + hi) >>> 1;
      let x;
      if (less(o[mid], o[lo])) (x = o[mid], o[mid] = o[lo], o[lo] = x);
      if (less(o[hi], o[lo])) (x = o[hi], o[hi] = o[lo], o[lo] = x);
      if (less(o[hi], o[mid])) (x = o[hi], o[hi] = o[mid], o[mid] = x);
      x = o[mid], o[mid] = o[lo], o[lo] = x;
      const pv = o[lo];
      let i = lo + 1, j = hi;
      for (;;) {
        while (i <= j && less(o[i], pv)) i++;
        while (j >= i && less(pv, o[j])) j--;
        if (i >= j) break;
        x = o[i], o[i] = o[j], o[j] = x;
        i++;
        j--;
      }
      o[lo] = o[j];
      o[j] = pv;
      if (j - lo < hi - j) {
        stack.push(j + 1, hi);
        hi = j - 1;
      } else {
        stack.push(lo, j - 1);
        lo = j + 1;
      }
    }
    for (let i = lo + 1; i <= hi; i++) {
      const v = o[i];
      let j = i - 1;
      while (j >= lo && less(v, o[j])) {
        o[j + 1] = o[j];
        j--;
      }
      o[j + 1] = v;
    }
    if (stack.length === 0) return;
    hi = stack.pop()!;
    lo = stack.pop()!;
  }
}

/**
 * Fills `order` with the rows [0, length) (or only the given `rows`, in
 * order[0, rows.length)) sorted by (hash, pfn, row) or by (pfn, row),
 * without moving the table: a counting sort into about n/16 buckets of
 * the leading key bits, then a quicksort of each bucket. Row order is
 * scan order within a process's chunk, so equal PFNs come out in scan
 * order. Extra memory: `order` (4 bytes a row, reusable) and the bucket
 * counts (under half a byte a row).
 */
export function sortOrder(
  t: PageTable,
  by: "hash" | "pfn",
  order: Uint32Array,
  rows?: Uint32Array,
): Uint32Array {
  const n = rows ? rows.length : t.length;
  cHi = t.hashHi;
  cLo = t.hashLo;
  cPfn = t.pfn;
  let bits = 0;
  // About 8-16 rows a bucket: the counts cost under half a byte a row.
  while ((1 << (bits + 4)) < n && bits < 24) bits++;
  const nb = 1 << bits;
  const counts = new Uint32Array(nb + 1);
  const byHash = by === "hash";
  if (byHash && !rows && bits > 0) return sortAllByHash(n, bits, counts, order);
  let minP = 0, scale = 0;
  if (!byHash && n > 0) {
    const p = t.pfn;
    let lo = Infinity, hi = -Infinity;
    for (let j = 0; j < n; j++) {
      const v = p[rows ? rows[j] : j];
      if (v < lo) lo = v;
      if (v > hi) hi = v;
    }
    minP = lo;
    scale = nb / (hi - lo + 1);
  }
  const bucket = (i: number): number =>
    byHash
      ? (bits === 0 ? 0 : cHi[i] >>> (32 - bits))
      : Math.min(nb - 1, Math.floor((cPfn[i] - minP) * scale));
  for (let j = 0; j < n; j++) counts[bucket(rows ? rows[j] : j) + 1]++;
  for (let b = 0; b < nb; b++) counts[b + 1] += counts[b];
  for (let j = 0; j < n; j++) {
    const i = rows ? rows[j] : j;
    order[counts[bucket(i)]++] = i;
  }
  // counts[b] is now the end of bucket b.
  let start = 0;
  for (let b = 0; b < nb; b++) {
    const end = counts[b];
    if (end - start > 1) sortRange(order, start, end - 1, byHash);
    start = end;
  }
  return order;
}

/**
 * sortOrder(t, "hash", order) of every row, as the general path does it,
 * written out for the one sort every scan runs: no per-row calls, and the
 * small buckets (nearly all) insertion-sorted with the comparison inline;
 * a big bucket holds a big group of one content, which sortBigBucket
 * takes out whole. In a fresh process, before the JIT has optimised
 * anything, that is what costs (under emulation, several times the sort
 * itself).
 */
function sortAllByHash(
  n: number,
  bits: number,
  counts: Uint32Array,
  o: Uint32Array,
): Uint32Array {
  const hi = cHi, lo = cLo, pfn = cPfn;
  const shift = 32 - bits;
  for (let i = 0; i < n; i++) counts[(hi[i] >>> shift) + 1]++;
  const nb = counts.length - 1;
  for (let b = 0; b < nb; b++) counts[b + 1] += counts[b];
  for (let i = 0; i < n; i++) o[counts[hi[i] >>> shift]++] = i;
  // counts[b] is now the end of bucket b.
  let start = 0;
  for (let b = 0; b < nb; b++) {
    const end = counts[b];
    if (end - start > 64) sortBigBucket(o, start, end);
    else if (end - start > 16) sortRange(o, start, end - 1, true);
    else {
      for (let i = start + 1; i < end; i++) {
        const v = o[i];
        const vh = hi[v], vl = lo[v], vp = pfn[v];
        let j = i - 1;
        for (; j >= start; j--) {
          const u = o[j];
          const uh = hi[u];
          if (uh < vh) break;
          if (uh === vh) {
            const ul = lo[u];
            if (ul < vl) break;
            if (ul === vl) {
              const up = pfn[u];
              if (up < vp || (up === vp && u < v)) break;
            }
          }
          o[j + 1] = u;
        }
        o[j + 1] = v;
      }
    }
    start = end;
  }
  return o;
}

/**
 * Sorts bucket o[start, end) by (hash, pfn, row). A bucket this big
 * nearly always holds one big group of equal hashes (zero-filled pages,
 * many copies of one page: in a real scan the biggest groups by far),
 * which a comparison sort would order in n log n comparisons that fall
 * through to the PFN. Instead the rows of the middle row's hash are taken
 * out in row order (the bucket is in row order: sortAllByHash scatters
 * rows in ascending order), the rest is sorted, and the group goes back
 * between its neighbours, ordered by PFN in linear time (sortGroupByPfn).
 */
function sortBigBucket(o: Uint32Array, start: number, end: number): void {
  const hi = cHi, lo = cLo;
  const pivot = o[(start + end) >>> 1];
  const h = hi[pivot], l = lo[pivot];
  const group = new Uint32Array(end - start);
  let rest = start, g = 0;
  for (let i = start; i < end; i++) {
    const r = o[i];
    if (hi[r] === h && lo[r] === l) group[g++] = r;
    else o[rest++] = r;
  }
  if (rest - start > 1) sortRange(o, start, rest - 1, true);
  // The group goes before the first row of a greater hash.
  let at = start;
  while (at < rest && (hi[o[at]] < h || (hi[o[at]] === h && lo[o[at]] < l))) {
    at++;
  }
  o.copyWithin(at + g, at, rest);
  o.set(group.subarray(0, g), at);
  sortGroupByPfn(o, at, at + g);
}

/**
 * Orders o[start, end), rows of one hash in ascending row order, by
 * (pfn, row): nothing to do when they already are (the shared zero page:
 * one PFN), a stable two-pass radix sort on the PFN for a big group, a
 * comparison sort otherwise.
 */
function sortGroupByPfn(o: Uint32Array, start: number, end: number): void {
  const pfn = cPfn;
  let sorted = true;
  for (let i = start + 1; i < end && sorted; i++) {
    sorted = pfn[o[i - 1]] <= pfn[o[i]];
  }
  if (sorted) return;
  const n = end - start;
  if (n < 4096 || pfn instanceof Float64Array) {
    sortRange(o, start, end - 1, false);
    return;
  }
  const a = o.subarray(start, end);
  const b = new Uint32Array(n);
  const counts = new Uint32Array(65537);
  // Low 16 bits into b, then high 16 bits back into a; stable, so equal
  // PFNs keep their row order.
  for (const [from, to, shift] of [[a, b, 0], [b, a, 16]] as const) {
    counts.fill(0);
    for (let i = 0; i < n; i++) {
      counts[((pfn[from[i]] >>> shift) & 0xffff) + 1]++;
    }
    for (let d = 0; d < 65536; d++) counts[d + 1] += counts[d];
    for (let i = 0; i < n; i++) {
      const r = from[i];
      to[counts[(pfn[r] >>> shift) & 0xffff]++] = r;
    }
  }
}
