/**
 * The "user" page-hash back-end: process_vm_readv(2) into batch buffers,
 * hashed in JavaScript with any checksum of src/hash/.
 *
 * Reading overlaps hashing: batch N+1 is read on another thread (the
 * nonblocking process_vm_readv_async) while batch N is hashed here, with
 * two buffers in turn. errno cannot be read from that thread, so a failed
 * or short asynchronous read is simply redone synchronously.
 *
 * @module
 */
import type { Checksum } from "../hash/types.ts";
import { systemPageSize } from "../pages/pagesize.ts";
import {
  addPages,
  newBatch,
  type ReadBatch,
  readBatchAsync,
  readBatchSync,
  readMem,
  resetBatch,
} from "../pages/vmread.ts";
import { processGone } from "../errors.ts";
import type {
  HashBackend,
  HashTarget,
  PageHashOutput,
  PageRuns,
} from "./backend.ts";

/** Options of {@link createUserBackend}. */
export interface UserBackendOptions {
  /** The checksum to compute. */
  checksum: Checksum;
  /** Pages per read batch (default 256 = 1 MiB with 4 KiB pages). */
  batchPages?: number;
  /** The page size (default: the system's). */
  pageSize?: number;
}

/** Creates the user back-end. */
export function createUserBackend(opts: UserBackendOptions): HashBackend {
  const pageSize = opts.pageSize ?? systemPageSize();
  const cap = opts.batchPages ?? 256;
  const slots = [newBatch(cap, pageSize), newBatch(cap, pageSize)];
  const ok = new Uint8Array(cap);
  const cs = opts.checksum;

  // Fills batch `b` from the runs, starting at run `run` page `skip`;
  // returns the new [run, skip] cursor.
  function fill(
    b: ReadBatch,
    runs: PageRuns,
    run: number,
    skip: number,
  ): [number, number] {
    resetBatch(b);
    while (run < runs.count) {
      const left = runs.pages[run] - skip;
      const n = addPages(b, runs.addr[run] + skip * pageSize, left);
      if (n === 0) break;
      skip += n;
      if (skip === runs.pages[run]) {
        run++;
        skip = 0;
      }
    }
    return [run, skip];
  }

  function hashBatch(b: ReadBatch, out: PageHashOutput, at: number) {
    cs.hashPages(b.words, 0, b.pages, pageSize, out, at);
  }

  // After a failed async read: redo synchronously, hash what was read.
  function hashBatchSlow(
    pid: number,
    b: ReadBatch,
    out: PageHashOutput,
    at: number,
  ) {
    readBatchSync(pid, b, ok);
    for (let k = 0; k < b.pages; k++) {
      if (ok[k]) cs.hashPages(b.words, k * pageSize, 1, pageSize, out, at + k);
      else out.flags[at + k] = 0;
    }
  }

  // Non-exclusive pages: read through /proc/PID/mem (see
  // PageRuns.noPin), a run of up to `cap` contiguous pages per read
  // into the first buffer; a run that fails is redone page by page.
  function hashUnpinned(pid: number, runs: PageRuns, out: PageHashOutput) {
    const b = slots[0];
    const page = b.bytes.subarray(0, pageSize);
    let mem: Deno.FsFile;
    try {
      mem = Deno.openSync(`/proc/${pid}/mem`);
    } catch (err) {
      if (err instanceof Deno.errors.NotFound) {
        throw processGone("open", `/proc/${pid}/mem`);
      }
      throw err;
    }
    let at = out.offset;
    try {
      for (let i = 0; i < runs.count; i++) {
        for (let j = 0; j < runs.pages[i];) {
          const n = Math.min(cap, runs.pages[i] - j);
          const addr = runs.addr[i] + j * pageSize;
          if (n > 1 && readMem(mem, addr, b.bytes.subarray(0, n * pageSize))) {
            cs.hashPages(b.words, 0, n, pageSize, out, at);
          } else {
            for (let k = 0; k < n; k++) {
              if (readMem(mem, addr + k * pageSize, page)) {
                cs.hashPages(b.words, 0, 1, pageSize, out, at + k);
              } else out.flags[at + k] = 0;
            }
          }
          j += n;
          at += n;
        }
      }
    } finally {
      mem.close();
    }
    return at - out.offset;
  }

  return {
    name: "user",
    checksum: cs.name,
    open(pid: number): HashTarget {
      return { pid };
    },
    async hashPages(target, runs, out) {
      const pid = target.pid;
      if (runs.noPin) return hashUnpinned(pid, runs, out);
      let cur = 0;
      let [run, skip] = fill(slots[cur], runs, 0, 0);
      let at = out.offset;
      let pending = slots[cur].pages > 0
        ? readBatchAsync(pid, slots[cur])
        : null;
      while (pending) {
        const b = slots[cur];
        const r = await pending;
        const next = slots[cur ^ 1];
        [run, skip] = fill(next, runs, run, skip);
        pending = next.pages > 0 ? readBatchAsync(pid, next) : null;
        if (r === b.pages * pageSize) hashBatch(b, out, at);
        else {
          try {
            hashBatchSlow(pid, b, out, at);
          } catch (err) {
            // Never leave a read writing into a buffer the next call reuses.
            if (pending) await pending;
            throw err;
          }
        }
        at += b.pages;
        cur ^= 1;
      }
      return at - out.offset;
    },
    close() {},
  };
}
