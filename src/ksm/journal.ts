/**
 * The burst journal: ksmd's original settings, on disk while a burst has
 * them changed, so that a burst killed with SIGKILL (the OOM killer,
 * `timeout -s KILL`, systemd's stop timeout) does not leave ksmd at full
 * speed forever.
 *
 * A burst writes /run/mergemem/journal.json before its first change
 * (atomically: a temporary file, fsync, rename, fsync of the directory)
 * and removes it after restoring. The journal names its owner by pid and
 * by the process's start time (field 22 of /proc/PID/stat), so that a pid
 * reused by another process is not taken for the owner. Whoever next
 * takes the KSM lock (src/ksm/lock.ts) and finds a journal whose owner is
 * gone restores its settings first. /run is a tmpfs: a reboot clears the
 * journal, as it clears KSM's settings.
 *
 * @module
 */
import { messageOf } from "../errors.ts";
import { readStat } from "../proc/info.ts";
import { KSM_DIR } from "./sysfs.ts";
import { removeFileDurably, writeFileAtomic } from "./state_file.ts";
import {
  burstSettings,
  type RestoreMismatch,
  restoreSettings,
} from "./settings.ts";

/** Where the KSM lock and the journal live (a tmpfs, cleared at boot). */
export const RUN_DIR = "/run/mergemem";

/** The journal's schema identifier. */
const JOURNAL_SCHEMA = "mergemem.journal/1";

/** The content of /run/mergemem/journal.json. */
export interface KsmJournal {
  /** {@link JOURNAL_SCHEMA}. */
  schema: typeof JOURNAL_SCHEMA;
  /** The pid of the process whose burst changed the settings. */
  pid: number;
  /** That process's start time (/proc/PID/stat field 22, clock ticks). */
  start_time: string;
  /** Who it is ("mergemem merge", "runBurst()"). */
  command: string;
  /** When the journal was written (ISO 8601, UTC). */
  created: string;
  /** The KSM sysfs directory the settings belong to. */
  ksm_dir: string;
  /** The burst settings before the burst, as the strings sysfs prints. */
  settings: Record<string, string>;
}

/** What restoring a dead owner's journal did. */
export interface JournalRecovery {
  /** The dead owner's pid. */
  owner_pid: number;
  /** The dead owner's command. */
  owner_command: string;
  /** When the dead owner wrote the journal. */
  created: string;
  /** The settings restored. */
  settings: Record<string, string>;
  /** Settings that could not be restored exactly. */
  restore_mismatch: RestoreMismatch;
  /** One line for the user, saying what happened. */
  message: string;
}

/** The journal's path in `runDir`. */
export function journalPath(runDir = RUN_DIR): string {
  return `${runDir}/journal.json`;
}

/**
 * Creates `runDir` with mode 0755 (whatever the umask: status, run by
 * any user, reads the journal) if it does not exist.
 */
export function ensureRunDir(runDir = RUN_DIR): void {
  try {
    Deno.mkdirSync(runDir, { mode: 0o755 });
  } catch (err) {
    if (err instanceof Deno.errors.AlreadyExists) return;
    throw err;
  }
  Deno.chmodSync(runDir, 0o755);
}

/**
 * A process's start time, field 22 of /proc/PID/stat, as printed; with
 * the pid it names one process for the life of the system. Undefined
 * when the process does not exist (or is unreadable).
 */
export function processStartTime(
  pid: number,
  proc = "/proc",
): string | undefined {
  try {
    return readStat(pid, { proc }).startTime;
  } catch {
    return undefined;
  }
}

/** True while the process that wrote the journal is still running. */
export function journalOwnerAlive(j: KsmJournal, proc = "/proc"): boolean {
  return processStartTime(j.pid, proc) === j.start_time;
}

/** True when `j` was written by this very process. */
function journalIsOurs(j: KsmJournal): boolean {
  return j.pid === Deno.pid && processStartTime(Deno.pid) === j.start_time;
}

