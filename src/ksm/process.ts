/**
 * Per-process KSM counters: /proc/PID/ksm_merging_pages and
 * /proc/PID/ksm_stat, and the "mg" (mergeable) VMA flag in smaps.
 *
 * ksm_stat grows with the kernel: 6.1 has only ksm_rmap_items; 6.12 adds
 * ksm_zero_pages, ksm_merging_pages and ksm_process_profit; 6.18 adds
 * "ksm_merge_any: no" and "ksm_mergeable: no" (note the colon). The parser
 * accepts both spellings and keeps whatever it finds.
 *
 * @module
 */

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

/**
 * Counts a process's VMAs flagged mergeable ("mg" in smaps VmFlags) and
 * their total size in bytes. Undefined when smaps is unreadable.
 */
export function mergeableVmas(
  pid: number,
  proc = "/proc",
): { vmas: number; bytes: number } | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync(`${proc}/${pid}/smaps`);
  } catch {
    return undefined;
  }
  return parseMergeableVmas(text);
}

/** Parses smaps text for VMAs whose VmFlags contain "mg". */
export function parseMergeableVmas(
  text: string,
): { vmas: number; bytes: number } {
  let vmas = 0, bytes = 0, size = 0;
  for (const line of text.split("\n")) {
    const range = /^([0-9a-f]+)-([0-9a-f]+)\s/.exec(line);
    if (range) {
      size = parseInt(range[2], 16) - parseInt(range[1], 16);
      continue;
    }
    if (line.startsWith("VmFlags:")) {
      const flags = line.slice(8).trim().split(/\s+/);
      if (flags.includes("mg")) {
        vmas++;
        bytes += size;
      }
    }
  }
  return { vmas, bytes };
}

/** Lists the numeric pids under /proc. */
export function listPids(proc = "/proc"): number[] {
  const out: number[] = [];
  for (const e of Deno.readDirSync(proc)) {
    if (/^\d+$/.test(e.name)) out.push(Number(e.name));
  }
  return out.sort((a, b) => a - b);
}

/** The comm (short name) of a process, "" when gone. */
export function readComm(pid: number, proc = "/proc"): string {
  try {
    return Deno.readTextFileSync(`${proc}/${pid}/comm`).trim();
  } catch {
    return "";
  }
}

/** The real uid of a process (from status), undefined when gone. */
export function readUid(pid: number, proc = "/proc"): number | undefined {
  try {
    const s = Deno.readTextFileSync(`${proc}/${pid}/status`);
    const m = /^Uid:\s+(\d+)/m.exec(s);
    return m ? Number(m[1]) : undefined;
  } catch {
    return undefined;
  }
}
