/**
 * Per-process KSM counters: /proc/PID/ksm_merging_pages and
 * /proc/PID/ksm_stat, and the "mg" (mergeable) VMA flag in smaps.
 *
 * ksm_stat grows with the kernel: 6.1 has only ksm_rmap_items; 6.12 adds
 * ksm_zero_pages, ksm_merging_pages and ksm_process_profit; 6.18 adds
 * "ksm_merge_any: no" and "ksm_mergeable: no" (note the colon). The parser
 * accepts both spellings and keeps whatever it finds.
 *
 * The /proc parsing itself lives in src/proc/ (pids, comm, uid) and
 * src/pages/maps.ts (smaps).
 *
 * @module
 */
import { type Mapping, parseSmaps } from "../pages/maps.ts";

/** One process's KSM counters. */
export interface ProcessKsm {
  /** Pages of this process mapped onto KSM pages. */
  mergingPages: number;
  /** Every key of ksm_stat: numbers, or strings for yes/no flags. */
  stat: Record<string, number | string>;
}

/** Parses the text of /proc/PID/ksm_stat. */
export function parseKsmStat(text: string): Record<string, number | string> {
  const out: Record<string, number | string> = {};
  for (const line of text.split("\n")) {
    const m = /^\s*([A-Za-z0-9_]+):?\s+(\S+)\s*$/.exec(line);
    if (!m) continue;
    const n = Number(m[2]);
    out[m[1]] = Number.isFinite(n) ? n : m[2];
  }
  return out;
}

/**
 * Reads a process's KSM counters; undefined when the process is gone or
 * unreadable (ksm_stat needs the same ptrace-read access as smaps).
 */
export function readProcessKsm(
  pid: number,
  proc = "/proc",
): ProcessKsm | undefined {
  let merging: number | undefined;
  try {
    merging = Number(
      Deno.readTextFileSync(`${proc}/${pid}/ksm_merging_pages`).trim(),
    );
  } catch {
    merging = undefined;
  }
  let stat: Record<string, number | string> = {};
  try {
    stat = parseKsmStat(Deno.readTextFileSync(`${proc}/${pid}/ksm_stat`));
  } catch {
    // older kernels or no access: keep what ksm_merging_pages told us
  }
  if (merging === undefined || !Number.isFinite(merging)) {
    const m = stat.ksm_merging_pages;
    if (typeof m !== "number") return undefined;
    merging = m;
  }
  return { mergingPages: merging, stat };
}

/** The ksm_merging_pages of a process, 0 when unreadable or gone. */
export function mergingPages(pid: number, proc = "/proc"): number {
  return readProcessKsm(pid, proc)?.mergingPages ?? 0;
}

/** The mappings of smaps text whose VmFlags contain "mg" (mergeable). */
export function parseMergeableMappings(text: string): Mapping[] {
  return parseSmaps(text).filter((m) => m.vmFlags.includes("mg"));
}

/**
 * A process's mappings flagged mergeable ("mg" in smaps VmFlags); [] when
 * smaps is unreadable (the process is gone, or no ptrace-read access).
 */
export function readMergeableMappings(pid: number, proc = "/proc"): Mapping[] {
  let text: string;
  try {
    text = Deno.readTextFileSync(`${proc}/${pid}/smaps`);
  } catch {
    return [];
  }
  return parseMergeableMappings(text);
}

/** Counts the VMAs of smaps text flagged "mg" and their size in bytes. */
export function parseMergeableVmas(
  text: string,
): { vmas: number; bytes: number } {
  const mg = parseMergeableMappings(text);
  return {
    vmas: mg.length,
    bytes: mg.reduce((a, m) => a + m.end - m.start, 0),
  };
}
