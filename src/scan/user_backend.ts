/**
 * The "user" page-hash back-end: pages read into batch buffers and hashed
 * with any checksum of src/hash/ (xxh64 in place, in WebAssembly memory).
 * Pages that may be pinned are read with process_vm_readv(2); pages it
 * must not pin (PageRuns.noPin) through /proc/PID/mem with pread(2).
 *
 * Two cores: the reads run on other threads (nonblocking FFI calls),
 * several batches at once, while this thread hashes the oldest batch that
 * has arrived. errno cannot be read from those threads, so a failed or
 * short asynchronous read is redone synchronously here, page by page
 * where needed, which also tells a lost process from a vanished page.
 *
 * @module
 */
import type { Checksum } from "../hash/types.ts";
import { CALLS_IN_FLIGHT, closeFd } from "../ffi/libc.ts";
import { openProcFd } from "../pages/procfile.ts";
import { systemPageSize } from "../pages/pagesize.ts";
import {
  addPages,
  newBatch,
  type ReadBatch,
  readBatchAsync,
  readBatchMemAsync,
  readBatchMemSync,
  readBatchSync,
  resetBatch,
} from "../pages/vmread.ts";
import type {
  HashBackend,
  HashTarget,
  PageHashOutput,
  PageRuns,
} from "../engine/hash_backend.ts";

/** Options of {@link createUserBackend}. */
export interface UserBackendOptions {
  /** The checksum to compute. */
  checksum: Checksum;
  /** Pages per read batch (default 256 = 1 MiB with 4 KiB pages). */
  batchPages?: number;
  /** The page size (default: the system's). */
  pageSize?: number;
}

/** A target of the user back-end: /proc/PID/mem is opened on first use. */
interface UserTarget extends HashTarget {
  memFd?: number;
}

/** Creates the user back-end. */
export function createUserBackend(opts: UserBackendOptions): HashBackend {
  const pageSize = opts.pageSize ?? systemPageSize();
  const cap = opts.batchPages ?? 256;
  const cs = opts.checksum;
  // In the checksum's own memory where it has one: hashed without a copy.
  const alloc = cs.pageBuffer?.bind(cs);
  // Reads in flight at once (each on its own FFI thread), and one slot
  // more, being hashed.
  const inFlight = CALLS_IN_FLIGHT;
  const slots = Array.from(
    { length: inFlight + 1 },
    () => newBatch(cap, pageSize, alloc),
  );
  const ok = new Uint8Array(cap);

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

  // After a failed or short async read: redo it synchronously, then hash
  // the pages that were read; the others get flags 0.
  function hashBatchSlow(
    t: UserTarget,
    noPin: boolean,
    b: ReadBatch,
    out: PageHashOutput,
    at: number,
  ) {
    if (noPin) readBatchMemSync(t.memFd!, b, ok);
    else readBatchSync(t.pid, b, ok);
    for (let k = 0; k < b.pages;) {
      // Hash each stretch of readable pages in one call.
      let e = k;
      while (e < b.pages && ok[e]) e++;
      if (e > k) {
        cs.hashPages(b.words, k * pageSize, e - k, pageSize, out, at + k);
      }
      if (e < b.pages) out.flags[at + e] = 0;
      k = e + 1;
    }
  }

  function memFd(t: UserTarget): number {
    t.memFd ??= openProcFd(t.pid, "mem");
    return t.memFd;
  }

  return {
    name: "user",
    checksum: cs.name,
    marksAccessed: true,
    open(pid: number): HashTarget {
      return { pid } as UserTarget;
    },
    async hashPages(target, runs, out) {
      const t = target as UserTarget;
      const noPin = runs.noPin === true;
      const fd = noPin ? memFd(t) : -1;
      const read = (b: ReadBatch): Promise<boolean> =>
        noPin
          ? readBatchMemAsync(fd, b)
          : readBatchAsync(t.pid, b).then((n) => n === b.pages * pageSize);
      let run = 0, skip = 0, next = 0;
      const queue: { b: ReadBatch; done: Promise<boolean> }[] = [];
      const issue = () => {
        const b = slots[next];
        [run, skip] = fill(b, runs, run, skip);
        if (b.pages === 0) return false;
        queue.push({ b, done: read(b) });
        next = (next + 1) % slots.length;
        return true;
      };
      while (queue.length < inFlight && issue());
      let at = out.offset;
      try {
        while (queue.length > 0) {
          const { b, done } = queue[0];
          if (await done) cs.hashPages(b.words, 0, b.pages, pageSize, out, at);
          else hashBatchSlow(t, noPin, b, out, at);
          at += b.pages;
          queue.shift();
          issue();
        }
      } catch (err) {
        // Never leave a read writing into a buffer the next call reuses.
        await Promise.allSettled(queue.map((q) => q.done));
        throw err;
      }
      return at - out.offset;
    },
    close(target) {
      const fd = (target as UserTarget).memFd;
      if (fd !== undefined) closeFd(fd);
    },
  };
}
