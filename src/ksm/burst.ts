/**
 * The ksmd burst: run ksmd fast for as long as merging makes progress, then
 * put every setting back exactly as it was.
 *
 * ksmd merges asynchronously, at pages_to_scan pages every sleep_millisecs
 * (defaults 100 / 20 ms, about 20 MB/s). A burst records the settings, sets
 * a high scan rate with run=1, waits until the merged pages reach the
 * prediction or stop rising (or a timeout), and restores the settings in a
 * finally block, so also on errors and on SIGINT/SIGTERM. Restoring run=0
 * stops ksmd but keeps every merge that was made: the saving then costs no
 * CPU at all.
 *
 * @module
 */
import { ExitCode, MergememError } from "../errors.ts";
import {
  KSM_DIR,
  readKsm,
  readKsmFile,
  readKsmNumber,
  writeKsmFile,
} from "./sysfs.ts";

/** A guard that turns SIGINT/SIGTERM into an aborted signal. */
export interface SignalGuard {
  /** Aborted, with the signal name as reason, when a signal arrived. */
  readonly signal: AbortSignal;
  /** Removes the listeners. */
  dispose(): void;
}

/**
 * Catches SIGINT and SIGTERM while an operation that changed system state
 * runs, so it can restore that state before exiting instead of dying in
 * the middle. The operation polls {@link SignalGuard.signal}.
 */
export function guardSignals(): SignalGuard {
  const ac = new AbortController();
  const sigs: Deno.Signal[] = ["SIGINT", "SIGTERM"];
  const handlers = sigs.map((s) => {
    const h = () => {
      if (!ac.signal.aborted) ac.abort(s);
    };
    Deno.addSignalListener(s, h);
    return [s, h] as const;
  });
  return {
    signal: ac.signal,
    dispose() {
      for (const [s, h] of handlers) {
        try {
          Deno.removeSignalListener(s, h);
        } catch {
          // already removed
        }
      }
    },
  };
}

/** Throws ExitCode.Interrupted when the signal was aborted. */
export function throwIfInterrupted(signal?: AbortSignal): void {
  if (signal?.aborted) {
    throw new MergememError(
      `interrupted by ${
        String(signal.reason ?? "signal")
      }; KSM settings restored`,
      ExitCode.Interrupted,
    );
  }
}

/** Options of {@link runBurst}. */
export interface BurstOptions {
  /** The KSM sysfs directory. */
  dir?: string;
  /** pages_to_scan during the burst (default 10000). */
  pagesToScan?: number;
  /** sleep_millisecs during the burst (default 0). */
  sleepMillisecs?: number;
  /** The measure of merging progress, such as the pages_sharing delta. */
  progress: () => number;
  /** Stop once progress() reaches this (the prediction). */
  target?: number;
  /** Give up after this many milliseconds (default 60000). */
  timeoutMs?: number;
  /** How often to poll (default 20 ms). */
  pollMs?: number;
  /**
   * Leave ksmd running at its own settings instead of bursting: only make
   * sure run=1 (the --no-wait mode). Nothing is restored.
   */
  noWait?: boolean;
  /** Abort (with restore) when this fires, e.g. from {@link guardSignals}. */
  signal?: AbortSignal;
  /** Called on every poll with the current progress. */
  onProgress?: (progress: number, elapsedMs: number) => void;
}

/** Why a burst ended. */
export type BurstEnd = "target" | "stalled" | "timeout" | "no-wait";

/** The result of {@link runBurst}. */
export interface BurstResult {
  /** Every KSM setting before the burst. */
  settingsBefore: Record<string, string>;
  /** Every KSM setting after it (after restoring). */
  settingsAfter: Record<string, string>;
  /** Why it ended. */
  ended: BurstEnd;
  /** The last progress() value. */
  progress: number;
  /** Wall-clock seconds from run=1 to the end. */
  seconds: number;
  /** Full scans ksmd completed during the burst. */
  fullScans: number;
  /** Settings that could not be restored exactly (name: wanted/got). */
  restoreMismatch: Record<string, { wanted: string; got: string }>;
}

/** The settings a burst changes, in the order they are restored. */
const BURST_KNOBS = ["advisor_mode", "pages_to_scan", "sleep_millisecs", "run"];

/**
 * Full scans with no rise before a burst counts as stalled. KSM needs two
 * full scans to merge a page (the first records a checksum, the second
 * merges if it did not change), so a third without progress means done.
 */
const STALL_MIN_SCANS = 3;

function delay(ms: number, signal?: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal?.aborted) return resolve();
    const onAbort = () => {
      clearTimeout(t);
      resolve();
    };
    const t = setTimeout(() => {
      signal?.removeEventListener("abort", onAbort);
      resolve();
    }, ms);
    signal?.addEventListener("abort", onAbort, { once: true });
  });
}

