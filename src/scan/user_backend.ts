/**
 * The "user" page-hash back-end: process_vm_readv(2) into batch buffers,
 * hashed with any checksum of src/hash/ (xxh64 in place, in WebAssembly
 * memory); pages it must not pin (PageRuns.noPin) through /proc/PID/mem.
 *
 * Two cores. Pages that may be pinned: reading overlaps hashing, the next
 * batches being read on other threads (the nonblocking
 * process_vm_readv_async) while the oldest is hashed here; errno cannot be
 * read from that thread, so a failed or short asynchronous read is simply
 * redone synchronously (giving half of these pages to the helper thread
 * as well measured no faster: bench/README.md). Pages not to pin are read
 * synchronously, so a call with many of them gives half to a helper thread
 * (a Worker, hash_worker.ts) that reads and hashes them itself. The helper
 * is started on first use and stopped after a short idle time (or by
 * dispose()), so it never keeps a finished program alive for long.
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
  resetBatch,
} from "../pages/vmread.ts";
import { SyscallError } from "../errors.ts";
import {
  type HashReply,
  type HashRequest,
  readAndHash,
} from "./hash_worker.ts";
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
  /**
   * Helper threads (default: 1 when the machine has 2 or more CPUs, else
   * 0). 0 hashes everything on the calling thread.
   */
  helpers?: number;
}

/** Pages below which a call is not worth splitting with the helper. */
const SPLIT_MIN = 2048;
/** Idle time after which the helper thread is stopped (ms). */
const HELPER_IDLE_MS = 250;

