/**
 * Scan phase 2, collect pages: for each process, pagemap (present,
 * anonymous, exclusive, PFN) and a content hash per present candidate
 * page from the {@link HashBackend}, into the columnar page table. Pages
 * that vanish before they are hashed are counted and left out; a process
 * that goes away is marked skipped.
 *
 * A process is taken in chunks of pagemap entries, and each chunk is
 * decoded while the back-end hashes the previous one (its reads and the
 * module's hashing run on other threads), so this thread's per-page work
 * overlaps the reading.
 *
 * @module
 */
import { processGone } from "../errors.ts";
import type { MappingRef } from "../dedup/analyze.ts";
import { type PageTable, reserve, setMapIdx, setPfn } from "../dedup/table.ts";
import {
  PAGE_COUNTED,
  PAGE_EXCLUSIVE,
  PAGE_HASHED,
  PAGE_PIN_OK,
  PAGE_ZERO,
} from "../pages/flags.ts";
import {
  contentKey,
  type HeavyHitters,
  type KeyCounts,
  type SliceFilter,
  sliceOf,
} from "../dedup/sample.ts";
import {
  PM_EXCLUSIVE_HI,
  PM_FILE_HI,
  PM_PFN_HI_MASK,
  PM_PRESENT_HI,
  PM_SWAPPED_HI,
  readEntries,
} from "../pages/pagemap.ts";
import { openProcFile } from "../pages/procfile.ts";
import { mayHoldThp } from "../pages/thp.ts";
import type {
  HashBackend,
  HashTarget,
  PageRuns,
} from "../engine/hash_backend.ts";
import type { ProcState } from "./layouts.ts";
import { lap, type ScanProfile } from "./profile.ts";
import { markSkipped, type Strategy } from "./result.ts";

/** Progress of a running scan, reported after each batch of pages. */
export interface ScanProgress {
  /** The process being scanned. */
  pid: number;
  /** Processes finished (scanned or skipped). */
  processesDone: number;
  /** Processes selected. */
  processesTotal: number;
  /** Candidate pages read so far (in every pass, kept or not). */
  pagesDone: number;
  /** Expected candidate pages to read (from smaps, times the passes of a
   * scan in passes; the real number may differ). */
  pagesTotal: number;
}

/** Inputs of {@link collectPages}. */
export interface CollectOptions {
  backend: HashBackend;
  strategy: Strategy;
  pageSize: number;
  /** Real PFNs (else stand-ins: see PageTable.pfn). */
  pfns: boolean;
  /** Pagemap entries per read. */
  chunk: number;
  /** Processes already done (skipped at selection or layout). */
  done: number;
  /** Processes selected. */
  total: number;
  /** Expected candidate pages, for progress (of every pass). */
  expected: number;
  /**
   * Candidate pages read and hashed so far, for progress: kept or not,
   * and over every pass (the caller keeps it from pass to pass).
   */
  pagesRead: { n: number };
  profile: ScanProfile;
  onProgress?: (p: ScanProgress) => void | Promise<void>;
  /**
   * Keep only the rows of one content slice (src/dedup/sample.ts); the
   * others are hashed, then dropped. Default: every row.
   */
  slice?: SliceFilter;
  /**
   * Per mapping index: where the rows that are not kept are counted, and
   * which zero-filled rows are counted instead of kept (see
   * {@link DroppedRows}).
   */
  dropped?: DroppedRows;
  /**
   * A sampled scan's heavy contents: `observe` counts every non-zero
   * row's content (the first pass, which keeps nothing); `counted` are
   * kept whatever their slice, flagged PAGE_COUNTED, and counted exactly
   * (the sampled pass).
   */
  heavy?: { observe?: HeavyHitters; counted?: KeyCounts };
}

/**
 * Rows a scan of one slice counted but did not keep, by mapping index.
 *
 * Of the zero-filled rows it keeps (they are never sampled, and a scan in
 * passes keeps them in its first), it keeps only the first exclusively
 * mapped one of each mapping where `zeroCountable` allows it: the others
 * are frames of their own that no other page maps, so each adds exactly
 * one present, zero and saveable page to its mapping (the zero content's
 * keeper lies in a mapping with a kept row either way). Of the
 * zero-filled rows not exclusively mapped on one frame (`zeroFrame`: the
 * frame of the first such row, usually the kernel's shared zero page;
 * without PFNs every such row, as one stand-in frame), it keeps two per
 * mapping: every other one is a page of a frame that at least three
 * scanned pages map, so it adds exactly one present, zero, shared-already
 * and not-exclusive page to its mapping, and nothing else (not a frame's
 * first page, so never saveable). So the table stays bounded however much
 * zero-filled memory there is, apart from zero-filled frames that few
 * pages share (fork copies).
 */
