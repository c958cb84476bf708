/**
 * The THP record: the VMAs where mergemem set MADV_NOHUGEPAGE, so that
 * unmerge can undo exactly that and nothing else, in a later run.
 *
 * khugepaged collapses ranges KSM merged back into private huge pages
 * (README "Huge pages"), so merge keeps the VMAs it marks out of THP. That
 * changes the target beyond KSM, and only mergemem knows which VMAs it
 * changed (a program may have asked for MADV_NOHUGEPAGE itself), so each
 * change is written down: /run/mergemem/thp/PID.json, naming the process
 * also by its start time so that a reused pid is not taken for it. /run is
 * a tmpfs; the processes die with the boot that cleared it.
 *
 * @module
 */
import { processStartTime, RUN_DIR } from "./journal.ts";
import { removeFileDurably, writeFileAtomic } from "./state_file.ts";

/** The record's schema identifier. */
export const THP_RECORD_SCHEMA = "mergemem.thp/1";

/** One VMA mergemem set VM_NOHUGEPAGE on. */
export interface ThpVma {
  /** Start address, "0x..." hex. */
  start: string;
  /** End address (exclusive), "0x..." hex. */
  end: string;
  /** It had VM_HUGEPAGE (MADV_HUGEPAGE) before, to be given back. */
  had_hugepage: boolean;
}

/** The content of /run/mergemem/thp/PID.json. */
export interface ThpRecord {
  /** {@link THP_RECORD_SCHEMA}. */
  schema: typeof THP_RECORD_SCHEMA;
  /** The process. */
  pid: number;
  /** Its start time (/proc/PID/stat field 22), against pid reuse. */
  start_time: string;
  /** The VMAs, in the order they were changed. */
  vmas: ThpVma[];
}

function dir(runDir: string): string {
  return `${runDir}/thp`;
}

/** The record's path. */
export function thpRecordPath(pid: number, runDir = RUN_DIR): string {
  return `${dir(runDir)}/${pid}.json`;
}

/**
 * The record of a running process; undefined when there is none or it
 * belongs to an earlier process with the same pid.
 */
export function readThpRecord(
  pid: number,
  opts: { runDir?: string; proc?: string } = {},
): ThpRecord | undefined {
  let r: ThpRecord;
  try {
    r = JSON.parse(
      Deno.readTextFileSync(thpRecordPath(pid, opts.runDir ?? RUN_DIR)),
    );
  } catch {
    return undefined;
  }
  if (r.schema !== THP_RECORD_SCHEMA || r.pid !== pid) return undefined;
  if (r.start_time !== processStartTime(pid, opts.proc ?? "/proc")) {
    return undefined;
  }
  return r;
}

/**
 * Adds VMAs to pid's record (creating it). The caller holds the KSM lock,
 * which serialises every writer.
 */
export function addThpVmas(
  pid: number,
  vmas: ThpVma[],
  opts: { runDir?: string; proc?: string } = {},
): void {
  if (vmas.length === 0) return;
  const runDir = opts.runDir ?? RUN_DIR;
  const now = processStartTime(pid, opts.proc ?? "/proc");
  if (now === undefined) return; // gone: nothing left to undo
  const old = readThpRecord(pid, opts);
  const byStart = new Map((old?.vmas ?? []).map((v) => [v.start, v]));
  for (const v of vmas) byStart.set(v.start, v);
  Deno.mkdirSync(dir(runDir), { recursive: true, mode: 0o755 });
  const rec: ThpRecord = {
    schema: THP_RECORD_SCHEMA,
    pid,
    start_time: now,
    vmas: [...byStart.values()],
  };
  writeFileAtomic(thpRecordPath(pid, runDir), JSON.stringify(rec) + "\n");
}

/** Drops VMAs (by start address) from pid's record; removes it when empty. */
export function removeThpVmas(
  pid: number,
  starts: string[],
  opts: { runDir?: string; proc?: string } = {},
): void {
  const runDir = opts.runDir ?? RUN_DIR;
  const old = readThpRecord(pid, opts);
  const drop = new Set(starts);
  const left = old?.vmas.filter((v) => !drop.has(v.start)) ?? [];
  if (left.length === 0) {
    removeFileDurably(thpRecordPath(pid, runDir));
    return;
  }
  writeFileAtomic(
    thpRecordPath(pid, runDir),
    JSON.stringify({ ...old!, vmas: left }) + "\n",
  );
}

/**
 * Removes the records of processes that are gone (or whose pid now
 * belongs to another process). Returns how many were removed.
 */
export function pruneThpRecords(
  opts: { runDir?: string; proc?: string } = {},
): number {
  const runDir = opts.runDir ?? RUN_DIR;
  let removed = 0;
  let names: string[];
  try {
    names = [...Deno.readDirSync(dir(runDir))].map((e) => e.name);
  } catch {
    return 0;
  }
  for (const name of names) {
    const m = /^(\d+)\.json$/.exec(name);
    if (!m) continue;
    if (readThpRecord(Number(m[1]), opts) === undefined) {
      removeFileDurably(`${dir(runDir)}/${name}`);
      removed++;
    }
  }
  return removed;
}
