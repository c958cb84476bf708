/**
 * Content-defined slices of a scan, and the estimator of a sampled scan.
 *
 * A content's slice is a function of its 64-bit hash alone (the low
 * word: the hash sort orders and buckets by the high word first), so every
 * copy of a content, and every page sharing one frame (one frame has one
 * content), falls into the same slice. Hence:
 *
 * - **Exact scan in passes.** Accounting is per content
 *   (accounting.ts), so the figures of slices 0..K-1 add up to those of
 *   the whole scan: a scan in K passes, pass i keeping slice i of K, is
 *   exact with 1/K of the rows in memory at a time.
 * - **Estimate** (Harnik et al., "Estimation of Deduplication Ratios in
 *   Large Data Sets", MSST 2012): keeping one slice of N keeps each
 *   content independently with p = 1/N (for a random hash). For a figure
 *   X = Σ_c w_c (w_c: what content c adds to it), X̂ = N·Σ_sampled w_c is
 *   unbiased, with Var X̂ = (N−1)·Σ_all w_c², estimated unbiasedly by
 *   (N−1)·N·Σ_sampled w_c². The reported bound is {@link BOUND_Z} standard
 *   errors, made safe for figures of few sampled contents
 *   ({@link errorBound}).
 *
 * Zero-filled pages are one heavy content, recognised by their bytes: they
 * are never sampled, only counted exactly (in pass 0 of an exact scan).
 * A sampled scan finds the other heavy contents in a first pass
 * ({@link HeavyHitters}) and counts them exactly too: sampling one
 * content that makes up a large share of a figure would miss it or
 * multiply it, far beyond any bound.
 *
 * @module
 */
import {
  accountContent,
  type ContentCounts,
  type PageColumns,
} from "./accounting.ts";
import { PAGE_COUNTED } from "../pages/flags.ts";

/**
 * Standard errors in a reported error bound: 2.576, a two-sided 99%
 * normal interval. The 95% one (1.96) covered only 197 of 210 trials of
 * the scan's totals in bench/README.md ("Sampled and multi-pass scans"),
 * so the bound is the wider one, for at least 95%.
 */
export const BOUND_Z = 2.576;

/** The slice (0..n-1) of a content whose hash has low word `hashLo`. */
export function sliceOf(hashLo: number, n: number): number {
  // Fold the word through a multiplicative hash first, so that a weak
  // low word (a checksum with few bits there) still spreads.
  return (Math.imul(hashLo ^ (hashLo >>> 16), 0x45d9f3b) >>> 0) % n;
}

/** Which rows a pass keeps: non-zero rows of slice `index` of `n`, and
 * zero-filled rows when `zero` (with the hash strategy: equalv, which
 * groups by position, slices its zero-filled rows by position too). */
export interface SliceFilter {
  /** Slices (≥ 1). */
  n: number;
  /** The slice kept (0..n-1). */
  index: number;
  /** Keep the zero-filled rows (never sampled). */
  zero: boolean;
}

/**
 * Sums of a sampled scan by mapping, process and in total: the sampled
 * figures (duplicate, sharedAlready, saveable) of non-zero contents, and
 * the sums of their squared per-content weights, for the variance. The
 * zero content's figures are kept apart (`zero*`), exact.
 */
export interface SampleSums {
  /** Per mapping: sampled Σ w (non-zero contents). */
  sampled: ContentCounts;
  /** Per mapping: the figures of the contents counted exactly (the zero
   * content, heavy contents: rows flagged PAGE_COUNTED). */
  exact: ContentCounts;
  /** Σ w² per mapping, per process (index: procOf) and in total, by
   * figure. */
  sqMapping: SquareSums;
  sqProcess: SquareSums;
  sqTotal: SquareSums;
  /** Process index of each mapping (processes in mapping order). */
  procOf: Uint32Array;
}

/** Σ w² of each figure. */
export interface SquareSums {
  duplicate: Float64Array;
  sharedAlready: Float64Array;
  saveable: Float64Array;
}

const FIGURES = ["duplicate", "sharedAlready", "saveable"] as const;

function squares(n: number): SquareSums {
  return {
    duplicate: new Float64Array(n),
    sharedAlready: new Float64Array(n),
    saveable: new Float64Array(n),
  };
}

function counts(n: number): ContentCounts {
  return {
    duplicate: new Uint32Array(n),
    saveable: new Uint32Array(n),
    sharedAlready: new Uint32Array(n),
  };
}

/**
 * Empty sums for mappings whose process index is `procOf[mapping]`
 * (0-based, processes numbered consecutively).
 */
export function newSampleSums(procOf: Uint32Array): SampleSums {
  const m = procOf.length;
  let p = 0;
  for (let i = 0; i < m; i++) p = Math.max(p, procOf[i] + 1);
  return {
    sampled: counts(m),
    exact: counts(m),
    sqMapping: squares(m),
    sqProcess: squares(p),
    sqTotal: squares(1),
    procOf,
  };
}

