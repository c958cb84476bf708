/**
 * status(): what is merged now. Whether /dev/mergemem is loaded (and its
 * API version), ksmd's settings and counters, and one row per process with
 * KSM activity from /proc/PID/ksm_merging_pages and /proc/PID/ksm_stat,
 * as the "mergemem.status/1" report.
 *
 * status() also looks for a crashed burst's journal (src/ksm/journal.ts):
 * when its owner is gone and the KSM lock is free, it restores the
 * settings the journal holds and says so in `warnings` and `journal`.
 *
 * @module
 */
import { ErrorReason, MergememError, messageOf } from "../errors.ts";
import { featureNames, openModule } from "../kmod/client.ts";
import { readProcessKsm } from "../ksm/process.ts";
import { listPids, readComm, readUid } from "../proc/info.ts";
import { containerLabel, TenancyReader } from "../proc/tenant.ts";
import { KSM_DIR, ksmAvailable, readKsm } from "../ksm/sysfs.ts";
import { systemPageSize } from "../pages/pagesize.ts";
import { VERSION } from "../version.ts";
import {
  journalOwnerAlive,
  journalPath,
  type KsmJournal,
  readJournal,
  recoverJournal,
  RUN_DIR,
} from "../ksm/journal.ts";
import { ifKsmLockFree } from "../ksm/lock.ts";

/** The module part of the status. */
export interface ModuleStatus {
  /** /dev/mergemem was opened and the handshake succeeded. */
  loaded: boolean;
  /** The module's API version; null when not loaded. */
  api: number | null;
  /** The module's version string; null when not loaded. */
  version: string | null;
  /** Feature names the module offers ("pageinfo", ...); [] when not loaded. */
  features: string[];
  /** Why it is not usable, when not loaded or mismatched. */
  error: string | null;
}

/** One process with KSM activity. */
export interface ProcessStatus {
  /** Process id. */
  pid: number;
  /** Command name (/proc/PID/comm). */
  comm: string;
  /** Real uid; null when unreadable. */
  uid: number | null;
  /** Its container's name (or short id), or null for a host process. */
  container: string | null;
  /** Its pod's name (podman or Kubernetes), or null. */
  pod: string | null;
  /** Its Kubernetes namespace, when known; else null. */
  namespace: string | null;
  /** /proc/PID/ksm_merging_pages, in pages. */
  merging_pages: number;
  /** KSM rmap items (ksm_stat ksm_rmap_items); null when not reported. */
  rmap_items: number | null;
  /** KSM zero pages (ksm_stat ksm_zero_pages, 6.12+), in pages; else null. */
  zero_pages: number | null;
  /** Bytes saved minus KSM's rmap overhead (6.12+), else null. */
  process_profit: number | null;
}

/** A burst journal found in /run/mergemem (src/ksm/journal.ts). */
export interface JournalStatus {
  /** The journal file. */
  path: string;
  /**
   * "active": its owner's burst is running (it restores them itself);
   * "restored": its owner had died, and this status restored the settings;
   * "stale": its owner died, but this status could not restore them (not
   * root, or another run holds the KSM lock and will).
   */
  state: "active" | "restored" | "stale";
  /** The pid that wrote it (0 when the journal was unreadable). */
  owner_pid: number;
  /** What that process was ("mergemem merge", "runBurst()"). */
  owner_command: string;
  /** When it was written (ISO 8601). */
  created: string;
  /** ksmd's settings before that burst. */
  settings: Record<string, string>;
  /** Settings that could not be restored ("restored" only). */
  restore_mismatch: Record<string, { wanted: string; got: string }>;
  /**
   * Why a "stale" journal was not restored (null in the other states):
   * "needs-root": the caller may not take the KSM lock or write ksmd's
   * settings; "lock-held": another run holds the KSM lock and restores
   * them; "failed": another error, named in `message`.
   */
  stale_reason: JournalStaleReason | null;
  /** One line for the user. */
  message: string;
}

/** Why a stale journal was not restored ({@link JournalStatus}). */
export type JournalStaleReason = "needs-root" | "lock-held" | "failed";

/** The status report's schema identifier (docs/json-schema.md). */
export const STATUS_SCHEMA = "mergemem.status/1";

/** The "mergemem.status/1" report. */
export interface StatusReport {
  /** The schema identifier, {@link STATUS_SCHEMA}. */
  schema: typeof STATUS_SCHEMA;
  /** The mergemem version that made the report. */
  mergemem_version: string;
  /** When the report was made (ISO 8601, UTC). */
  timestamp: string;
  /** Page size in bytes. */
  page_size: number;
  /** The /dev/mergemem module's state. */
  module: ModuleStatus;
  /** KSM (/sys/kernel/mm/ksm): available, settings and counters. */
  ksm: {
    available: boolean;
    settings: Record<string, string>;
    counters: Record<string, number>;
  };
  /** A burst journal in /run/mergemem, or null when there is none. */
  journal: JournalStatus | null;
  /** Notes for the user (a crashed burst's settings restored). */
  warnings: string[];
  /** Processes with KSM activity, most merging pages first. */
  processes: ProcessStatus[];
  /** Sums over processes (process_profit in bytes, null if none has it). */
  totals: {
    processes: number;
    merging_pages: number;
    process_profit: number | null;
  };
}

