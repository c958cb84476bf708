/**
 * Duplicate detection and accounting over a {@link PageTable} in hash
 * order (an order array from sortOrder "hash").
 *
 * Rows with the same hash form a group. Within a group, contents are
 * decided ONLY by byte comparison: one page per frame (a head) is re-read
 * and compared with a representative of the group held in a buffer; equal
 * pages share a content label, the rest are compared again among
 * themselves in the next round. A hash collision therefore never makes a
 * false duplicate, and a page that changed or vanished since hashing gets
 * a label of its own (not a duplicate). Nothing is re-read for a group
 * with a single head (one frame, or one frame plus zero pages), and zero
 * pages need no re-read: their zero flag came from their bytes.
 *
 * Confirmation streams: groups are taken in chunks (up to `chunkGroups`
 * representatives in one buffer); the other heads of the chunk are asked
 * for in row order (scan order, so neighbouring pages can share one read),
 * each compared once against its representative. A huge
 * group (many copies of one page) thus costs one read and one comparison
 * per copy, whatever its size.
 *
 * With `confirm: false` nothing is re-read at all: rows of one group
 * (equal 64-bit hash) that are not zero-filled share one content label,
 * i.e. the hash is trusted. That is for predictions only (merge planning,
 * where KSM compares the bytes itself before merging); see
 * {@link AnalyzeOptions.confirm}.
 *
 * Labels overwrite the hashLo column once a group's bounds are known, so
 * the analysis needs no memory per row beyond the table (and the order).
 *
 * Page bytes come from an injected {@link PageReader} (the scan's reads
 * the processes, src/scan/page_reader.ts): nothing here does I/O. The
 * counting rules are those of docs/accounting.md, applied per content by
 * accountContent() (accounting.ts).
 *
 * @module
 */
import { lib } from "../ffi/libc.ts";
import { accountContent } from "./accounting.ts";
import { addressOf } from "../pages/vmread.ts";
import { identity, type PageTable } from "./table.ts";
import {
  PAGE_EXCLUSIVE,
  PAGE_KSM,
  PAGE_THP,
  PAGE_ZERO,
} from "../pages/flags.ts";

/** Where a mapping of the table lives. */
export interface MappingRef {
  /** The process id. */
  pid: number;
  /** The mapping's start address. */
  start: number;
}

/**
 * Called per row read by a {@link PageReader}: `k` indexes the rows
 * asked for; `words` holds the page from word `wordOffset` on, and
 * `address` is the address of those bytes (for memcmp); `words` is null
 * when the row could not be read (gone, unmapped, changed mapping).
 */
export type PageVisitor = (
  k: number,
  words: Uint32Array | null,
  wordOffset: number,
  address: number,
) => void;

/**
 * Where confirmation gets page bytes from; the analysis does no I/O
 * itself. src/scan/page_reader.ts reads them from the processes.
 */
export interface PageReader {
  /**
   * Reads the table rows `rows[0, count)` (ascending row numbers) and
   * calls `visit` once per row, in any order.
   */
  readRows(rows: Uint32Array, count: number, visit: PageVisitor): void;
  /** Releases what reading opened. */
  close(): void;
}

/**
 * Per-mapping counters (index = mapIdx), the analysis's result. Integers:
 * a mapping's present pages are fewer than the machine's (below 2^32),
 * and integer increments stay cheap where floating point is slow (QEMU's
 * TCG emulates it).
 */
export interface MappingCounters {
  present: Uint32Array;
  zero: Uint32Array;
  duplicate: Uint32Array;
  sharedAlready: Uint32Array;
  sharedEstimate: Uint32Array;
  saveable: Uint32Array;
  ksm: Uint32Array;
  thp: Uint32Array;
}

/** Options of {@link analyze}. */
export interface AnalyzeOptions {
  pageSize: number;
  /** Real PFNs in the table (else stand-ins; see PageTable.pfn). */
  pfns: boolean;
  /** Rows in (hash, pfn, row) order; default: the table is sorted. */
  order?: Uint32Array;
  /** Groups whose representatives are held at once (default 1024). */
  chunkGroups?: number;
  /**
   * Reads pages for byte confirmation (src/scan/page_reader.ts). Needed
   * unless `confirm` is false.
   */
  reader?: PageReader;
  /** Adds wall times (ms) per sub-phase here when given. */
  profile?: Record<string, number>;
  /**
   * Also label the rows whose hash is unique, so that afterwards hashLo
   * holds a content label for EVERY row: 0 for zero-filled content, else a
   * label ≥ 1 shared exactly by the rows of byte-equal content (default:
   * such rows keep their hash in hashLo).
   */
  labelAll?: boolean;
  /**
   * Confirm equal hashes by comparing bytes (default true). false trusts
   * the hash: rows with equal (hashHi, hashLo) that are not zero-filled
   * get one content label without any page being re-read. Only sound for
   * a real 64-bit hash (the caller checks), and meant only for
   * predictions such as merge planning, where KSM compares the bytes
   * itself before it merges: a collision then makes the prediction off
   * by a page, never a false merge. Zero detection, frames and the
   * accounting are the same either way.
   */
  confirm?: boolean;
  /**
   * Accounts each content instead of accountContent() into the result's
   * duplicate, sharedAlready and saveable counters (which then stay 0):
   * a sampled scan's accountant (sample.ts).
   */
  accountant?: (
    cols: {
      mapping: Uint16Array | Uint32Array;
      page: Uint32Array;
      frame: Uint32Array | Float64Array;
    },
    rows: ArrayLike<number>,
    start: number,
    end: number,
    zeroContent: boolean,
  ) => void;
}

