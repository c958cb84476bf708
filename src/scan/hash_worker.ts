/**
 * A helper thread of the user back-end (user_backend.ts): reads pages of
 * another process with process_vm_readv and hashes them, so that a scan
 * uses a second core. One request at a time; see {@link HashRequest}.
 *
 * @module
 */
import { SyscallError } from "../errors.ts";
import { getChecksum } from "../hash/mod.ts";
import {
  addPages,
  newBatch,
  type ReadBatch,
  readBatchSync,
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

let batch: ReadBatch | undefined;
let ok = new Uint8Array(0);

/** Reads and hashes the request's pages (unreadable ones get flags 0). */
export function hashRequest(q: HashRequest): HashReply {
  const cs = getChecksum(q.checksum);
  const ps = q.pageSize;
  if (!batch || batch.capacity !== q.batchPages || batch.pageSize !== ps) {
    batch = newBatch(q.batchPages, ps);
    ok = new Uint8Array(q.batchPages);
  }
  const b = batch;
  const out = {
    hashLo: q.hashLo,
    hashHi: q.hashHi,
    flags: q.flags,
    offset: 0,
  };
  let at = 0, run = 0, skip = 0;
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
    readBatchSync(q.pid, b, ok);
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
  return { hashLo: out.hashLo, hashHi: out.hashHi, flags: out.flags };
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