/** Probes the module without failing. */
export function moduleStatus(path?: string): ModuleStatus {
  try {
    const m = openModule({ path });
    const s: ModuleStatus = {
      loaded: true,
      api: m.api,
      version: m.moduleVersion,
      features: featureNames(m.features),
      error: null,
    };
    m.close();
    return s;
  } catch (err) {
    if (!(err instanceof MergememError)) throw err;
    return {
      loaded: false,
      api: null,
      version: null,
      features: [],
      error: err.message,
    };
  }
}

/** Options of {@link status}. */
export interface StatusOptions {
  /** The KSM sysfs directory (default /sys/kernel/mm/ksm). */
  ksmDir?: string;
  /** The procfs root (default /proc). */
  proc?: string;
  /** The module's device file (default /dev/mergemem). */
  devicePath?: string;
  /** The KSM lock's and journal's directory (default /run/mergemem). */
  runDir?: string;
}

function fromJournal(
  j: KsmJournal | undefined,
  path: string,
  state: JournalStatus["state"],
  message: string,
  staleReason: JournalStaleReason | null = null,
): JournalStatus {
  return {
    path,
    state,
    owner_pid: j?.pid ?? 0,
    owner_command: j?.command ?? "",
    created: j?.created ?? "",
    settings: j?.settings ?? {},
    restore_mismatch: {},
    stale_reason: staleReason,
    message,
  };
}

/**
 * Looks at the burst journal, and restores a dead owner's settings when
 * the KSM lock is free. Exported for tests.
 */
export function checkJournal(runDir = RUN_DIR): JournalStatus | null {
  const path = journalPath(runDir);
  let j: KsmJournal | undefined;
  let unreadable: string | undefined;
  try {
    j = readJournal(runDir);
  } catch (err) {
    unreadable = messageOf(err);
  }
  if (!j && unreadable === undefined) return null;
  if (j && journalOwnerAlive(j)) {
    return fromJournal(
      j,
      path,
      "active",
      `a burst of pid ${j.pid} (${j.command}) runs since ${j.created}; ` +
        "it restores ksmd's settings itself",
    );
  }
  const dead = j
    ? `pid ${j.pid} (${j.command}) died during a burst started ${j.created}`
    : `unreadable journal (${unreadable})`;
  let done: { value: ReturnType<typeof recoverJournal> } | undefined;
  try {
    done = ifKsmLockFree(() => recoverJournal(runDir), runDir);
  } catch (err) {
    if (!(err instanceof MergememError)) throw err;
    const needsRoot = err.reason === ErrorReason.NeedsRoot;
    return fromJournal(
      j,
      path,
      "stale",
      `${dead}, leaving ksmd's settings changed; ` +
        (needsRoot ? "restoring them needs root" : `${err.message}`),
      needsRoot ? "needs-root" : "failed",
    );
  }
  if (done === undefined) {
    return fromJournal(
      j,
      path,
      "stale",
      `${dead}; another mergemem run holds the KSM lock and restores them`,
      "lock-held",
    );
  }
  const r = done.value;
  if (!r) return null; // restored by another run meanwhile
  return {
    path,
    state: "restored",
    owner_pid: r.owner_pid,
    owner_command: r.owner_command,
    created: r.created,
    settings: r.settings,
    restore_mismatch: r.restore_mismatch,
    stale_reason: null,
    message: r.message,
  };
}

/** Collects the status report. */
export function status(opts: StatusOptions = {}): StatusReport {
  const dir = opts.ksmDir ?? KSM_DIR;
  const proc = opts.proc ?? "/proc";
  const available = ksmAvailable(dir);
  // Before reading the settings, so that they show the restored ones.
  const journal = available ? checkJournal(opts.runDir) : null;
  const warnings = journal && journal.state !== "active"
    ? [journal.message]
    : [];
  const ksm = available ? readKsm(dir) : { knobs: {}, counters: {} };
  const processes: ProcessStatus[] = [];
  const reader = new TenancyReader({ proc });
  const tenancy = (pid: number) => {
    try {
      return reader.read(pid);
    } catch {
      return undefined;
    }
  };
  for (const pid of listPids(proc)) {
    const k = readProcessKsm(pid, proc);
    if (!k) continue;
    const num = (key: string) =>
      typeof k.stat[key] === "number" ? k.stat[key] as number : null;
    const rmap = num("ksm_rmap_items");
    if (k.mergingPages <= 0 && !(rmap && rmap > 0)) continue;
    const t = tenancy(pid);
    processes.push({
      pid,
      comm: readComm(pid, proc),
      uid: readUid(pid, proc) ?? null,
      container: t?.container ? containerLabel(t.container) : null,
      pod: t?.pod?.name ?? t?.pod?.uid ?? null,
      namespace: t?.pod?.namespace ?? null,
      merging_pages: k.mergingPages,
      rmap_items: rmap,
      zero_pages: num("ksm_zero_pages"),
      process_profit: num("ksm_process_profit"),
    });
  }
  processes.sort((a, b) => b.merging_pages - a.merging_pages || a.pid - b.pid);
  const profits = processes.map((p) => p.process_profit).filter((p) =>
    p !== null
  );
  return {
    schema: STATUS_SCHEMA,
    mergemem_version: VERSION,
    timestamp: new Date().toISOString(),
    page_size: systemPageSize(),
    module: moduleStatus(opts.devicePath),
    ksm: { available, settings: ksm.knobs, counters: ksm.counters },
    journal,
    warnings,
    processes,
    totals: {
      processes: processes.length,
      merging_pages: processes.reduce((a, p) => a + p.merging_pages, 0),
      process_profit: profits.length
        ? profits.reduce((a, p) => a + (p as number), 0)
        : null,
    },
  };
}