const ZERO_LABEL = 0;
/** Not a head; takes the label of the row before it (same frame). */
const NONE = 0xffffffff;
/** A head still waiting for its label. */
const HEAD = 0xfffffffe;
/** Member entries per read chunk (row * 65536 + slot keys). */
const MEMBERS = 65536;

/** Counts duplicates and savings; see the module documentation. */
export function analyze(
  t: PageTable,
  maps: readonly MappingRef[],
  opts: AnalyzeOptions,
): MappingCounters {
  const m = maps.length;
  const c: MappingCounters = {
    present: new Uint32Array(m),
    zero: new Uint32Array(m),
    duplicate: new Uint32Array(m),
    sharedAlready: new Uint32Array(m),
    sharedEstimate: new Uint32Array(m),
    saveable: new Uint32Array(m),
    ksm: new Uint32Array(m),
    thp: new Uint32Array(m),
  };
  const ps = opts.pageSize;
  const words = ps >>> 2;
  const chunkGroups = Math.min(opts.chunkGroups ?? 1024, 65535);
  const prof = opts.profile;
  const confirm = opts.confirm ?? true;
  const n = t.length;
  const order = opts.order ?? identity(n);
  const { hashHi, hashLo, pfn, mapIdx, pageIdx, flags } = t;
  const label = hashLo; // reused, see module doc
  let nextLabel = 1;

  const repWords = new Uint32Array((confirm ? chunkGroups : 1) * words);
  const repRow = new Uint32Array(chunkGroups);
  const repOk = new Uint8Array(chunkGroups);
  const grpS = new Uint32Array(chunkGroups);
  const grpE = new Uint32Array(chunkGroups);
  let groups = 0;
  const keys = new Float64Array(MEMBERS);
  const rows = new Uint32Array(MEMBERS);
  const reader = opts.reader;
  // Addresses are passed as numbers (exact below 2^53; FFI accepts them
  // for usize, its type declaration only says bigint).
  const memcmp = lib().memcmp as unknown as (
    a: number,
    b: number,
    n: number,
  ) => number;
  const repAddr = Number(addressOf(new Uint8Array(repWords.buffer)));
  let tRead = 0;

  /** Reads rows[0, count) through the injected reader (timed). */
  function readRows(count: number, visit: PageVisitor): void {
    if (!reader) {
      throw new Error("analyze: confirming needs a reader (AnalyzeOptions)");
    }
    const t0 = performance.now();
    reader.readRows(rows, count, visit);
    tRead += performance.now() - t0;
  }

  // Per-row counters every row gets, whatever its group.
  // The counters as locals: basic() runs once a row, mostly before the
  // JIT has optimised it, where each property load costs.
  const { present, zero, sharedEstimate, ksm, thp } = c;
  function basic(i: number): void {
    const mi = mapIdx[i];
    present[mi]++;
    const f = flags[i];
    // The usual page: exclusive, not zero, KSM or THP.
    if (
      (f & (PAGE_EXCLUSIVE | PAGE_ZERO | PAGE_KSM | PAGE_THP)) ===
        PAGE_EXCLUSIVE
    ) {
      return;
    }
    if (f & PAGE_ZERO) zero[mi]++;
    if (!(f & PAGE_EXCLUSIVE)) sharedEstimate[mi]++;
    if (f & PAGE_KSM) ksm[mi]++;
    if (f & PAGE_THP) thp[mi]++;
  }

  const cols = { mapping: mapIdx, page: pageIdx, frame: pfn };
  const accountOne = opts.accountant ??
    ((
      cl: typeof cols,
      rows: ArrayLike<number>,
      s: number,
      e: number,
      z: boolean,
    ) => accountContent(cl, rows, s, e, z, c));
  let scratch = new Uint32Array(64);
  const byLabel = (a: number, b: number) =>
    label[a] !== label[b]
      ? label[a] - label[b]
      : pfn[a] !== pfn[b]
      ? pfn[a] - pfn[b]
      : a - b;

  /**
   * Accounts a labelled group, order positions [s, e) (by hash, pfn,
   * row): each content of it by the rules of accounting.ts.
   */
  function account(s: number, e: number): void {
    let mixed = false;
    for (let j = s; j < e; j++) {
      basic(order[j]);
      if (label[order[j]] !== label[order[s]]) mixed = true;
    }
    if (!mixed) {
      accountOne(cols, order, s, e, label[order[s]] === ZERO_LABEL);
      return;
    }
    // Several contents under one hash: one run per content, by frame.
    if (scratch.length < e - s) scratch = new Uint32Array(2 * (e - s));
    const rows = scratch.subarray(0, e - s);
    rows.set(order.subarray(s, e));
    rows.sort(byLabel);
    for (let a = 0; a < rows.length;) {
      let b = a + 1;
      while (b < rows.length && label[rows[b]] === label[rows[a]]) b++;
      accountOne(cols, rows, a, b, label[rows[a]] === ZERO_LABEL);
      a = b;
    }
  }

  // Labels the pending groups: rounds of "one representative per group
  // with heads left, compare the group's other heads with it".
  // A mismatch stays HEAD, for the next round.
  const compare: PageVisitor = (k, w, _off, addr) => {
    const row = rows[k];
    const slot = keys[k] - row * 65536;
    if (w === null) {
      label[row] = nextLabel++;
      return;
    }
    if (memcmp(addr, repAddr + slot * ps, ps) === 0) {
      label[row] = label[repRow[slot]];
    }
  };
  const storeRep: PageVisitor = (k, w, off) => {
    const row = rows[k];
    const slot = keys[k] - row * 65536;
    label[row] = nextLabel++;
    if (w) {
      repWords.set(w.subarray(off, off + words), slot * words);
      repOk[slot] = 1;
    } else repOk[slot] = 0;
  };

  function sortKeys(count: number): void {
    keys.subarray(0, count).sort();
    for (let k = 0; k < count; k++) rows[k] = Math.floor(keys[k] / 65536);
  }

  function flush(): void {
    if (groups === 0) return;
    for (;;) {
      // Representatives: the first waiting head of each group.
      let nr = 0;
      for (let g = 0; g < groups; g++) {
        repOk[g] = 0;
        let rep = -1, more = false;
        for (let j = grpS[g]; j < grpE[g]; j++) {
          const i = order[j];
          if (label[i] !== HEAD) continue;
          if (rep < 0) rep = i;
          else {
            more = true;
            break;
          }
        }
        if (rep < 0) continue;
        if (!more) {
          label[rep] = nextLabel++; // alone: nothing to compare
          continue;
        }
        repRow[g] = rep;
        keys[nr++] = rep * 65536 + g;
      }
      if (nr === 0) break;
      sortKeys(nr);
      readRows(nr, storeRep);
      // Members: the other waiting heads, compared in chunks.
      let nm = 0;
      for (let g = 0; g < groups; g++) {
        if (!repOk[g]) continue;
        for (let j = grpS[g]; j < grpE[g]; j++) {
          const i = order[j];
          if (label[i] !== HEAD) continue;
          keys[nm++] = i * 65536 + g;
          if (nm === MEMBERS) {
            sortKeys(nm);
            readRows(nm, compare);
            nm = 0;
          }
        }
      }
      if (nm > 0) {
        sortKeys(nm);
        readRows(nm, compare);
      }
      // Groups whose representative could not be read still have heads
      // waiting; so do mismatches. Both go round again.
    }
    for (let g = 0; g < groups; g++) {
      const s = grpS[g], e = grpE[g];
      for (let j = s + 1; j < e; j++) {
        const i = order[j];
        if (label[i] === NONE) label[i] = label[order[j - 1]];
      }
      account(s, e);
    }
    groups = 0;
  }

  let s = 0;
  while (s < n) {
    const r0 = order[s];
    const lo = hashLo[r0], hi = hashHi[r0];
    let e = s + 1;
    while (e < n && hashLo[order[e]] === lo && hashHi[order[e]] === hi) e++;
    if (e - s === 1) {
      if (opts.labelAll) {
        label[r0] = flags[r0] & PAGE_ZERO ? ZERO_LABEL : nextLabel++;
      }
      basic(r0);
      s = e;
      continue;
    }
    // Heads: rows that need a label of their own.
    let heads = 0;
    for (let j = s; j < e; j++) {
      const i = order[j];
      if (flags[i] & PAGE_ZERO) label[i] = ZERO_LABEL;
      else if (
        pfn[i] === 0 || j === s || pfn[i] !== pfn[order[j - 1]] ||
        (flags[order[j - 1]] & PAGE_ZERO)
      ) {
        label[i] = HEAD;
        heads++;
      } else label[i] = NONE;
    }
    if (heads <= 1 || !confirm) {
      // One frame (and maybe zero pages), or the hash is trusted: no read
      // needed; every head of the group gets the group's one label.
      let l = -1;
      for (let j = s; j < e; j++) {
        const i = order[j];
        if (label[i] === HEAD) {
          if (l < 0) l = nextLabel++;
          label[i] = l;
        } else if (label[i] === NONE) label[i] = label[order[j - 1]];
      }
      account(s, e);
    } else {
      grpS[groups] = s;
      grpE[groups] = e;
      groups++;
      if (groups === chunkGroups) flush();
    }
    s = e;
  }
  flush();
  if (prof) {
    prof["3.confirm.read+compare"] = (prof["3.confirm.read+compare"] ?? 0) +
      tRead;
  }
  return c;
}