/**
 * Process indexes of mappings listed in scan order by pid: a new index
 * wherever the pid changes.
 */
export function processIndexes(pids: ArrayLike<number>): Uint32Array {
  const out = new Uint32Array(pids.length);
  let p = -1;
  for (let i = 0; i < pids.length; i++) {
    if (i === 0 || pids[i] !== pids[i - 1]) p++;
    out[i] = p;
  }
  return out;
}

/**
 * An accountant for a sampled scan: accounts one content like
 * accountContent(), into `sums`: the zero content, and contents whose
 * rows `flags` marks PAGE_COUNTED, exactly; the others as sampled weights
 * with their squares.
 */
export function sampleAccountant(
  sums: SampleSums,
  flags?: Uint8Array,
): (
  cols: PageColumns,
  rows: ArrayLike<number>,
  start: number,
  end: number,
  zeroContent: boolean,
) => void {
  const m = sums.procOf.length;
  const scratch = counts(m);
  const procW = squares(sums.sqProcess.duplicate.length);
  const procs: number[] = [];
  return (cols, rows, start, end, zeroContent) => {
    if (zeroContent || (flags && (flags[rows[start]] & PAGE_COUNTED))) {
      accountContent(cols, rows, start, end, zeroContent, sums.exact);
      return;
    }
    accountContent(cols, rows, start, end, false, scratch);
    const mapping = cols.mapping;
    let td = 0, ts = 0, tv = 0;
    procs.length = 0;
    for (let j = start; j < end; j++) {
      const mi = mapping[rows[j]];
      const d = scratch.duplicate[mi],
        s = scratch.sharedAlready[mi],
        v = scratch.saveable[mi];
      if (d === 0 && s === 0 && v === 0) continue;
      scratch.duplicate[mi] =
        scratch.sharedAlready[mi] =
        scratch.saveable[mi] =
          0;
      sums.sampled.duplicate[mi] += d;
      sums.sampled.sharedAlready[mi] += s;
      sums.sampled.saveable[mi] += v;
      sums.sqMapping.duplicate[mi] += d * d;
      sums.sqMapping.sharedAlready[mi] += s * s;
      sums.sqMapping.saveable[mi] += v * v;
      const p = sums.procOf[mi];
      if (
        procW.duplicate[p] === 0 && procW.sharedAlready[p] === 0 &&
        procW.saveable[p] === 0
      ) procs.push(p);
      procW.duplicate[p] += d;
      procW.sharedAlready[p] += s;
      procW.saveable[p] += v;
      td += d;
      ts += s;
      tv += v;
    }
    for (const p of procs) {
      for (const f of FIGURES) {
        sums.sqProcess[f][p] += procW[f][p] * procW[f][p];
        procW[f][p] = 0;
      }
    }
    sums.sqTotal.duplicate[0] += td * td;
    sums.sqTotal.sharedAlready[0] += ts * ts;
    sums.sqTotal.saveable[0] += tv * tv;
  };
}

/** An estimate of a sampled figure. */
export interface Estimate {
  /** exact part + n · sampled part, rounded to a whole page. */
  estimate: number;
  /** {@link BOUND_Z} standard errors, rounded up to a whole page. */
  errorBound: number;
}

/**
 * The estimate of a figure from one slice of `n`: `exact` (the zero
 * content's part) + n·`sampled`, with the bound BOUND_Z·√((n−1)·n·`sq`),
 * where `sq` is Σ_sampled w_c².
 */
export function estimate(
  exact: number,
  sampled: number,
  sq: number,
  n: number,
): Estimate {
  return {
    estimate: Math.round(exact + n * sampled),
    errorBound: Math.max(
      0,
      Math.ceil(BOUND_Z * Math.sqrt((n - 1) * n * sq) - 1e-9),
    ),
  };
}

/**
 * The bound reported for a sampled figure: {@link BOUND_Z} standard errors
 * of {@link estimate}, with Σ_sampled w² taken one larger (one unseen
 * content of weight 1, so that a figure with no content sampled does not
 * claim a bound of 0), and never more than the error can be: the figure's
 * sampled part counts non-zero pages, so it lies in [0, `nonZero`], and
 * its estimate is `scaled` (n · the sampled part), so the error is at
 * most max(`scaled`, `nonZero`). 0 when n is 1 (nothing is sampled).
 */
export function errorBound(
  sq: number,
  n: number,
  scaled: number,
  nonZero: number,
): number {
  if (n <= 1) return 0;
  return Math.min(
    Math.max(scaled, nonZero),
    estimate(0, 0, sq + 1, n).errorBound,
  );
}

/**
 * A content's key for {@link HeavyHitters}: 53 bits of its 64-bit hash
 * (a JavaScript number). Two contents may share a key; both are then
 * counted exactly, which is never wrong.
 */
export function contentKey(hashLo: number, hashHi: number): number {
  return (hashHi >>> 11) * 0x100000000 + (hashLo >>> 0);
}