export interface DroppedRows {
  /** Count the non-zero rows of other slices (a sampled scan), not only
   * the zero-filled rows counted instead of kept. */
  others: boolean;
  present: number[];
  sharedEstimate: number[];
  /** Zero-filled, exclusively mapped rows counted instead of kept (each
   * is also present, zero and saveable). */
  zero: number[];
  /** Mappings that kept an exclusively mapped zero-filled row. */
  zeroKept: Set<number>;
  /** The shared zero-filled frame counted instead of kept (-1: none yet). */
  zeroFrame: number;
  /** Rows of `zeroFrame` kept, by mapping index (at most 2). */
  zeroFrameKept: number[];
  /** Rows of `zeroFrame` counted instead of kept. */
  zeroShared: number[];
  /**
   * Exclusively mapped rows of a heavy content (CollectOptions.heavy)
   * counted instead of kept: as for zero-filled rows, one is kept per
   * mapping and content, and each other one is present, a duplicate and
   * saveable in its mapping.
   */
  heavy: number[];
  /** (content key, mapping index) of the exclusively mapped heavy rows
   * kept. */
  heavyKept: KeyCounts;
  /**
   * By mapping index, 1 where zero-filled rows may be counted instead of
   * kept (their kpageflags are not needed); null: everywhere.
   */
  zeroCountable: Uint8Array | null;
}

/** What one process's collection shares across its mappings. */
interface Collector {
  st: ProcState;
  o: CollectOptions;
  table: PageTable;
  pagemap: Deno.FsFile;
  target: HashTarget;
  /** Pagemap entries of the current chunk (lo, hi words). */
  pm: Uint32Array;
  /**
   * Two sets of per-chunk state, used in turn: one chunk is decoded into
   * one while the back-end hashes the previous chunk from the other.
   */
  sets: [ChunkSet, ChunkSet];
  /** Which set the next chunk decodes into. */
  flip: number;
  /** Rows decoded so far (≥ table.length, the rows kept). */
  end: number;
  /** The chunk being hashed, if any. */
  pending: Hashing | null;
  /** Of the chunk just counted: rows that must not be pinned. */
  noPin: number;
  /** Of the chunk just counted: the PFN high bits of all its pages. */
  wide: number;
  /** The next stand-in frame number (without PFNs). */
  standIn: { next: number };
  /** equalv: mapping keys ("exe, kind, path, ordinal") to ids. */
  keyIds: Map<string, number>;
  ordinal: Map<string, number>;
}

/** The per-chunk state that decoding writes and hashing reads. */
interface ChunkSet {
  /** PAGE_EXCLUSIVE and PAGE_PIN_OK of each row of the chunk. */
  bits: Uint8Array;
  /** Runs of the chunk's pages that may be pinned, and of the others. */
  pinRuns: PageRuns;
  memRuns: PageRuns;
}

/** A decoded chunk whose pages the back-end is hashing. */
interface Hashing {
  done: Promise<void>;
  set: ChunkSet;
  row0: number;
  cnt: number;
  keyId: number;
}

/**
 * Fills `table` with the candidate pages of every process of `states` and
 * `refs` with their mappings (index = the table's mapIdx). A process that
 * goes away is marked skipped and its rows are dropped.
 */
export async function collectPages(
  states: ProcState[],
  table: PageTable,
  refs: MappingRef[],
  o: CollectOptions,
): Promise<void> {
  const chunk = o.chunk;
  const newRuns = (noPin: boolean): PageRuns => ({
    count: 0,
    addr: new Float64Array(chunk),
    pages: new Uint32Array(chunk),
    noPin,
  });
  const newSet = (): ChunkSet => ({
    bits: new Uint8Array(chunk),
    pinRuns: newRuns(false),
    memRuns: newRuns(true),
  });
  const shared = {
    pm: new Uint32Array(2 * chunk),
    sets: [newSet(), newSet()] as [ChunkSet, ChunkSet],
    standIn: { next: 1 },
    keyIds: new Map<string, number>(),
  };
  let done = o.done;
  for (const st of states) {
    const rowStart = table.length;
    st.firstMap = refs.length;
    for (const m of st.maps) refs.push({ pid: st.info.pid, start: m.start });
    // Skipped in an earlier pass: its mapping indexes stay reserved.
    if (st.result.skipped) {
      done++;
      continue;
    }
    let pagemap: Deno.FsFile | null = null;
    let target: HashTarget | null = null;
    let c: Collector | null = null;
    try {
      pagemap = openProcFile(st.info.pid, "pagemap");
      target = o.backend.open(st.info.pid);
      c = {
        ...shared,
        st,
        o,
        table,
        pagemap,
        target,
        flip: 0,
        end: rowStart,
        pending: null,
        noPin: 0,
        wide: 0,
        ordinal: new Map(),
      };
      for (let mi = 0; mi < st.maps.length; mi++) {
        await collectMapping(c, mi, done);
      }
      await keepPending(c, done);
    } catch (err) {
      table.length = rowStart;
      markSkipped(st.result, err);
    } finally {
      // The back-end must be done with the rows and the target first.
      await c?.pending?.done.catch(() => {});
      pagemap?.close();
      if (target) o.backend.close(target);
    }
    done++;
  }
}

