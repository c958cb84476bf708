/**
 * Scan phase 3, classify frames: with PFNs, the page table in PFN order
 * and the kpageflags of each frame (KSM, THP, zero page) as page flags.
 *
 * @module
 */
import { type PageTable, sortOrder } from "../dedup/table.ts";
import { PAGE_KSM, PAGE_THP } from "../pages/flags.ts";
import { KPF_KSM, KPF_THP, lookupKpageflagsOrdered } from "../pages/pagemap.ts";
import { mayHoldThp } from "../pages/thp.ts";
import type { ProcState } from "./layouts.ts";

/**
 * PFNs at most this far apart share one kpageflags read: each entry costs
 * the kernel about as much as a tenth of a system call, and a scan's
 * frames lie about 10 apart on a busy machine (measured: 16 took about
 * half the time of 256).
 */
const KPF_GAP = 16;

/**
 * Sets PAGE_KSM and PAGE_THP from /proc/kpageflags (open as `kpf`),
 * reading it in PFN order; `order` is scratch space of table.length rows.
 * With `mayMatter` (by mapping index), only the rows of mappings marked
 * there are looked up: the others cannot hold such frames, and reading
 * kpageflags costs the kernel per entry (a sixth of a scan of exclusive
 * pages, measured).
 */
export function classifyFrames(
  table: PageTable,
  kpf: Deno.FsFile,
  order: Uint32Array,
  mayMatter?: Uint8Array,
): void {
  let rows: Uint32Array | undefined;
  if (mayMatter) {
    let n = 0;
    for (let i = 0; i < table.length; i++) n += mayMatter[table.mapIdx[i]];
    if (n < table.length) {
      rows = new Uint32Array(n);
      for (let i = 0, j = 0; i < table.length; i++) {
        if (mayMatter[table.mapIdx[i]]) rows[j++] = i;
      }
    }
  }
  sortOrder(table, "pfn", order, rows);
  const flags = table.flags;
  const count = rows ? rows.length : table.length;
  lookupKpageflagsOrdered(kpf, table.pfn, order, count, (i, lo) => {
    if (lo & (1 << KPF_KSM)) flags[i] |= PAGE_KSM;
    if (lo & (1 << KPF_THP)) flags[i] |= PAGE_THP;
  }, KPF_GAP);
}

/**
 * By mapping index (ProcState.firstMap + index in maps): 1 where a frame
 * may be KSM or THP, so that its kpageflags matter. KSM pages lie only in
 * VM_MERGEABLE mappings (VmFlags "mg": madvising them unmergeable, or
 * turning PR_SET_MEMORY_MERGE off, unmerges them first), THPs only where
 * {@link mayHoldThp} says so.
 */
export function framesMayMatter(
  states: readonly ProcState[],
  mappings: number,
): Uint8Array {
  const may = new Uint8Array(mappings);
  for (const st of states) {
    st.maps.forEach((m, mi) => {
      if (m.vmFlags.includes("mg") || mayHoldThp(m)) may[st.firstMap + mi] = 1;
    });
  }
  return may;
}