/**
 * Reads the journal: undefined when there is none; throws a
 * SyntaxError-like Error when it exists but is not a journal.
 */
export function readJournal(runDir = RUN_DIR): KsmJournal | undefined {
  let text: string;
  try {
    text = Deno.readTextFileSync(journalPath(runDir));
  } catch (err) {
    if (err instanceof Deno.errors.NotFound) return undefined;
    throw err;
  }
  const j = JSON.parse(text) as Partial<KsmJournal>;
  if (
    j.schema !== JOURNAL_SCHEMA || typeof j.pid !== "number" ||
    typeof j.start_time !== "string" || typeof j.settings !== "object" ||
    j.settings === null
  ) {
    throw new Error(`${journalPath(runDir)} is not a ${JOURNAL_SCHEMA}`);
  }
  return {
    schema: JOURNAL_SCHEMA,
    pid: j.pid,
    start_time: j.start_time,
    command: String(j.command ?? "mergemem"),
    created: String(j.created ?? ""),
    ksm_dir: String(j.ksm_dir ?? KSM_DIR),
    settings: j.settings,
  };
}

/**
 * Writes the journal for this process: the burst settings of `knobs`
 * (see {@link burstSettings}). Atomic: readers see the old file or the
 * whole new one, also across a power cut.
 */
export function writeJournal(
  knobs: Record<string, string>,
  opts: { runDir?: string; ksmDir?: string; command?: string } = {},
): KsmJournal {
  const runDir = opts.runDir ?? RUN_DIR;
  const j: KsmJournal = {
    schema: JOURNAL_SCHEMA,
    pid: Deno.pid,
    start_time: processStartTime(Deno.pid) ?? "",
    command: opts.command ?? "mergemem",
    created: new Date().toISOString(),
    ksm_dir: opts.ksmDir ?? KSM_DIR,
    settings: burstSettings(knobs),
  };
  ensureRunDir(runDir);
  writeFileAtomic(journalPath(runDir), JSON.stringify(j, null, 2) + "\n");
  return j;
}

/** Removes the journal (no error when it is already gone). */
export function removeJournal(runDir = RUN_DIR): void {
  removeFileDurably(journalPath(runDir));
}

/**
 * Restores the settings of a journal whose owner is no longer running,
 * and removes it. The caller must hold the KSM lock (src/ksm/lock.ts), so
 * that no live burst can be writing a journal meanwhile; a journal of this
 * very process is then stale too (its burst ended without removing it).
 * Returns what it did, or undefined when there was nothing to recover (no
 * journal, or its owner still runs).
 */
export function recoverJournal(
  runDir = RUN_DIR,
  proc = "/proc",
): JournalRecovery | undefined {
  let j: KsmJournal | undefined;
  try {
    j = readJournal(runDir);
  } catch (err) {
    // Not a journal we wrote (written by hand, or by a future version):
    // there is nothing we could restore from it.
    removeJournal(runDir);
    return {
      owner_pid: 0,
      owner_command: "",
      created: "",
      settings: {},
      restore_mismatch: {},
      message: `removed an unreadable KSM journal (${
        messageOf(err)
      }); check /sys/kernel/mm/ksm by hand`,
    };
  }
  if (!j) return undefined;
  if (journalOwnerAlive(j, proc) && !journalIsOurs(j)) return undefined;
  const mismatch = restoreSettings(j.settings, j.ksm_dir);
  removeJournal(runDir);
  const list = Object.entries(j.settings).map(([k, v]) => `${k}=${v}`)
    .join(" ");
  const bad = Object.entries(mismatch).map(([k, m]) =>
    `${k} (wanted ${m.wanted}, got ${m.got})`
  );
  return {
    owner_pid: j.pid,
    owner_command: j.command,
    created: j.created,
    settings: j.settings,
    restore_mismatch: mismatch,
    message: `restored ksmd settings left by pid ${j.pid} (${j.command}), ` +
      `which died during a burst started ${j.created}: ${list}` +
      (bad.length ? `; could not restore ${bad.join(", ")}` : ""),
  };
}
