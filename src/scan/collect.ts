/**
 * Scan phase 2, collect pages: for each process, pagemap (present,
 * anonymous, exclusive, PFN) and a content hash per present candidate
 * page from the {@link HashBackend}, into the columnar page table. Pages
 * that vanish before they are hashed are counted and left out; a process
 * that goes away is marked skipped.
 *
 * @module
 */
import { processGone } from "../errors.ts";
import type { MappingRef } from "../dedup/analyze.ts";
import { type PageTable, reserve, setMapIdx, setPfn } from "../dedup/table.ts";
import { PAGE_EXCLUSIVE, PAGE_HASHED, PAGE_PIN_OK } from "../pages/flags.ts";
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
import type { HashBackend, HashTarget, PageRuns } from "./backend.ts";
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
  /** Candidate pages read so far. */
  pagesDone: number;
  /** Expected candidate pages (from smaps; the real number may differ). */
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
  /** Expected candidate pages, for progress. */
  expected: number;
  profile: ScanProfile;
  onProgress?: (p: ScanProgress) => void | Promise<void>;
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
  /** PAGE_EXCLUSIVE and PAGE_PIN_OK of each row of the chunk. */
  bits: Uint8Array;
  /** Runs of the chunk's pages that may be pinned, and of the others. */
  pinRuns: PageRuns;
  memRuns: PageRuns;
  /** The next stand-in frame number (without PFNs). */
  standIn: { next: number };
  /** equalv: mapping keys ("exe, kind, path, ordinal") to ids. */
  keyIds: Map<string, number>;
  ordinal: Map<string, number>;
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
  const shared = {
    pm: new Uint32Array(2 * chunk),
    bits: new Uint8Array(chunk),
    pinRuns: newRuns(false),
    memRuns: newRuns(true),
    standIn: { next: 1 },
    keyIds: new Map<string, number>(),
  };
  let done = o.done;
  for (const st of states) {
    const rowStart = table.length;
    st.firstMap = refs.length;
    for (const m of st.maps) refs.push({ pid: st.info.pid, start: m.start });
    let pagemap: Deno.FsFile | null = null;
    let target: HashTarget | null = null;
    try {
      pagemap = openProcFile(st.info.pid, "pagemap");
      target = o.backend.open(st.info.pid);
      const c: Collector = {
        ...shared,
        st,
        o,
        table,
        pagemap,
        target,
        ordinal: new Map(),
      };
      for (let mi = 0; mi < st.maps.length; mi++) {
        await collectMapping(c, mi, done);
      }
    } catch (err) {
      table.length = rowStart;
      markSkipped(st.result, err);
    } finally {
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
    const row0 = c.table.length;
    const cnt = decodeChunk(c, st.firstMap + mi, m.start, off, n, pinOk);
    tq = lap(o.profile, "2.decode", tq);
    if (cnt === 0) continue;
    const out = {
      hashLo: c.table.hashLo,
      hashHi: c.table.hashHi,
      flags: c.table.flags,
      offset: row0,
    };
    if (c.pinRuns.count > 0) {
      await o.backend.hashPages(c.target, c.pinRuns, out);
      tq = lap(o.profile, "2.readv+hash", tq);
    }
    if (c.memRuns.count > 0) {
      out.offset = row0 + cnt - countPages(c.memRuns);
      await o.backend.hashPages(c.target, c.memRuns, out);
      lap(o.profile, "2.mem+hash", tq);
    }
    keepHashed(c, row0, cnt, keyId);
    if (o.onProgress) {
      await o.onProgress({
        pid: st.info.pid,
        processesDone: done,
        processesTotal: o.total,
        pagesDone: c.table.length,
        pagesTotal: Math.round(o.expected),
      });
    }
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
 * Decodes a chunk of `n` pagemap entries (pages off.. of the mapping at
 * `start`, mapping index `g`) into table rows from table.length on: the
 * pages that may be pinned first, then the others, each class with its
 * own runs (they are read differently: PageRuns.noPin). Counts swapped
 * and file pages. Returns the number of rows (not yet kept: the table's
 * length is unchanged).
 */
function decodeChunk(
  c: Collector,
  g: number,
  start: number,
  off: number,
  n: number,
  pinOk: boolean,
): number {
  const { pm, st, table, pinRuns, memRuns, bits } = c;
  const ps = c.o.pageSize;
  const pfns = c.o.pfns;
  // Count first, so that each class gets one contiguous range of rows.
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
  pinRuns.count = 0;
  memRuns.count = 0;
  if (cnt === 0) return 0;
  reserve(table, cnt);
  const row0 = table.length;
  // Widen the columns now if this chunk needs it, then write them directly.
  setMapIdx(table, row0 + cnt - 1, g);
  table.mapIdx.fill(g, row0, row0 + cnt);
  if (pfns && wide) setPfn(table, row0, 2 ** 32);
  const pageIdx = table.pageIdx;
  const pfn = table.pfn;
  let rowPin = row0, rowMem = row0 + cnt - nx;
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
  return cnt;
}

/** Starts a new run of one page at `addr`. */
function addRun(runs: PageRuns, addr: number): void {
  runs.addr[runs.count] = addr;
  runs.pages[runs.count] = 1;
  runs.count++;
}

/**
 * Keeps the `cnt` rows from `row0` that were hashed, in place, adding
 * their decode bits (and, for equalv, the grouping key); counts the rest
 * as vanished.
 */
function keepHashed(
  c: Collector,
  row0: number,
  cnt: number,
  keyId: number,
): void {
  const { table: t, bits } = c;
  const equalv = c.o.strategy === "equalv";
  let w = row0;
  for (let k = 0; k < cnt; k++) {
    const r = row0 + k;
    if (!(t.flags[r] & PAGE_HASHED)) {
      c.st.vanished++;
      continue;
    }
    if (w !== r) {
      t.mapIdx[w] = t.mapIdx[r];
      t.pageIdx[w] = t.pageIdx[r];
      t.pfn[w] = t.pfn[r];
      t.hashLo[w] = t.hashLo[r];
      t.hashHi[w] = t.hashHi[r];
    }
    t.flags[w] = t.flags[r] | bits[k];
    if (equalv) {
      t.hashHi[w] = keyId;
      t.hashLo[w] = t.pageIdx[w];
    }
    w++;
  }
  t.length = w;
}
