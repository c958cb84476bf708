/**
 * A helper thread of the user back-end (user_backend.ts): reads pages of
 * another process with process_vm_readv and hashes them, so that a scan
 * uses a second core. One request at a time; see {@link HashRequest}.
 *
 * @module
 */
import { SyscallError } from "../errors.ts";
import { getChecksum } from "../hash/mod.ts";
import type { PageHashOutput } from "../hash/types.ts";
import { openProcFile } from "../pages/procfile.ts";
import {
  addPages,
  newBatch,
  type ReadBatch,
  readBatchSync,
  readMem,
  resetBatch,
} from "../pages/vmread.ts";

/** What the back-end asks: hash `total` pages of `pid` given as runs. */
export interface HashRequest {
  pid: number;
  checksum: string;
  pageSize: number;
  batchPages: number;
  /** Runs: `count` of them, run i is `pages[i]` pages from `addr[i]`. */
  count: number;
  addr: Float64Array;
  pages: Uint32Array;
  /** The sum of the runs' pages. */
  total: number;
  /** Read through /proc/PID/mem, not process_vm_readv (PageRuns.noPin). */
  noPin?: boolean;
  /**
   * Output arrays of at least `total` entries, lent by the caller (and
   * sent back in the reply), so that no call allocates per page.
   */
  hashLo: Uint32Array;
  hashHi: Uint32Array;
  flags: Uint8Array;
}

/** The answer: one hash and flags per page, or the error that stopped it. */
export type HashReply =
  | { hashLo: Uint32Array; hashHi: Uint32Array; flags: Uint8Array }
  | { error: { syscall: string; errno: number; code: string } | string };

/**
 * Reads and hashes pages of `pid` given as runs into `out` (from
 * out.offset on): with process_vm_readv, or, with `noPin`, through
 * /proc/PID/mem (see PageRuns.noPin). Unreadable pages get flags 0. The
 * back-end's own thread uses it for pages not to pin; the helper thread
 * for everything it is given.
 *
 * @throws {SyscallError} ESRCH, EACCES or EPERM when the process is gone
 *   or may no longer be read.
 */
export function readAndHash(
  q: Omit<HashRequest, "hashLo" | "hashHi" | "flags"> & { noPin?: boolean },
  b: ReadBatch,
  ok: Uint8Array,
  out: PageHashOutput,
): void {
  const cs = getChecksum(q.checksum);
  const ps = q.pageSize;
  const mem = q.noPin ? openProcFile(q.pid, "mem") : null;
  try {
    let at = out.offset, run = 0, skip = 0;
    while (run < q.count) {
      resetBatch(b);
      while (run < q.count) {
        const n = addPages(b, q.addr[run] + skip * ps, q.pages[run] - skip);
        if (n === 0) break;
        skip += n;
        if (skip === q.pages[run]) {
          run++;
          skip = 0;
        }
      }
      if (mem) readBatchMem(mem, b, ok);
      else readBatchSync(q.pid, b, ok);
      for (let k = 0; k < b.pages;) {
        // Hash each stretch of readable pages in one call.
        let e = k;
        while (e < b.pages && ok[e]) e++;
        if (e > k) cs.hashPages(b.words, k * ps, e - k, ps, out, at + k);
        if (e < b.pages) out.flags[at + e] = 0;
        k = e + 1;
      }
      at += b.pages;
    }
  } finally {
    mem?.close();
  }
}

/**
 * Reads a batch through /proc/PID/mem, one read per remote iovec (a run
 * of contiguous pages), page by page where that fails.
 */
function readBatchMem(mem: Deno.FsFile, b: ReadBatch, ok: Uint8Array): void {
  const ps = b.pageSize;
  let k = 0;
  for (let i = 0; i < b.iovs; i++) {
    const r = b.remote32;
    const addr = r[4 * i] + r[4 * i + 1] * 4294967296;
    const n = r[4 * i + 2] / ps;
    const dst = b.bytes.subarray(k * ps, (k + n) * ps);
    if (readMem(mem, addr, dst)) ok.fill(1, k, k + n);
    else {
      for (let j = 0; j < n; j++) {
        ok[k + j] = readMem(
            mem,
            addr + j * ps,
            b.bytes.subarray((k + j) * ps, (k + j + 1) * ps),
          )
          ? 1
          : 0;
      }
    }
    k += n;
  }
}

let batch: ReadBatch | undefined;
let okBuf = new Uint8Array(0);

/** Answers a request of the helper protocol. */
function hashRequest(q: HashRequest): HashReply {
  if (
    !batch || batch.capacity !== q.batchPages || batch.pageSize !== q.pageSize
  ) {
    const cs = getChecksum(q.checksum);
    batch = newBatch(q.batchPages, q.pageSize, cs.pageBuffer?.bind(cs));
    okBuf = new Uint8Array(q.batchPages);
  }
  readAndHash(q, batch, okBuf, {
    hashLo: q.hashLo,
    hashHi: q.hashHi,
    flags: q.flags,
    offset: 0,
  });
  return { hashLo: q.hashLo, hashHi: q.hashHi, flags: q.flags };
}

// As a worker: say "ready" (a message posted before the module has been
// evaluated, top-level awaits included, would be lost), then answer each
// request in turn.
if ("WorkerGlobalScope" in globalThis) {
  const scope = self as unknown as {
    onmessage: (e: MessageEvent<HashRequest>) => void;
    postMessage(m: HashReply | "ready", transfer?: Transferable[]): void;
  };
  scope.onmessage = (e) => {
    let r: HashReply;
    try {
      r = hashRequest(e.data);
    } catch (err) {
      r = {
        error: err instanceof SyscallError
          ? { syscall: err.syscall, errno: err.errno, code: err.code }
          : String(err),
      };
    }
    scope.postMessage(
      r,
      "error" in r
        ? []
        : [r.hashLo.buffer, r.hashHi.buffer, r.flags.buffer] as ArrayBuffer[],
    );
  };
  scope.postMessage("ready");
}