/** Collects the candidate pages of mapping `mi` of the process, by chunk. */
async function collectMapping(
  c: Collector,
  mi: number,
  done: number,
): Promise<void> {
  const { st, o } = c;
  const m = st.maps[mi];
  const ps = o.pageSize;
  if (!m.ksmEligible) {
    st.noncandidate += (m.kb.Rss ?? 0) / (ps / 1024);
    return;
  }
  const npages = Math.round((m.end - m.start) / ps);
  st.scanned += npages;
  const keyId = o.strategy === "equalv" ? equalvKey(c, m) : 0;
  if (m.kb.Rss === 0 && (m.kb.Swap ?? 0) === 0) return;
  // A pin of a small page of a fork-shared THP unshares it (copies it in
  // the target and splits the huge page) even when pagemap calls it
  // exclusive: never pin pages of a mapping that may hold THPs.
  const pinOk = !mayHoldThp(m);
  const vpn0 = Math.round(m.start / ps);
  for (let off = 0; off < npages; off += o.chunk) {
    const n = Math.min(o.chunk, npages - off);
    let tq = performance.now();
    if (readEntries(c.pagemap, vpn0 + off, n, c.pm) < n) {
      throw processGone("read", "address space gone");
    }
    tq = lap(o.profile, "2.pagemap", tq);
    const set = c.sets[c.flip];
    const cnt = countChunk(c, n, pinOk);
    let row0 = stagingRow(c, cnt);
    // Growing the table replaces the columns the back-end is writing.
    if (row0 + cnt > c.table.capacity) {
      await keepPending(c, done);
      row0 = stagingRow(c, cnt);
    }
    c.end = row0;
    decodeChunk(c, set, st.firstMap + mi, m.start, off, n, cnt, pinOk);
    tq = lap(o.profile, "2.decode", tq);
    if (cnt === 0) continue;
    await keepPending(c, done);
    c.flip ^= 1;
    const hashed = hashChunk(c, set, row0, cnt);
    // Its failure is thrown where it is awaited (keepPending), not as an
    // unhandled rejection while the next chunk is read.
    hashed.catch(() => {});
    c.pending = { done: hashed, set, row0, cnt, keyId };
  }
}

/**
 * Where the next chunk of `cnt` rows is decoded: right after the kept
 * rows, clear of the chunk being hashed and of the rows its keeping will
 * move down ([length, length + its count)). So the rows in use stay
 * within a few chunks of the kept ones, however many are dropped (a
 * sampled scan, a pass).
 */
function stagingRow(c: Collector, cnt: number): number {
  const p = c.pending, len = c.table.length;
  if (!p) return len;
  return len + p.cnt + cnt <= p.row0 ? len + p.cnt : p.row0 + p.cnt;
}

/**
 * Hashes a decoded chunk's pages into its rows: those that may be pinned,
 * then the others.
 */
async function hashChunk(
  c: Collector,
  set: ChunkSet,
  row0: number,
  cnt: number,
): Promise<void> {
  const { o, table } = c;
  let tq = performance.now();
  const out = {
    hashLo: table.hashLo,
    hashHi: table.hashHi,
    flags: table.flags,
    offset: row0,
  };
  if (set.pinRuns.count > 0) {
    await o.backend.hashPages(c.target, set.pinRuns, out);
    tq = lap(o.profile, "2.readv+hash", tq);
  }
  if (set.memRuns.count > 0) {
    out.offset = row0 + cnt - countPages(set.memRuns);
    await o.backend.hashPages(c.target, set.memRuns, out);
    lap(o.profile, "2.mem+hash", tq);
  }
}

/**
 * Waits for the chunk being hashed, keeps its hashed rows and reports
 * progress.
 */
