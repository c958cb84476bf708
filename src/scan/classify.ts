/**
 * Scan phase 3, classify frames: with PFNs, the page table in PFN order
 * and the kpageflags of each frame (KSM, THP, zero page) as page flags.
 *
 * @module
 */
import { type PageTable, sortOrder } from "../dedup/table.ts";
import { PAGE_KSM, PAGE_THP } from "../pages/flags.ts";
import { KPF_KSM, KPF_THP, lookupKpageflagsOrdered } from "../pages/pagemap.ts";

/**
 * PFNs at most this far apart share one kpageflags read: each entry costs
 * the kernel about as much as a tenth of a system call, and a scan's
 * frames lie about 10 apart on a busy machine (measured: 16 took about
 * half the time of 256).
 */
const KPF_GAP = 16;

/**
 * Sets PAGE_KSM and PAGE_THP from /proc/kpageflags (open
 * as `kpf`), reading it in PFN order; `order` is scratch space of
 * table.length rows.
 */
export function classifyFrames(
  table: PageTable,
  kpf: Deno.FsFile,
  order: Uint32Array,
): void {
  sortOrder(table, "pfn", order);
  const flags = table.flags;
  lookupKpageflagsOrdered(kpf, table.pfn, order, table.length, (i, lo) => {
    if (lo & (1 << KPF_KSM)) flags[i] |= PAGE_KSM;
    if (lo & (1 << KPF_THP)) flags[i] |= PAGE_THP;
  }, KPF_GAP);
}