/** Creates the user back-end. */
export function createUserBackend(opts: UserBackendOptions): HashBackend {
  const pageSize = opts.pageSize ?? systemPageSize();
  const cap = opts.batchPages ?? 256;
  const cs = opts.checksum;
  // In the checksum's own memory where it has one: hashed without a copy.
  const alloc = cs.pageBuffer?.bind(cs);
  // Reads in flight at once (each on its own FFI thread), and one slot
  // more, being hashed: one more read than CPUs, at most 4. Measured on 2
  // CPUs (bench/README.md): 3 in flight beat 2 and 4.
  const inFlight = Math.min(4, (navigator.hardwareConcurrency ?? 1) + 1);
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
  /** Reads and hashes on this thread alone, synchronously. */
  function hashSync(
    pid: number,
    runs: PageRuns,
    out: PageHashOutput,
    noPin: boolean,
  ) {
    let total = 0;
    for (let i = 0; i < runs.count; i++) total += runs.pages[i];
    readAndHash(
      {
        pid,
        checksum: cs.name,
        pageSize,
        batchPages: cap,
        count: runs.count,
        addr: runs.addr,
        pages: runs.pages,
        total,
        noPin,
      },
      slots[0],
      ok,
      out,
    );
    return total;
  }

  // The helper thread: started on demand, stopped when idle.
  let useHelper = (opts.helpers ??
    ((navigator.hardwareConcurrency ?? 1) >= 2 ? 1 : 0)) > 0;
  let helper: Promise<Worker> | undefined;
  let worker: Worker | undefined;
  let idle: ReturnType<typeof setTimeout> | undefined;
  function startHelper(): Promise<Worker> {
    if (idle !== undefined) clearTimeout(idle);
    idle = undefined;
    helper ??= new Promise((resolve, reject) => {
      const url = new URL("./hash_worker.ts", import.meta.url);
      // A bundled build has no such module next to it: no helper then
      // (and no "module not found" from the worker on stderr).
      if (url.protocol === "file:") {
        try {
          Deno.statSync(url);
        } catch {
          reject(new Error("hash helper: no hash_worker.ts"));
          return;
        }
      }
      const w = new Worker(url, { type: "module" });
      worker = w;
      w.onmessage = () => resolve(w); // "ready"
      w.onerror = (e) => {
        e.preventDefault();
        reject(new Error(`hash helper: ${e.message}`));
      };
    });
    return helper;
  }
  function stopHelper(): void {
    if (idle !== undefined) clearTimeout(idle);
    idle = undefined;
    worker?.terminate();
    worker = undefined;
    helper = undefined;
  }
  function helperIdle(): void {
    if (idle !== undefined) clearTimeout(idle);
    idle = setTimeout(stopHelper, HELPER_IDLE_MS);
  }
  // The helper's output arrays, lent to it with each request and given
  // back with the reply (none while a request is out).
  let lent:
    | { hashLo: Uint32Array; hashHi: Uint32Array; flags: Uint8Array }
    | null = null;
  function lend(n: number) {
    if (!lent || lent.flags.length < n) {
      const cap = Math.max(n, 32768);
      lent = {
        hashLo: new Uint32Array(cap),
        hashHi: new Uint32Array(cap),
        flags: new Uint8Array(cap),
      };
    }
    const l = lent;
    lent = null;
    return l;
  }

  async function ask(q: HashRequest): Promise<HashReply> {
    const w = await startHelper();
    return await new Promise((resolve, reject) => {
      w.onmessage = (e: MessageEvent<HashReply>) => resolve(e.data);
      w.onerror = (e) => {
        e.preventDefault();
        reject(new Error(`hash helper: ${e.message}`));
      };
      w.postMessage(
        q,
        [
          q.addr.buffer,
          q.pages.buffer,
          q.hashLo.buffer,
          q.hashHi.buffer,
          q.flags.buffer,
        ] as ArrayBuffer[],
      );
    });
  }

  /**
   * Pinned pages on this thread: up to `inFlight` batches are read on
   * other threads (the nonblocking FFI call) while this one hashes the
   * oldest, which has arrived.
   */
  async function hashHere(
    pid: number,
    runs: PageRuns,
    out: PageHashOutput,
  ): Promise<number> {
    let run = 0, skip = 0, next = 0;
    const queue: { b: ReadBatch; read: Promise<number> }[] = [];
    const issue = () => {
      const b = slots[next];
      [run, skip] = fill(b, runs, run, skip);
      if (b.pages === 0) return false;
      queue.push({ b, read: readBatchAsync(pid, b) });
      next = (next + 1) % slots.length;
      return true;
    };
    while (queue.length < inFlight && issue());
    let at = out.offset;
    while (queue.length > 0) {
      const { b, read } = queue[0];
      const r = await read;
      if (r === b.pages * pageSize) hashBatch(b, out, at);
      else {
        try {
          hashBatchSlow(pid, b, out, at);
        } catch (err) {
          // Never leave a read writing into a buffer the next call reuses.
          await Promise.allSettled(queue.map((q) => q.read));
          throw err;
        }
      }
      at += b.pages;
      queue.shift();
      issue();
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
      // This thread's way: pages not to pin through /proc/PID/mem, the
      // others with reads overlapping the hashing.
      let total = 0;
      for (let i = 0; i < runs.count; i++) total += runs.pages[i];
      // Pages that may be pinned: read on another thread while this one
      // hashes (two cores busy already; the helper measured no faster).
      if (!runs.noPin) return await hashHere(pid, runs, out);
      // The others go through /proc/PID/mem, synchronously: with the
      // helper, half here and half there.
      if (!useHelper || total < SPLIT_MIN) {
        return hashSync(pid, runs, out, true);
      }
      const here = (r: PageRuns, o: PageHashOutput) =>
        Promise.resolve(hashSync(pid, r, o, true));
      // The helper takes the second half (whole batches), this thread the
      // first; both read and hash at once.
      const [mine, theirs, theirTotal] = splitRuns(
        runs,
        Math.ceil(total / 2 / cap) * cap,
        pageSize,
      );
      const reply = ask({
        pid,
        checksum: cs.name,
        pageSize,
        batchPages: cap,
        count: theirs.count,
        addr: theirs.addr.slice(),
        pages: theirs.pages.slice(),
        total: theirTotal,
        noPin: runs.noPin,
        ...lend(theirTotal),
      });
      let done: number;
      try {
        done = await here(mine, out);
      } finally {
        // Never leave the helper's answer pending: it belongs to this call.
        await reply.catch(() => {});
        helperIdle();
      }
      let r: HashReply;
      try {
        r = await reply;
      } catch {
        // No helper here (say, a build without the worker's module): do
        // its part on this thread, now and from now on.
        useHelper = false;
        stopHelper();
        return done + await here(theirs, {
          ...out,
          offset: out.offset + done,
        });
      }
      if ("error" in r) {
        const e = r.error;
        if (typeof e === "string") throw new Error(`hash helper: ${e}`);
        throw new SyscallError(e.syscall, e.errno, e.code);
      }
      const at = out.offset + done;
      lent = r;
      out.hashLo.set(r.hashLo.subarray(0, theirTotal), at);
      out.hashHi.set(r.hashHi.subarray(0, theirTotal), at);
      out.flags.set(r.flags.subarray(0, theirTotal), at);
      return done + theirTotal;
    },
    close() {},
    dispose() {
      stopHelper();
    },
  };
}

/** Runs owned by their own arrays (they can be sent to the helper). */
interface OwnRuns {
  count: number;
  addr: Float64Array;
  pages: Uint32Array;
}

/**
 * Splits runs after their first `first` pages: returns the runs of those
 * pages, the runs of the rest (copies), and the rest's page count.
 */
function splitRuns(
  runs: PageRuns,
  first: number,
  pageSize: number,
): [PageRuns, OwnRuns, number] {
  let i = 0, left = first;
  while (i < runs.count && runs.pages[i] <= left) left -= runs.pages[i++];
  // Run i (if any) is cut after `left` pages (none when left is 0).
  const headCount = i + (left > 0 ? 1 : 0);
  const head = {
    count: headCount,
    addr: runs.addr.slice(0, headCount),
    pages: runs.pages.slice(0, headCount),
  };
  const tail = {
    count: runs.count - i,
    addr: runs.addr.slice(i, runs.count),
    pages: runs.pages.slice(i, runs.count),
  };
  if (left > 0) {
    head.pages[headCount - 1] = left;
    tail.pages[0] -= left;
    tail.addr[0] += left * pageSize;
  }
  let rest = 0;
  for (let k = 0; k < tail.count; k++) rest += tail.pages[k];
  return [head, tail, rest];
}
