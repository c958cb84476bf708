/**
 * The page-hash source of a scan: the part that turns "these present pages
 * of process P" into "a 64-bit content hash and a zero flag per page".
 *
 * Two back-ends implement it:
 *
 * - "user" (src/scan/user_backend.ts): reads the pages with
 *   process_vm_readv(2), or through /proc/PID/mem for pages it must not
 *   pin, and hashes them with any checksum of src/hash/, on two threads.
 * - "kernel" (src/kmod/): asks /dev/mergemem (ioctl MERGEMEM_IOC_PAGEINFO)
 *   to hash the pages in place with xxh64, so no page content is copied.
 *
 * Everything else stays the same whatever the back-end: the scan still
 * reads /proc/PID/smaps and pagemap itself (PFNs, anonymous bit, exclusive
 * bit), and, when matches are confirmed (any checksum but xxh64, or
 * `--verify`), the confirmation re-reads the pages in user space
 * (src/scan/page_reader.ts), so a back-end can never make a false
 * duplicate then, only miss one.
 *
 * The kernel computes xxh64 with seed 0 over the page's bytes; the user
 * back-end with checksum "xxh64" computes exactly the same function, so the
 * two back-ends give identical hashes for the same page (a test checks it).
 *
 * Output is columnar (typed arrays indexed by page) rather than one object
 * per page: a scan of millions of pages must stay within a few bytes of
 * tool memory per page.
 *
 * This file is only the contract: the scan and the back-ends depend on it,
 * not on one another; src/compose/engines.ts chooses the back-end.
 *
 * @module
 */

export { PAGE_HASHED, PAGE_KSM, PAGE_THP, PAGE_ZERO } from "../pages/flags.ts";
export type { PageHashOutput } from "../hash/types.ts";
import type { PageHashOutput } from "../hash/types.ts";

/**
 * Runs of contiguous present pages of one process, in ascending address
 * order: run i covers `pages[i]` pages from virtual address `addr[i]`
 * (page aligned). Only the first `count` entries are valid. Addresses are
 * numbers: user-space addresses are below 2^57, exactly representable
 * except for the low bits that page alignment makes zero anyway.
 */
export interface PageRuns {
  /** How many runs are valid. */
  count: number;
  /** Start address of each run. */
  addr: Float64Array;
  /** Number of pages in each run (at least 1). */
  pages: Uint32Array;
  /**
   * True when these pages must not be pinned: not exclusively mapped
   * (pagemap bit 56 clear: fork-shared, KSM or zero page), or in a mapping
   * with transparent huge pages. On Linux 6.x process_vm_readv's page pin
   * UNSHARES a page that is not exclusively the target's (measured: the
   * target gets a new frame; a small page of a fork-shared THP is copied
   * and its huge page split, seen on 6.12 even where pagemap said
   * exclusive), which would undo the very sharing being measured. The
   * user back-end reads such pages through /proc/PID/mem, which does not
   * pin.
   */
  noPin?: boolean;
}

/** An opened target process. Back-ends may keep more state in it (the
 * kernel back-end keeps the /proc/PID/mem fd). */
export interface HashTarget {
  /** The process id. */
  readonly pid: number;
}

/**
 * A page-hash source. One back-end object serves a whole scan; it may hold
 * buffers across calls, so calls must not overlap (the scan awaits each).
 */
export interface HashBackend {
  /** "user" (process_vm_readv + JS) or "kernel" (/dev/mergemem). */
  readonly name: "user" | "kernel";
  /** The checksum this back-end computes ("xxh64" for "kernel"). */
  readonly checksum: string;
  /**
   * True when hashPages also sets PAGE_KSM and PAGE_THP (the kernel
   * back-end, from PAGEINFO's folio flags), so the scan need not read
   * /proc/kpageflags for them.
   */
  readonly classifies?: boolean;
  /**
   * True when reading a page marks it accessed (PG_referenced, which makes
   * it look recently used to reclaim): the user back-end, whose reads go
   * through the kernel's remote access (FOLL_TOUCH), and a module without
   * MERGEMEM_FEATURE_PAGEINFO_UNTOUCHED. README "Page aging".
   */
  readonly marksAccessed: boolean;
  /**
   * Opens a process for hashing.
   * @throws {SyscallError} (from src/errors.ts) with code ESRCH when the
   *   process is gone, EACCES or EPERM when the caller may not read it.
   */
  open(pid: number): HashTarget;
  /**
   * Hashes every page of `runs` and writes one result per page into `out`.
   * Pages that cannot be read any more (unmapped or no longer present since
   * pagemap was read) get flags 0; that is not an error. The back-end must
   * never fault a page in or swap it in.
   *
   * @returns the number of pages written (the sum of the runs' pages).
   * @throws {SyscallError} ESRCH if the process exited, EACCES/EPERM if
   *   access was lost; the scan then reports the process as skipped.
   */
  hashPages(
    target: HashTarget,
    runs: PageRuns,
    out: PageHashOutput,
  ): Promise<number>;
  /** Releases what {@link open} acquired. Never throws. */
  close(target: HashTarget): void;
  /** Releases the back-end's own resources (buffers, device fd). */
  dispose?(): void;
}
