/**
 * Scan phase 3, classify frames: with PFNs, the page table in PFN order
 * and the kpageflags of each frame (KSM, THP, zero page) as page flags.
 *
 * @module
 */
import { type PageTable, sortOrder } from "../dedup/table.ts";
import { PAGE_KSM, PAGE_THP, PAGE_ZERO_PAGE } from "../pages/flags.ts";
import {
  KPF_KSM,
  KPF_THP,
  KPF_ZERO_PAGE,
  lookupKpageflagsOrdered,
} from "../pages/pagemap.ts";

/**
 * Sets PAGE_KSM, PAGE_THP and PAGE_ZERO_PAGE from /proc/kpageflags (open
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
    if (lo & (1 << KPF_ZERO_PAGE)) flags[i] |= PAGE_ZERO_PAGE;
  });
}
