/**
 * The flags of a scanned page: one byte per page in a hash back-end's
 * output and in the scan's page table (src/dedup/table.ts). Defined once,
 * here, for every layer.
 *
 * @module
 */

/** The page was read and hashed: its hash is valid. A page without it
 * vanished (unmapped, or no longer present) and is left out. */
export const PAGE_HASHED = 1;
/** The page's content is all zero bytes (with {@link PAGE_HASHED}). */
export const PAGE_ZERO = 2;
/** pagemap bit 56: mapped by exactly one page table entry. */
export const PAGE_EXCLUSIVE = 4;
/** kpageflags KPF_KSM: a KSM page. */
export const PAGE_KSM = 8;
/** kpageflags KPF_THP: part of a transparent huge page. */
export const PAGE_THP = 16;
/**
 * The page may be read with process_vm_readv: its pin will not unshare it
 * (exclusively mapped, in a mapping without transparent huge pages; see
 * src/scan/page_reader.ts). Pages without it are read through
 * /proc/PID/mem.
 */
export const PAGE_PIN_OK = 32;
/**
 * A sampled scan counts the page's content exactly, outside the sample
 * (a heavy content: src/dedup/sample.ts, HeavyHitters).
 */
export const PAGE_COUNTED = 64;
