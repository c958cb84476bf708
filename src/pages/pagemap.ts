/**
 * /proc/PID/pagemap and /proc/kpageflags: decoding and big reads.
 *
 * A pagemap entry is a little-endian u64 per virtual page
 * (Documentation/admin-guide/mm/pagemap.rst): bit 63 present, 62 swapped,
 * 61 file page or shared anonymous, 56 exclusively mapped, bits 0-54 the
 * PFN (0 unless the reader has CAP_SYS_ADMIN). Entries are handled as two
 * u32 halves in a Uint32Array, never as objects, since a scan reads
 * millions of them.
 *
 * @module
 */
import { systemPageSize } from "./pagesize.ts";

/** In the high u32 of an entry: bit 63, present in RAM. */
export const PM_PRESENT_HI = 0x80000000;
/** bit 62, swapped out. */
export const PM_SWAPPED_HI = 0x40000000;
/** bit 61, a file page or a shared anonymous page. */
export const PM_FILE_HI = 0x20000000;
/** bit 56, mapped by exactly one page table entry. */
export const PM_EXCLUSIVE_HI = 0x01000000;
/** bits 32-54 of the PFN, in the high u32. */
export const PM_PFN_HI_MASK = 0x007fffff;

/** A decoded pagemap entry (for tests and tools; the scan decodes inline). */
export interface PagemapEntry {
  present: boolean;
  swapped: boolean;
  file: boolean;
  exclusive: boolean;
  pfn: number;
}

/** Decodes entry `i` of a Uint32Array of raw pagemap bytes. */
export function decodePagemap(words: Uint32Array, i: number): PagemapEntry {
  const lo = words[2 * i], hi = words[2 * i + 1];
  return {
    present: (hi & PM_PRESENT_HI) !== 0,
    swapped: (hi & PM_SWAPPED_HI) !== 0,
    file: (hi & PM_FILE_HI) !== 0,
    exclusive: (hi & PM_EXCLUSIVE_HI) !== 0,
    pfn: pfnOf(lo, hi),
  };
}

/** The PFN of an entry given as halves (0 when not present). */
export function pfnOf(lo: number, hi: number): number {
  if ((hi & PM_PRESENT_HI) === 0) return 0;
  return (hi & PM_PFN_HI_MASK) * 0x100000000 + lo;
}

/** kpageflags bits mergemem reports (include/uapi/linux/kernel-page-flags.h). */
export const KPF_KSM = 21;
export const KPF_THP = 22;
export const KPF_ZERO_PAGE = 24;

/**
 * Reads `count` u64 entries at entry index `index` of an open pagemap or
 * kpageflags file into `into` (as 2 * count u32 words). Returns the number
 * of entries read: fewer means end of file, which for pagemap means the
 * process's address space is gone.
 */
export function readEntries(
  file: Deno.FsFile,
  index: number,
  count: number,
  into: Uint32Array,
): number {
  const bytes = new Uint8Array(into.buffer, into.byteOffset, count * 8);
  file.seekSync(index * 8, Deno.SeekMode.Start);
  let got = 0;
  while (got < bytes.length) {
    const n = file.readSync(bytes.subarray(got));
    if (n === null || n === 0) break;
    got += n;
  }
  return Math.floor(got / 8);
}

/**
 * Looks up kpageflags for many PFNs with few reads, for PFNs already in
 * ascending order (neighbours within `gap` entries share one read):
 * `order[0..count)` indexes `pfns` by ascending PFN (0 entries are
 * skipped). Calls `visit(order[j], flagsLo, flagsHi)` for each readable
 * one. No sort and no allocation per PFN.
 */
export function lookupKpageflagsOrdered(
  file: Deno.FsFile,
  pfns: ArrayLike<number>,
  order: Uint32Array,
  count: number,
  visit: (k: number, lo: number, hi: number) => void,
  gap = 256,
): void {
  const span = 4096;
  const buf = new Uint32Array(2 * span);
  let k = 0;
  while (k < count && pfns[order[k]] === 0) k++;
  while (k < count) {
    const first = pfns[order[k]];
    let j = k + 1;
    while (
      j < count && pfns[order[j]] - first < span &&
      pfns[order[j]] - pfns[order[j - 1]] <= gap
    ) j++;
    const got = readEntries(file, first, pfns[order[j - 1]] - first + 1, buf);
    for (let t = k; t < j; t++) {
      const idx = pfns[order[t]] - first;
      if (idx < got) visit(order[t], buf[2 * idx], buf[2 * idx + 1]);
    }
    k = j;
  }
}

/**
 * Whether /proc/kpageflags reports KPF_KSM truthfully on this kernel.
 *
 * Some kernels (seen on Debian's 6.12) test the KSM bit of a folio's
 * mapping with `mapping & PAGE_MAPPING_KSM`, which is true for every
 * anonymous page, so every anonymous page reads as KSM. This probe looks
 * up a page of our own that certainly is not KSM: a freshly written
 * private buffer. Returns undefined when it cannot tell (no PFNs).
 */
export function kpageflagsKsmReliable(
  kpageflags: Deno.FsFile,
): boolean | undefined {
  const ps = systemPageSize();
  const buf = new Uint8Array(3 * ps);
  for (let i = 0; i < buf.length; i += 64) buf[i] = (i * 131 + 7) & 0xff;
  const addr = Number(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
  const page = Math.ceil(addr / ps);
  let pagemap: Deno.FsFile | undefined;
  try {
    pagemap = Deno.openSync("/proc/self/pagemap");
    const entry = new Uint32Array(2);
    if (readEntries(pagemap, page, 1, entry) !== 1) return undefined;
    const pfn = pfnOf(entry[0], entry[1]);
    if (pfn === 0) return undefined;
    const flags = new Uint32Array(2);
    if (readEntries(kpageflags, pfn, 1, flags) !== 1) return undefined;
    return (flags[0] & (1 << KPF_KSM)) === 0;
  } catch {
    return undefined;
  } finally {
    pagemap?.close();
    // Keep buf alive until the lookups are done.
    buf[0]++;
  }
}
