/**
 * The "kernel" page-hash back-end: /dev/mergemem hashes pages in place
 * (MERGEMEM_IOC_PAGEINFO, xxh64 seed 0), so no page content is copied into
 * the tool. It implements {@link HashBackend} from src/engine/hash_backend.ts and
 * gives the same hashes as the user back-end with checksum "xxh64".
 *
 * @module
 */
import { CALLS_IN_FLIGHT, closeFd } from "../ffi/libc.ts";
import { openProcFd } from "../pages/procfile.ts";
import { xxh64 } from "../hash/xxh64.ts";
import {
  type HashBackend,
  type HashTarget,
  PAGE_HASHED,
  PAGE_KSM,
  PAGE_THP,
  PAGE_ZERO,
  type PageHashOutput,
  type PageRuns,
} from "../engine/hash_backend.ts";
import { type ModuleHandle, openModule } from "./client.ts";
import {
  MERGEMEM_FEATURE_PAGEINFO,
  MERGEMEM_FEATURE_PAGEINFO_UNTOUCHED,
  MERGEMEM_PI_HASHED,
  MERGEMEM_PI_KSM,
  MERGEMEM_PI_THP,
  MERGEMEM_PI_ZERO_PAGE,
  MERGEMEM_PI_ZEROFILLED,
  PAGEINFO_LAYOUT,
  PAGEINFO_WORDS,
} from "./uapi.ts";
import { systemPageSize } from "../pages/pagesize.ts";

/** A target of the kernel back-end: the pid and its /proc/PID/mem fd. */
export interface KernelTarget extends HashTarget {
  /** The open /proc/PID/mem. */
  readonly memFd: number;
}

let zeroPageHash: bigint | undefined;

/** xxh64 of an all-zero page, for pages mapped to the shared zero page. */
function zeroHash(): bigint {
  zeroPageHash ??= xxh64(new Uint8Array(systemPageSize()));
  return zeroPageHash;
}

/**
 * Pages per PAGEINFO call: small enough that the calls in flight keep
 * every CPU hashing while this thread copies out the oldest result, large
 * enough that a call's own cost is small against its hashing (4096 pages
 * = 16 MiB hashed, 64 KiB of entries).
 */
const CALL_PAGES = 4096;

/** A PAGEINFO output buffer, and how many pages its call asked for. */
interface Slot {
  bytes: Uint8Array<ArrayBuffer>;
  words: Uint32Array;
  pages: number;
}

function newSlot(): Slot {
  const bytes = new Uint8Array(CALL_PAGES * PAGEINFO_LAYOUT.size);
  return { bytes, words: new Uint32Array(bytes.buffer), pages: 0 };
}

/**
 * The scan's PAGE_* flags of a page hashed by the module, by its
 * MERGEMEM_PI_* flags (7 bits); 0 when it was not hashed.
 */
const PAGE_FLAGS_OF = Uint8Array.from(
  { length: 128 },
  (_, f) =>
    f & MERGEMEM_PI_HASHED
      ? PAGE_HASHED |
        (f & MERGEMEM_PI_ZEROFILLED ? PAGE_ZERO : 0) |
        (f & MERGEMEM_PI_KSM ? PAGE_KSM : 0) |
        (f & MERGEMEM_PI_THP ? PAGE_THP : 0)
      : 0,
);

/**
 * Copies the `done` entries of a finished call into the output rows from
 * `row` on; its other pages (absent when hashed) get no PAGE_HASHED.
 */
function copyOut(
  buf: Slot,
  done: number,
  out: PageHashOutput,
  row: number,
): void {
  const W = PAGEINFO_WORDS;
  const words = buf.words;
  const { hashLo, hashHi, flags } = out;
  for (let i = 0, w = 0; i < buf.pages; i++, w += W.stride, row++) {
    const f = i < done ? words[w + W.flags] : 0;
    const pf = PAGE_FLAGS_OF[f & 127];
    if (pf !== 0) {
      hashLo[row] = words[w + W.hashLo];
      hashHi[row] = words[w + W.hashHi];
      flags[row] = pf;
    } else if (f & MERGEMEM_PI_ZERO_PAGE) {
      // The module may skip hashing the shared zero page; its content is
      // known.
      const z = zeroHash();
      hashLo[row] = Number(z & 0xffffffffn);
      hashHi[row] = Number(z >> 32n);
      flags[row] = PAGE_HASHED | PAGE_ZERO;
    } else {
      hashLo[row] = 0;
      hashHi[row] = 0;
      flags[row] = 0;
    }
  }
}

/**
 * Creates the kernel back-end. With no handle it opens /dev/mergemem
 * itself (needing PAGEINFO) and closes it in dispose().
 *
 * @throws MergememError NoModule / ModuleMismatch from openModule().
 */
export function createKernelBackend(handle?: ModuleHandle): HashBackend {
  const own = handle === undefined;
  const mod = handle ?? openModule({ features: MERGEMEM_FEATURE_PAGEINFO });
  // Output buffers of finished calls, for reuse.
  const free: Slot[] = [];
  return {
    name: "kernel",
    checksum: "xxh64",
    classifies: true,
    marksAccessed: (mod.features & MERGEMEM_FEATURE_PAGEINFO_UNTOUCHED) === 0n,
    open(pid: number): KernelTarget {
      return { pid, memFd: openProcFd(pid, "mem") };
    },
    async hashPages(
      target: HashTarget,
      runs: PageRuns,
      out: PageHashOutput,
    ): Promise<number> {
      const { memFd } = target as KernelTarget;
      const ps = systemPageSize();
      // Calls in flight, oldest first, each with its buffer and first row.
      const queue: { done: Promise<number>; buf: Slot; row: number }[] = [];
      let run = 0, skip = 0, row = out.offset;
      const issue = () => {
        const n = Math.min(CALL_PAGES, runs.pages[run] - skip);
        const buf = free.pop() ?? newSlot();
        const addr = BigInt(runs.addr[run] + skip * ps);
        buf.pages = n;
        queue.push({
          done: mod.pageinfoInto(memFd, addr, n, buf.bytes),
          buf,
          row,
        });
        row += n;
        skip += n;
        if (skip === runs.pages[run]) run++, skip = 0;
      };
      try {
        for (;;) {
          while (queue.length < CALLS_IN_FLIGHT && run < runs.count) issue();
          const head = queue.shift();
          if (!head) break;
          const done = await head.done;
          copyOut(head.buf, done, out, head.row);
          free.push(head.buf);
        }
      } finally {
        // Never hand a buffer the module may still write to to a new call.
        await Promise.allSettled(queue.map((q) => q.done));
      }
      return row - out.offset;
    },
    close(target: HashTarget): void {
      closeFd((target as KernelTarget).memFd);
    },
    dispose(): void {
      if (own) mod.close();
    },
  };
}