/**
 * Restores the burst settings to `before`, in an order that the kernel
 * honours: advisor_mode first (changing it resets pages_to_scan), run
 * last (so a restored run=0 stops ksmd only after the scan rate is back).
 * Returns the settings that still differ after one retry.
 */
export function restoreSettings(
  before: Record<string, string>,
  dir = KSM_DIR,
): Record<string, { wanted: string; got: string }> {
  const mismatch: Record<string, { wanted: string; got: string }> = {};
  for (let attempt = 0; attempt < 2; attempt++) {
    for (const k of BURST_KNOBS) {
      if (!(k in before)) continue;
      if (readKsmFile(k, dir) === before[k]) continue;
      try {
        writeKsmFile(k, before[k], dir);
      } catch {
        // reported below as a mismatch
      }
    }
    for (const k of Object.keys(mismatch)) delete mismatch[k];
    for (const k of BURST_KNOBS) {
      if (!(k in before)) continue;
      const got = readKsmFile(k, dir);
      if (got !== before[k]) mismatch[k] = { wanted: before[k], got };
    }
    if (Object.keys(mismatch).length === 0) break;
  }
  return mismatch;
}

/**
 * Runs ksmd in a burst until progress() reaches target, stops rising, or
 * the timeout passes; then restores every changed setting exactly, also
 * when interrupted (throws ExitCode.Interrupted after restoring) or on any
 * error.
 */
export async function runBurst(opts: BurstOptions): Promise<BurstResult> {
  const dir = opts.dir ?? KSM_DIR;
  const before = readKsm(dir).knobs;
  if (before.run === "2") {
    throw new MergememError(
      "KSM is unmerging everything (run=2); refusing to start ksmd",
      ExitCode.Refused,
      "set /sys/kernel/mm/ksm/run to 0 or 1 first",
    );
  }
  const t0 = performance.now();
  const scans0 = readKsmNumber("full_scans", dir) ?? 0;

  if (opts.noWait) {
    if (before.run !== "1") writeKsmFile("run", "1", dir);
    return {
      settingsBefore: before,
      settingsAfter: readKsm(dir).knobs,
      ended: "no-wait",
      progress: opts.progress(),
      seconds: 0,
      fullScans: 0,
      restoreMismatch: {},
    };
  }

  const timeoutMs = opts.timeoutMs ?? 60000;
  const pollMs = opts.pollMs ?? 20;
  let ended: BurstEnd = "timeout";
  let progress = opts.progress();
  let scans = scans0;
  let restoreMismatch: BurstResult["restoreMismatch"] = {};
  try {
    // The advisor (6.12+) manages pages_to_scan itself; turn it off so
    // the burst rate holds. Restored first in restoreSettings().
    if (before.advisor_mode !== undefined && before.advisor_mode !== "none") {
      writeKsmFile("advisor_mode", "none", dir);
    }
    writeKsmFile("pages_to_scan", String(opts.pagesToScan ?? 10000), dir);
    writeKsmFile("sleep_millisecs", String(opts.sleepMillisecs ?? 0), dir);
    writeKsmFile("run", "1", dir);

    let lastScanCount = scans0;
    let progressAtLastScan = progress;
    let stallScans = 0;
    while (true) {
      throwIfInterrupted(opts.signal);
      progress = opts.progress();
      const elapsed = performance.now() - t0;
      opts.onProgress?.(progress, elapsed);
      if (opts.target !== undefined && progress >= opts.target) {
        ended = "target";
        break;
      }
      scans = readKsmNumber("full_scans", dir) ?? scans;
      if (scans !== lastScanCount) {
        stallScans = progress > progressAtLastScan
          ? 0
          : stallScans + (scans - lastScanCount);
        lastScanCount = scans;
        progressAtLastScan = progress;
        if (scans - scans0 >= STALL_MIN_SCANS && stallScans >= 1) {
          ended = "stalled";
          break;
        }
      }
      if (elapsed >= timeoutMs) {
        ended = "timeout";
        break;
      }
      await delay(pollMs, opts.signal);
    }
  } finally {
    restoreMismatch = restoreSettings(before, dir);
  }
  // A signal that arrived during the restore still means "interrupted".
  throwIfInterrupted(opts.signal);
  return {
    settingsBefore: before,
    settingsAfter: readKsm(dir).knobs,
    ended,
    progress: opts.progress(),
    seconds: (performance.now() - t0) / 1000,
    fullScans: (readKsmNumber("full_scans", dir) ?? scans) - scans0,
    restoreMismatch,
  };
}