async function keepPending(c: Collector, done: number): Promise<void> {
  const p = c.pending;
  if (!p) return;
  await p.done;
  c.pending = null;
  keepHashed(c, p.set, p.row0, p.cnt, p.keyId);
  c.o.pagesRead.n += p.cnt;
  // Rows past the kept ones are free again (a caller that decoded the
  // next chunk meanwhile sets `end` past it).
  c.end = c.table.length;
  if (c.o.onProgress) {
    await c.o.onProgress({
      pid: c.st.info.pid,
      processesDone: done,
      processesTotal: c.o.total,
      pagesDone: c.o.pagesRead.n,
      pagesTotal: Math.round(c.o.expected),
    });
  }
}

/** equalv: the id of the mapping's key (exe, kind, path, ordinal). */
function equalvKey(c: Collector, m: ProcState["maps"][number]): number {
  const k = `${m.kind}\0${m.path}`;
  const ord = c.ordinal.get(k) ?? 0;
  c.ordinal.set(k, ord + 1);
  const key = `${c.st.info.exe ?? c.st.info.comm}\0${k}\0${ord}`;
  const id = c.keyIds.get(key) ?? c.keyIds.size;
  c.keyIds.set(key, id);
  return id;
}

/** The sum of the runs' pages. */
function countPages(runs: PageRuns): number {
  let n = 0;
  for (let i = 0; i < runs.count; i++) n += runs.pages[i];
  return n;
}

/**
 * Counts the candidate rows of a chunk of `n` pagemap entries (in c.pm),
 * and its swapped and file pages; notes in `c` how many of the rows must
 * not be pinned and whether any PFN needs more than 32 bits.
 */
function countChunk(c: Collector, n: number, pinOk: boolean): number {
  const { pm, st } = c;
  let cnt = 0, nx = 0, wide = 0;
  for (let k = 0; k < n; k++) {
    const hi = pm[2 * k + 1];
    if ((hi & PM_PRESENT_HI) === 0) {
      if (hi & PM_SWAPPED_HI) st.swapped++;
    } else if (hi & PM_FILE_HI) st.noncandidate++;
    else {
      cnt++;
      if (!pinOk || (hi & PM_EXCLUSIVE_HI) === 0) nx++;
      wide |= hi & PM_PFN_HI_MASK;
    }
  }
  c.noPin = nx;
  c.wide = wide;
  return cnt;
}

/**
 * Decodes the `cnt` candidate pages of the chunk in c.pm (pages off.. of
 * the mapping at `start`, mapping index `g`) into rows from c.end on: the
 * pages that may be pinned first, then the others, each class with its
 * own runs in `set` (they are read differently: PageRuns.noPin). Grows
 * the table if needed, which the caller allows only while nothing is
 * being hashed.
 */
function decodeChunk(
  c: Collector,
  set: ChunkSet,
  g: number,
  start: number,
  off: number,
  n: number,
  cnt: number,
  pinOk: boolean,
): void {
  const { pm, table } = c;
  const { pinRuns, memRuns, bits } = set;
  const ps = c.o.pageSize;
  const pfns = c.o.pfns;
  const wide = c.wide;
  pinRuns.count = 0;
  memRuns.count = 0;
  if (cnt === 0) return;
  const row0 = c.end;
  if (row0 + cnt > table.capacity) reserve(table, row0 + cnt - table.length);
  // Widen the columns now if this chunk needs it, then write them directly.
  setMapIdx(table, row0 + cnt - 1, g);
  table.mapIdx.fill(g, row0, row0 + cnt);
  if (pfns && wide) setPfn(table, row0, 2 ** 32);
  const pageIdx = table.pageIdx;
  const pfn = table.pfn;
  let rowPin = row0, rowMem = row0 + cnt - c.noPin;
  let lastPin = -2, lastMem = -2;
  for (let k = 0; k < n; k++) {
    const hi = pm[2 * k + 1];
    if ((hi & PM_PRESENT_HI) === 0 || (hi & PM_FILE_HI)) continue;
    const exclusive = (hi & PM_EXCLUSIVE_HI) !== 0;
    let row;
    if (pinOk && exclusive) {
      row = rowPin++;
      bits[row - row0] = PAGE_EXCLUSIVE | PAGE_PIN_OK;
      if (lastPin === k - 1) pinRuns.pages[pinRuns.count - 1]++;
      else addRun(pinRuns, start + (off + k) * ps);
      lastPin = k;
    } else {
      row = rowMem++;
      bits[row - row0] = exclusive ? PAGE_EXCLUSIVE : 0;
      if (lastMem === k - 1) memRuns.pages[memRuns.count - 1]++;
      else addRun(memRuns, start + (off + k) * ps);
      lastMem = k;
    }
    pageIdx[row] = off + k;
    // PFNs below 2^32 (all but huge machines) stay integers: no float
    // arithmetic per page.
    pfn[row] = !pfns
      ? (exclusive ? c.standIn.next++ : 0)
      : wide
      ? (hi & PM_PFN_HI_MASK) * 0x100000000 + pm[2 * k]
      : pm[2 * k];
  }
}

