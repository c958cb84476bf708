/**
 * Whether a mapping can hold transparent huge pages (of any size), from
 * the THP modes in /sys/kernel/mm/transparent_hugepage/ and the mapping's
 * smaps VmFlags (hg: MADV_HUGEPAGE, nh: MADV_NOHUGEPAGE).
 *
 * The scan needs to know because a process_vm_readv pin of a small page of
 * a large folio that is not exclusively the target's copies it in the
 * target (on 6.x the copy-on-write "unshare" never reuses part of a large
 * folio), even where pagemap calls the page exclusive.
 *
 * @module
 */
import type { Mapping } from "./maps.ts";

const THP_DIR = "/sys/kernel/mm/transparent_hugepage";

let modes: Set<string> | undefined;

/** The effective modes of every THP size ("always", "madvise", "never"). */
function thpModes(): Set<string> {
  if (modes) return modes;
  const bracketed = (path: string) =>
    /\[(\w+)\]/.exec(Deno.readTextFileSync(path))?.[1] ?? "always";
  const m = new Set<string>();
  try {
    const global = bracketed(`${THP_DIR}/enabled`);
    m.add(global);
    for (const e of Deno.readDirSync(THP_DIR)) {
      if (!e.name.startsWith("hugepages-")) continue;
      const mode = bracketed(`${THP_DIR}/${e.name}/enabled`);
      m.add(mode === "inherit" ? global : mode);
    }
  } catch {
    m.add("always"); // cannot tell: assume huge pages are possible
  }
  modes = m;
  return m;
}

/**
 * True when `m` may contain transparent huge pages: it has some now
 * (AnonHugePages), or a THP mode lets the kernel (or khugepaged) give it
 * some.
 */
export function mayHoldThp(m: Mapping): boolean {
  if ((m.kb.AnonHugePages ?? 0) > 0) return true;
  const s = thpModes();
  if (s.has("always") && !m.vmFlags.includes("nh")) return true;
  return s.has("madvise") && m.vmFlags.includes("hg");
}