/**
 * Counts by content key (a number below 2^53) and a tag (a mapping index,
 * or 0), in typed arrays with open addressing: nothing is allocated per
 * operation, which matters in a scan's per-page loop (a Map or Set of such
 * numbers boxes each key, and the garbage grew V8's young generation by
 * tens of MiB in an 8 GiB scan). It doubles when half full.
 */
export class KeyCounts {
  #keys: Float64Array;
  #tags: Uint32Array;
  #counts: Uint32Array;
  #mask: number;
  /** Entries with a count above 0. */
  size = 0;

  constructor(slots = 1024) {
    let n = 16;
    while (n < slots) n *= 2;
    this.#keys = new Float64Array(n);
    this.#tags = new Uint32Array(n);
    this.#counts = new Uint32Array(n);
    this.#mask = n - 1;
  }

  #slot(key: number, tag: number): number {
    let i = Math.imul(
      (key >>> 0) ^ ((key / 0x100000000) >>> 0) ^ Math.imul(tag, 0x85ebca6b),
      0x9e3779b1,
    ) >>> 0;
    for (;;) {
      i &= this.#mask;
      if (
        this.#counts[i] === 0 ||
        (this.#keys[i] === key && this.#tags[i] === tag)
      ) return i;
      i++;
    }
  }

  /** The count of (key, tag), 0 if absent. */
  get(key: number, tag = 0): number {
    return this.#counts[this.#slot(key, tag)];
  }

  /** Adds `by` (≥ 1) to the count of (key, tag). */
  add(key: number, tag = 0, by = 1): void {
    let i = this.#slot(key, tag);
    if (this.#counts[i] === 0) {
      if (2 * (this.size + 1) > this.#counts.length) {
        this.#rehash(2 * this.#counts.length, 0);
        i = this.#slot(key, tag);
      }
      this.#keys[i] = key;
      this.#tags[i] = tag;
      this.size++;
    }
    this.#counts[i] += by;
  }

  /**
   * Lowers every count by `by`, dropping the entries that reach 0, in
   * place: the survivors are moved through scratch arrays allocated once
   * (fresh arrays at each call, thousands of times in a scan, grew
   * malloc's heap by tens of MiB before the collector freed them).
   */
  decrementAll(by = 1): void {
    const n = this.#counts.length;
    if (!this.#scratch || this.#scratch.counts.length !== n) {
      this.#scratch = {
        keys: new Float64Array(n),
        tags: new Uint32Array(n),
        counts: new Uint32Array(n),
      };
    }
    const s = this.#scratch;
    let m = 0;
    for (let i = 0; i < n; i++) {
      if (this.#counts[i] > by) {
        s.keys[m] = this.#keys[i];
        s.tags[m] = this.#tags[i];
        s.counts[m++] = this.#counts[i] - by;
      }
    }
    this.#counts.fill(0);
    this.size = 0;
    for (let j = 0; j < m; j++) this.add(s.keys[j], s.tags[j], s.counts[j]);
  }

  #scratch:
    | { keys: Float64Array; tags: Uint32Array; counts: Uint32Array }
    | null = null;

  #rehash(slots: number, minus: number): void {
    const keys = this.#keys, tags = this.#tags, counts = this.#counts;
    this.#keys = new Float64Array(slots);
    this.#tags = new Uint32Array(slots);
    this.#counts = new Uint32Array(slots);
    this.#mask = slots - 1;
    this.size = 0;
    for (let i = 0; i < counts.length; i++) {
      if (counts[i] > minus) this.add(keys[i], tags[i], counts[i] - minus);
    }
  }

  /** Calls `f` with each (key, tag, count). */
  forEach(f: (key: number, tag: number, count: number) => void): void {
    for (let i = 0; i < this.#counts.length; i++) {
      if (this.#counts[i] > 0) f(this.#keys[i], this.#tags[i], this.#counts[i]);
    }
  }
}

/**
 * The heavy contents of a stream of content keys (Misra and Gries, 1982):
 * at most `k` counters; every content making up more than 1/(k+1) of the
 * stream is among {@link keys} at the end. A sampled scan counts those
 * contents exactly instead of sampling them: one content with a large
 * share of a figure would otherwise be either missing from the slice or
 * multiplied by N, far beyond any bound the sample can give.
 */
export class HeavyHitters {
  readonly #k: number;
  readonly #counts: KeyCounts;

  constructor(k = 1024) {
    this.#k = k;
    this.#counts = new KeyCounts(4 * k);
  }

  /** Counts one occurrence of `key`. */
  add(key: number): void {
    if (this.#counts.get(key) > 0 || this.#counts.size < this.#k) {
      this.#counts.add(key);
    } else this.#counts.decrementAll();
  }

  /** The contents still counted (every heavy one, and maybe others), as
   * a set: their count is 1. */
  keys(): KeyCounts {
    const set = new KeyCounts(4 * this.#k);
    this.#counts.forEach((key) => set.add(key));
    return set;
  }
}