/** Starts a new run of one page at `addr`. */
function addRun(runs: PageRuns, addr: number): void {
  runs.addr[runs.count] = addr;
  runs.pages[runs.count] = 1;
  runs.count++;
}

/**
 * Keeps the `cnt` rows from `row0` that were hashed, moving them down to
 * the table's end (rows of earlier chunks that vanished leave room),
 * adding their decode bits (and, for equalv, the grouping key); counts
 * the rest as vanished.
 */
function keepHashed(
  c: Collector,
  set: ChunkSet,
  row0: number,
  cnt: number,
  keyId: number,
): void {
  const { table: t } = c;
  const bits = set.bits;
  const equalv = c.o.strategy === "equalv";
  const slice = c.o.slice;
  const dropped = c.o.dropped;
  let w = t.length;
  for (let k = 0; k < cnt; k++) {
    const r = row0 + k;
    if (!(t.flags[r] & PAGE_HASHED)) {
      c.st.vanished++;
      continue;
    }
    let extra = 0;
    if (slice) {
      // equalv compares positions: its zero-filled rows are a content of
      // their position's group, sliced with it.
      const zero = !equalv && (t.flags[r] & PAGE_ZERO) !== 0;
      const sl = zero
        ? -1
        : sliceOf(equalv ? t.pageIdx[r] : t.hashLo[r], slice.n);
      const key = !zero && c.o.heavy
        ? contentKey(t.hashLo[r], t.hashHi[r])
        : -1;
      if (key >= 0) c.o.heavy?.observe?.add(key);
      const counted = key >= 0 && (c.o.heavy?.counted?.get(key) ?? 0) > 0;
      const keep = zero ? slice.zero : counted || sl === slice.index;
      if (counted && dropped && (bits[k] & PAGE_EXCLUSIVE)) {
        const mi = t.mapIdx[r];
        if (dropped.heavyKept.get(key, mi) > 0) {
          dropped.heavy[mi] = (dropped.heavy[mi] ?? 0) + 1;
          continue;
        }
        dropped.heavyKept.add(key, mi);
      }
      if (counted) extra = PAGE_COUNTED;
      if (
        keep && zero && dropped && slice.n > 1 &&
        (!dropped.zeroCountable || dropped.zeroCountable[t.mapIdx[r]])
      ) {
        const mi = t.mapIdx[r];
        if (bits[k] & PAGE_EXCLUSIVE) {
          if (dropped.zeroKept.has(mi)) {
            dropped.zero[mi] = (dropped.zero[mi] ?? 0) + 1;
            continue;
          }
          dropped.zeroKept.add(mi);
        } else {
          if (dropped.zeroFrame < 0) dropped.zeroFrame = t.pfn[r];
          if (t.pfn[r] === dropped.zeroFrame) {
            const n = dropped.zeroFrameKept[mi] ?? 0;
            if (n >= 2) {
              dropped.zeroShared[mi] = (dropped.zeroShared[mi] ?? 0) + 1;
              continue;
            }
            dropped.zeroFrameKept[mi] = n + 1;
          }
        }
      }
      if (!keep) {
        if (dropped?.others) {
          const mi = t.mapIdx[r];
          dropped.present[mi] = (dropped.present[mi] ?? 0) + 1;
          if (!(bits[k] & PAGE_EXCLUSIVE)) {
            dropped.sharedEstimate[mi] = (dropped.sharedEstimate[mi] ?? 0) +
              1;
          }
        }
        continue;
      }
    }
    if (w !== r) {
      t.mapIdx[w] = t.mapIdx[r];
      t.pageIdx[w] = t.pageIdx[r];
      t.pfn[w] = t.pfn[r];
      t.hashLo[w] = t.hashLo[r];
      t.hashHi[w] = t.hashHi[r];
    }
    t.flags[w] = t.flags[r] | bits[k] | extra;
    if (equalv) {
      t.hashHi[w] = keyId;
      t.hashLo[w] = t.pageIdx[w];
    }
    w++;
  }
  t.length = w;
}
