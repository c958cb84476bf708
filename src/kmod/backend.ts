/**
 * The "kernel" page-hash back-end: /dev/mergemem hashes pages in place
 * (MERGEMEM_IOC_PAGEINFO, xxh64 seed 0), so no page content is copied into
 * the tool. It implements {@link HashBackend} from src/scan/backend.ts and
 * gives the same hashes as the user back-end with checksum "xxh64".
 *
 * @module
 */
import { closeFd } from "../ffi/libc.ts";
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
} from "../scan/backend.ts";
import { type ModuleHandle, openModule } from "./client.ts";
import {
  MERGEMEM_FEATURE_PAGEINFO,
  MERGEMEM_PAGEINFO_MAX,
  MERGEMEM_PI_HASHED,
  MERGEMEM_PI_KSM,
  MERGEMEM_PI_THP,
  MERGEMEM_PI_ZERO_PAGE,
  MERGEMEM_PI_ZEROFILLED,
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
 * Creates the kernel back-end. With no handle it opens /dev/mergemem
 * itself (needing PAGEINFO) and closes it in dispose().
 *
 * @throws MergememError NoModule / ModuleMismatch from openModule().
 */
export function createKernelBackend(handle?: ModuleHandle): HashBackend {
  const own = handle === undefined;
  const mod = handle ?? openModule({ features: MERGEMEM_FEATURE_PAGEINFO });
  return {
    name: "kernel",
    checksum: "xxh64",
    classifies: true,
    open(pid: number): KernelTarget {
      return { pid, memFd: openProcFd(pid, "mem") };
    },
    hashPages(
      target: HashTarget,
      runs: PageRuns,
      out: PageHashOutput,
    ): Promise<number> {
      const { memFd } = target as KernelTarget;
      let k = out.offset;
      for (let r = 0; r < runs.count; r++) {
        let addr = BigInt(runs.addr[r]);
        let left = runs.pages[r];
        while (left > 0) {
          const n = Math.min(left, MERGEMEM_PAGEINFO_MAX);
          const b = mod.pageinfo(memFd, addr, n);
          for (let i = 0; i < n; i++, k++) {
            const f = i < b.done ? b.flags[i] : 0;
            if (f & MERGEMEM_PI_HASHED) {
              out.hashLo[k] = b.hashLo[i];
              out.hashHi[k] = b.hashHi[i];
              out.flags[k] = PAGE_HASHED |
                (f & MERGEMEM_PI_ZEROFILLED ? PAGE_ZERO : 0) |
                (f & MERGEMEM_PI_KSM ? PAGE_KSM : 0) |
                (f & MERGEMEM_PI_THP ? PAGE_THP : 0);
            } else if (f & MERGEMEM_PI_ZERO_PAGE) {
              // The module may skip hashing the shared zero page; its
              // content is known.
              const z = zeroHash();
              out.hashLo[k] = Number(z & 0xffffffffn);
              out.hashHi[k] = Number(z >> 32n);
              out.flags[k] = PAGE_HASHED | PAGE_ZERO;
            } else {
              out.hashLo[k] = 0;
              out.hashHi[k] = 0;
              out.flags[k] = 0;
            }
          }
          left -= n;
          addr += BigInt(n * systemPageSize());
        }
      }
      return Promise.resolve(k - out.offset);
    },
    close(target: HashTarget): void {
      closeFd((target as KernelTarget).memFd);
    },
    dispose(): void {
      if (own) mod.close();
    },
  };
}
