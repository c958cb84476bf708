/**
 * Duplicate detection and accounting over a sorted {@link PageTable}.
 *
 * Rows with the same hash form a group. Within a group, contents are
 * decided ONLY by byte comparison: one page per frame is re-read with
 * process_vm_readv and compared with a representative; equal pages share a
 * content label, the rest are compared again among themselves in the next
 * round. A hash collision therefore never makes a false duplicate, and a
 * page that changed or vanished since hashing gets a label of its own (not
 * a duplicate). Zero pages need no re-read: their zero flag came from
 * their bytes.
 *
 * Labels overwrite the hashLo column once a group's bounds are known, so
 * the analysis needs no memory per row beyond the table.
 *
 * The counting rules are those of docs/accounting.md.
 *
 * @module
 */
import {
  addPages,
  newBatch,
  readBatchSync,
  readMem,
  resetBatch,
} from "../pages/vmread.ts";
import {
  F_EXCLUSIVE,
  F_KSM,
  F_SHARED,
  F_THP,
  F_ZERO,
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
  /** Groups whose frames are confirmed together (default 1024). */
  chunkGroups?: number;
  /** Pages re-read per process_vm_readv batch (default 256). */
  batchPages?: number;
}

const ZERO_LABEL = 0;
const NONE = 0xffffffff;

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
  const chunkGroups = opts.chunkGroups ?? 1024;
  const batchPages = opts.batchPages ?? 256;
  const { hashHi, hashLo, pfn, mapIdx, pageIdx, flags } = t;
  const label = hashLo; // reused, see module doc
  let nextLabel = 1;

  const repBuf = new Uint8Array(chunkGroups * ps);
  const repWords = new Uint32Array(repBuf.buffer);
  const batch = newBatch(batchPages, ps);
  const ok = new Uint8Array(batchPages);

  const addrOf = (i: number) => maps[mapIdx[i]].start + pageIdx[i] * ps;
  const pidOf = (i: number) => maps[mapIdx[i]].pid;
  const before = (i: number, j: number) =>
    mapIdx[i] < mapIdx[j] ||
    (mapIdx[i] === mapIdx[j] && pageIdx[i] < pageIdx[j]);

  /**
   * Reads the pages at rows `rows` (any order) in batches; calls
   * `visit(row, words, wordOffset)` for each readable one and
   * `visit(row, null, 0)` for each that could not be read.
   */
  function readRows(
    all: number[],
    visit: (row: number, words: Uint32Array | null, off: number) => void,
  ): void {
    // Non-exclusive pages must not be pinned (see PageRuns.notExclusive).
    const one = new Uint8Array(ps);
    const oneWords = new Uint32Array(one.buffer);
    const rows: number[] = [];
    const byPid = new Map<number, number[]>();
    for (const row of all) {
      if (flags[row] & F_EXCLUSIVE) rows.push(row);
      else {
        const l = byPid.get(pidOf(row)) ?? [];
        l.push(row);
        byPid.set(pidOf(row), l);
      }
    }
    for (const [pid, list] of byPid) {
      let mem: Deno.FsFile | null = null;
      try {
        mem = Deno.openSync(`/proc/${pid}/mem`);
      } catch {
        mem = null;
      }
      for (const row of list) {
        let ok = false;
        try {
          ok = mem !== null && readMem(mem, addrOf(row), one);
        } catch {
          ok = false;
        }
        visit(row, ok ? oneWords : null, 0);
      }
      mem?.close();
    }
    rows.sort((a, b) => pidOf(a) - pidOf(b) || addrOf(a) - addrOf(b));
    let k = 0;
    while (k < rows.length) {
      const pid = pidOf(rows[k]);
      resetBatch(batch);
      const start = k;
      while (
        k < rows.length && pidOf(rows[k]) === pid &&
        addPages(batch, addrOf(rows[k]), 1) === 1
      ) k++;
      try {
        readBatchSync(pid, batch, ok);
      } catch {
        ok.fill(0, 0, batch.pages);
      }
      for (let j = start; j < k; j++) {
        const s = j - start;
        visit(rows[j], ok[s] ? batch.words : null, (s * ps) >>> 2);
      }
    }
  }

  // The current chunk: group bounds and, per group, the heads still
  // waiting for a label.
  let bounds: number[] = [];
  let pending: number[][] = [];

  function flush(): void {
    const words = ps >>> 2;
    for (;;) {
      const reps: number[] = [];
      const repSlot = new Map<number, number>();
      for (let g = 0; g < pending.length; g++) {
        const p = pending[g];
        if (p.length === 1) label[p.pop()!] = nextLabel++;
        if (p.length >= 2) {
          repSlot.set(p[0], reps.length);
          reps.push(p[0]);
        }
      }
      if (reps.length === 0) break;
      const repOk = new Map<number, boolean>();
      readRows(reps.slice(), (row, w, off) => {
        const slot = repSlot.get(row)!;
        if (w) repWords.set(w.subarray(off, off + words), slot * words);
        repOk.set(row, w !== null);
        label[row] = nextLabel++;
      });
      const members: number[] = [];
      const memberRep = new Map<number, number>();
      for (const p of pending) {
        if (p.length < 2) continue;
        const rep = p.shift()!;
        if (!repOk.get(rep)) continue; // unreadable: keeps its own label
        for (const row of p) {
          members.push(row);
          memberRep.set(row, rep);
        }
      }
      const settled = new Set<number>();
      readRows(members, (row, w, off) => {
        const rep = memberRep.get(row)!;
        if (w === null) {
          label[row] = nextLabel++;
          settled.add(row);
          return;
        }
        const r = repSlot.get(rep)! * words;
        for (let x = 0; x < words; x++) {
          if (w[off + x] !== repWords[r + x]) return;
        }
        label[row] = label[rep];
        settled.add(row);
      });
      pending = pending.map((p) => p.filter((row) => !settled.has(row)));
    }
    for (let g = 0; g < bounds.length; g += 2) {
      const s = bounds[g], e = bounds[g + 1];
      for (let i = s + 1; i < e; i++) {
        if (label[i] === NONE) label[i] = label[i - 1];
      }
      account(s, e);
    }
    bounds = [];
    pending = [];
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
    if (f & F_SHARED) c.sharedAlready[mi]++;
  }

  // Accounts a labelled group [s, e).
  function account(s: number, e: number): void {
    interface Info {
      frames: number;
      keeper: number;
      pseudo: boolean;
    }
    const info = new Map<number, Info>();
    // A frame head: the first row of a real frame, or the first row of a
    // label among the PFN-less rows (one stand-in frame per content).
    const isHead = (i: number, inf: Info): boolean => {
      if (pfn[i] === 0) {
        if (inf.pseudo) return false;
        inf.pseudo = true;
        return true;
      }
      return i === s || pfn[i] !== pfn[i - 1];
    };
    for (let i = s; i < e; i++) {
      basic(i);
      let inf = info.get(label[i]);
      if (!inf) {
        inf = { frames: 0, keeper: -1, pseudo: false };
        info.set(label[i], inf);
      }
      if (isHead(i, inf)) {
        inf.frames++;
        if (inf.keeper < 0 || before(i, inf.keeper)) inf.keeper = i;
      }
    }
    for (const inf of info.values()) inf.pseudo = false;
    for (let i = s; i < e; i++) {
      const inf = info.get(label[i])!;
      if (inf.frames < 2) continue;
      if (label[i] !== ZERO_LABEL) c.duplicate[mapIdx[i]]++;
      if (isHead(i, inf) && i !== inf.keeper) c.saveable[mapIdx[i]]++;
    }
  }

  const n = t.length;
  let s = 0;
  while (s < n) {
    let e = s + 1;
    while (e < n && hashLo[e] === hashLo[s] && hashHi[e] === hashHi[s]) e++;
    if (e - s === 1) {
      basic(s);
      s = e;
      continue;
    }
    // Heads: rows that need a label of their own.
    const heads: number[] = [];
    for (let i = s; i < e; i++) {
      if (flags[i] & F_ZERO) label[i] = ZERO_LABEL;
      else if (
        pfn[i] === 0 || i === s || pfn[i] !== pfn[i - 1] ||
        (flags[i - 1] & F_ZERO)
      ) {
        heads.push(i);
        label[i] = NONE;
      } else label[i] = NONE;
    }
    bounds.push(s, e);
    pending.push(heads);
    if (pending.length >= chunkGroups) flush();
    s = e;
  }
  flush();
  return c;
}
