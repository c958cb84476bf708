/**
 * The page reader of byte confirmation: re-reads chosen rows of a scan's
 * page table from their processes, so that src/dedup/ compares bytes
 * without doing any I/O itself (it is handed a {@link PageReader}).
 *
 * Rows flagged PAGE_PIN_OK are read with batched process_vm_readv; every
 * other row through /proc/PID/mem, which does not pin: on Linux 6.x the
 * pin process_vm_readv takes unshares a page that is not exclusively the
 * target's (fork-shared, KSM, or a small page of a fork-shared THP), which
 * would copy it in the target and undo the very sharing being measured.
 *
 * @module
 */
import type { MappingRef, PageReader, PageVisitor } from "../dedup/analyze.ts";
import type { PageTable } from "../dedup/table.ts";
import { PAGE_PIN_OK } from "../pages/flags.ts";
import {
  addPages,
  addressOf,
  newBatch,
  readBatchSync,
  readMem,
  resetBatch,
} from "../pages/vmread.ts";

/**
 * A reader of the rows of `t` (mapping `mapIdx` of `maps`, page `pageIdx`),
 * reading up to `batchPages` pages per system call.
 */
export function createTableReader(
  t: PageTable,
  maps: readonly MappingRef[],
  pageSize: number,
  batchPages = 256,
): PageReader {
  const ps = pageSize;
  const words = ps >>> 2;
  const batch = newBatch(batchPages, ps);
  const ok = new Uint8Array(batchPages);
  const one = new Uint8Array(ps);
  const oneWords = new Uint32Array(one.buffer);
  const batchAddr = Number(batch.base);
  const oneAddr = Number(addressOf(one));
  const addrOf = (i: number) => maps[t.mapIdx[i]].start + t.pageIdx[i] * ps;
  const pidOf = (i: number) => maps[t.mapIdx[i]].pid;
  const pinOk = (i: number) => (t.flags[i] & PAGE_PIN_OK) !== 0;

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
      mem = null; // gone or denied: its rows read as unreadable
    }
    return mem;
  }

  /** Whether all of b was read; any error (unmapped meanwhile, gone,
   * denied) makes its rows unreadable. */
  function tryReadMem(f: Deno.FsFile | null, addr: number, b: Uint8Array) {
    if (f === null) return false;
    try {
      return readMem(f, addr, b) === b.length;
    } catch {
      return false;
    }
  }

  /** Rows [k, e) not to pin: one coalesced read, else one by one. */
  function readUnpinned(
    rows: Uint32Array,
    k: number,
    count: number,
    visit: PageVisitor,
  ): number {
    const r0 = rows[k];
    const pid = pidOf(r0);
    const f = memOf(pid);
    const a0 = addrOf(r0);
    let e = k + 1;
    while (
      e < count && e - k < batchPages && !pinOk(rows[e]) &&
      pidOf(rows[e]) === pid && addrOf(rows[e]) === a0 + (e - k) * ps
    ) e++;
    if (
      e - k > 1 && tryReadMem(f, a0, batch.bytes.subarray(0, (e - k) * ps))
    ) {
      for (let j = k; j < e; j++) {
        const off = (j - k) * words;
        visit(j, batch.words, off, batchAddr + off * 4);
      }
      return e;
    }
    for (; k < e; k++) {
      if (tryReadMem(f, addrOf(rows[k]), one)) visit(k, oneWords, 0, oneAddr);
      else visit(k, null, 0, 0);
    }
    return e;
  }

  /** Pinnable rows of one process from k: one process_vm_readv batch. */
  function readPinned(
    rows: Uint32Array,
    k: number,
    count: number,
    visit: PageVisitor,
  ): number {
    const pid = pidOf(rows[k]);
    resetBatch(batch);
    const start = k;
    while (k < count) {
      const r = rows[k];
      if (!pinOk(r) || pidOf(r) !== pid) break;
      if (addPages(batch, addrOf(r), 1) !== 1) break;
      k++;
    }
    try {
      readBatchSync(pid, batch, ok);
    } catch {
      ok.fill(0, 0, batch.pages); // the process is gone: unreadable
    }
    for (let j = start; j < k; j++) {
      const s = j - start;
      if (ok[s]) visit(j, batch.words, s * words, batchAddr + s * ps);
      else visit(j, null, 0, 0);
    }
    return k;
  }

  return {
    readRows(rows, count, visit) {
      let k = 0;
      while (k < count) {
        k = pinOk(rows[k])
          ? readPinned(rows, k, count, visit)
          : readUnpinned(rows, k, count, visit);
      }
    },
    close() {
      memOf(-1);
    },
  };
}
