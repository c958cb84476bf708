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
 * representatives in one buffer); the other heads of the chunk are read in
 * row order (scan order, so neighbouring pages share one iovec) in batches
 * of `batchPages`, each compared once against its representative. A huge
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
 * The counting rules are those of docs/accounting.md.
 *
 * @module
 */
import { lib } from "../ffi/libc.ts";
import { accountContent } from "./accounting.ts";
import {
  addPages,
  addressOf,
  newBatch,
  readBatchSync,
  readMem,
  resetBatch,
} from "../pages/vmread.ts";
import {
  F_EXCLUSIVE,
  F_KSM,
  F_THP,
  F_ZERO,
  identity,
  type PageTable,
} from "./table.ts";

/** Where a mapping of the table lives. */
export interface MappingRef {
  /** The process id. */
  pid: number;
  /** The mapping's start address. */
  start: number;
}

/** Per-mapping counters (index = mapIdx), the analysis's result. */
export interface MappingCounters {
  present: Float64Array;
  zero: Float64Array;
  duplicate: Float64Array;
  sharedAlready: Float64Array;
  sharedEstimate: Float64Array;
  saveable: Float64Array;
  ksm: Float64Array;
  thp: Float64Array;
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
  /** Pages re-read per process_vm_readv batch (default 256). */
  batchPages?: number;
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
    present: new Float64Array(m),
    zero: new Float64Array(m),
    duplicate: new Float64Array(m),
    sharedAlready: new Float64Array(m),
    sharedEstimate: new Float64Array(m),
    saveable: new Float64Array(m),
    ksm: new Float64Array(m),
    thp: new Float64Array(m),
  };
  const ps = opts.pageSize;
  const words = ps >>> 2;
  const chunkGroups = Math.min(opts.chunkGroups ?? 1024, 65535);
  const batchPages = opts.batchPages ?? 256;
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
  const batch = newBatch(batchPages, ps);
  const ok = new Uint8Array(batchPages);
  const one = new Uint8Array(ps);
  const oneWords = new Uint32Array(one.buffer);
  // Addresses are passed as numbers (exact below 2^53; FFI accepts them
  // for usize, its type declaration only says bigint).
  const memcmp = lib().memcmp as unknown as (
    a: number,
    b: number,
    n: number,
  ) => number;
  const repAddr = Number(addressOf(new Uint8Array(repWords.buffer)));
  const batchAddr = Number(batch.base);
  const oneAddr = Number(addressOf(one));
  let tRead = 0, tCmp = 0;

  const addrOf = (i: number) => maps[mapIdx[i]].start + pageIdx[i] * ps;
  const pidOf = (i: number) => maps[mapIdx[i]].pid;
  // /proc/PID/mem of the last pid read through it.
  let memPid = -1;
  let mem: Deno.FsFile | null = null;
  function memOf(pid: number): Deno.FsFile | null {
    if (pid === memPid) return mem;
    mem?.close();
    mem = null;
    memPid = pid;
    if (pid < 0) return null;
    try {
      mem = Deno.openSync(`/proc/${pid}/mem`);
    } catch {
      mem = null;
    }
    return mem;
  }

  /**
   * Reads rows[0, count) (ascending row numbers, so by process and mostly
   * by address) and calls `visit(k, words, wordOffset)` for each readable
   * one, `visit(k, null, 0)` for each that could not be read (k indexes
   * rows). Exclusive pages through batched process_vm_readv, the others
   * through /proc/PID/mem (see PageRuns.notExclusive: never pin them).
   */
  function readRows(
    count: number,
    visit: (k: number, w: Uint32Array | null, off: number) => void,
  ): void {
    let k = 0;
    while (k < count) {
      const t0 = performance.now();
      const r0 = rows[k];
      if (!(flags[r0] & F_EXCLUSIVE)) {
        // Coalesce rows at consecutive addresses of one process into one
        // read; if it fails, read them one by one.
        const pid = pidOf(r0);
        const f = memOf(pid);
        const a0 = addrOf(r0);
        let e = k + 1;
        while (
          e < count && e - k < batchPages && !(flags[rows[e]] & F_EXCLUSIVE) &&
          pidOf(rows[e]) === pid && addrOf(rows[e]) === a0 + (e - k) * ps
        ) e++;
        let all = false;
        if (e - k > 1 && f !== null) {
          try {
            all = readMem(f, a0, batch.bytes.subarray(0, (e - k) * ps));
          } catch {
            all = false;
          }
        }
        if (all) {
          const t1 = performance.now();
          tRead += t1 - t0;
          for (let j = k; j < e; j++) visit(j, batch.words, (j - k) * words);
          tCmp += performance.now() - t1;
          k = e;
          continue;
        }
        for (; k < e; k++) {
          const t2 = performance.now();
          let good = false;
          try {
            good = f !== null && readMem(f, addrOf(rows[k]), one);
          } catch {
            good = false;
          }
          const t1 = performance.now();
          tRead += t1 - t2;
          visit(k, good ? oneWords : null, 0);
          tCmp += performance.now() - t1;
        }
        continue;
      }
      const pid = pidOf(r0);
      resetBatch(batch);
      const start = k;
      while (k < count) {
        const r = rows[k];
        if (!(flags[r] & F_EXCLUSIVE) || pidOf(r) !== pid) break;
        if (addPages(batch, addrOf(r), 1) !== 1) break;
        k++;
      }
      try {
        readBatchSync(pid, batch, ok);
      } catch {
        ok.fill(0, 0, batch.pages);
      }
      const t1 = performance.now();
      tRead += t1 - t0;
      for (let j = start; j < k; j++) {
        const s = j - start;
        visit(j, ok[s] ? batch.words : null, s * words);
      }
      tCmp += performance.now() - t1;
    }
  }

  // Per-row counters every row gets, whatever its group.
  function basic(i: number): void {
    const mi = mapIdx[i];
    c.present[mi]++;
    const f = flags[i];
    if (f & F_ZERO) c.zero[mi]++;
    if (!(f & F_EXCLUSIVE)) c.sharedEstimate[mi]++;
    if (f & F_KSM) c.ksm[mi]++;
    if (f & F_THP) c.thp[mi]++;
  }

  const cols = { mapping: mapIdx, page: pageIdx, frame: pfn };
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
      accountContent(cols, order, s, e, label[order[s]] === ZERO_LABEL, c);
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
      accountContent(cols, rows, a, b, label[rows[a]] === ZERO_LABEL, c);
      a = b;
    }
  }

  // Labels the pending groups: rounds of "one representative per group
  // with heads left, compare the group's other heads with it".
  // A mismatch stays HEAD, for the next round.
  const compare = (k: number, w: Uint32Array | null, off: number): void => {
    const row = rows[k];
    const slot = keys[k] - row * 65536;
    if (w === null) {
      label[row] = nextLabel++;
      return;
    }
    const a = (w === oneWords ? oneAddr : batchAddr) + off * 4;
    if (memcmp(a, repAddr + slot * ps, ps) === 0) {
      label[row] = label[repRow[slot]];
    }
  };
  const storeRep = (k: number, w: Uint32Array | null, off: number): void => {
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
        label[r0] = flags[r0] & F_ZERO ? ZERO_LABEL : nextLabel++;
      }
      basic(r0);
      s = e;
      continue;
    }
    // Heads: rows that need a label of their own.
    let heads = 0;
    for (let j = s; j < e; j++) {
      const i = order[j];
      if (flags[i] & F_ZERO) label[i] = ZERO_LABEL;
      else if (
        pfn[i] === 0 || j === s || pfn[i] !== pfn[order[j - 1]] ||
        (flags[order[j - 1]] & F_ZERO)
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
  memOf(-1);
  if (prof) {
    prof["3.confirm.read"] = (prof["3.confirm.read"] ?? 0) + tRead;
    prof["3.confirm.compare"] = (prof["3.confirm.compare"] ?? 0) + tCmp;
  }
  return c;
}
