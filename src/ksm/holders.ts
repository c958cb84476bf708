/**
 * Which processes on the host have mergeable memory, whoever marked it
 * (an earlier mergemem run, systemd's MemoryKSM=, QEMU, the program
 * itself). KSM keeps one stable tree per host, so any page marked now can
 * be merged with any of theirs: src/merge/trust.ts refuses to mark a trust
 * domain while another one holds mergeable memory.
 *
 * Per process, the cheapest source that decides: /proc/PID/ksm_stat's
 * `ksm_mergeable`/`ksm_merge_any` (6.18+); else merged pages
 * (`ksm_merging_pages` above 0, in ksm_stat from 6.12, its own file
 * before); else the VmFlags `mg` of /proc/PID/smaps, which also sees a
 * VMA marked while ksmd was stopped, and not one unmerged since.
 *
 * @module
 */
import { listPids, readComm, readUid } from "../proc/info.ts";

/** A process with mergeable memory. */
export interface KsmHolder {
  /** Process id. */
  pid: number;
  /** Its command name. */
  comm: string;
  /** Its real uid. */
  uid: number;
  /** How it was seen: "ksm_stat", "ksmd" (rmap items or merged pages) or
   * "smaps" (VmFlags mg). */
  seen: "ksm_stat" | "ksmd" | "smaps";
}

/** What {@link ksmHolders} found, and what it could not read. */
export interface KsmHolderScan {
  /** Processes with mergeable memory, by ascending pid. */
  holders: KsmHolder[];
  /** Processes whose KSM state could not be read (not root). */
  unreadable: number;
}

/** The answer for one process: mergeable, how seen; or not; or unknown. */
type Answer = KsmHolder["seen"] | false | undefined;

/**
 * Every process with mergeable memory, except those in `except` (for
 * example the caller itself). Kernel threads have an empty ksm_stat and
 * no smaps entries.
 */
export function ksmHolders(
  except: ReadonlySet<number> = new Set(),
  proc = "/proc",
): KsmHolderScan {
  const scan: KsmHolderScan = { holders: [], unreadable: 0 };
  for (const pid of listPids(proc)) {
    if (except.has(pid)) continue;
    const seen = mergeableState(pid, proc);
    if (seen === undefined) {
      scan.unreadable++;
      continue;
    }
    if (seen === false) continue;
    const uid = readUid(pid, proc);
    if (uid === undefined) continue; // gone meanwhile
    scan.holders.push({ pid, comm: readComm(pid, proc), uid, seen });
  }
  return scan;
}

/**
 * Whether one process has mergeable memory; undefined when nothing could
 * be read (no permission). A process that is gone has none.
 */
export function mergeableState(pid: number, proc = "/proc"): Answer {
  let stat: string | undefined;
  try {
    stat = Deno.readTextFileSync(`${proc}/${pid}/ksm_stat`);
  } catch {
    // No ksm_stat before 6.1, unreadable, or the process is gone.
  }
  if (stat === "") return false; // a kernel thread: no mm
  if (stat !== undefined) {
    const answer = fromKsmStat(stat);
    if (answer !== undefined) return answer;
  }
  if (stat === undefined || !/ksm_merging_pages/.test(stat)) {
    // 6.1 to 6.11: ksm_merging_pages has its own file (5.19+).
    try {
      const merging = Deno.readTextFileSync(`${proc}/${pid}/ksm_merging_pages`);
      if (Number(merging.trim()) > 0) return "ksmd";
    } catch {
      // older, unreadable or gone: smaps decides
    }
  }
  return fromSmaps(pid, proc, stat !== undefined);
}

/** The answer of a ksm_stat text, or undefined when it cannot decide. */
export function fromKsmStat(stat: string): Answer {
  if (/^ksm_merge_any:\s+yes$/m.test(stat)) return "ksm_stat";
  const mergeable = /^ksm_mergeable:\s+(yes|no)$/m.exec(stat);
  if (mergeable) return mergeable[1] === "yes" ? "ksm_stat" : false;
  // Merged pages: mergeable now (unmerging breaks them all). ksmd's rmap
  // items alone do not tell: they outlive an unmerge until ksmd's next
  // pass, and after a burst ksmd is stopped.
  const m = /^\s*ksm_merging_pages:?\s+(\d+)\s*$/m.exec(stat);
  if (m && Number(m[1]) > 0) return "ksmd";
  return undefined;
}

/**
 * VmFlags `mg` in /proc/PID/smaps. `readable` says ksm_stat could be read
 * (so a failure here is the process exiting, not a permission).
 */
function fromSmaps(pid: number, proc: string, readable: boolean): Answer {
  let smaps: string;
  try {
    smaps = Deno.readTextFileSync(`${proc}/${pid}/smaps`);
  } catch (err) {
    if (err instanceof Deno.errors.NotFound || readable) return false;
    return undefined;
  }
  return /^VmFlags:.* mg( |$)/m.test(smaps) ? "smaps" : false;
}
