/**
 * The ksmd burst: run ksmd fast for as long as merging makes progress, then
 * put every setting back exactly as it was.
 *
 * ksmd merges asynchronously, at pages_to_scan pages every sleep_millisecs
 * (defaults 100 / 20 ms, about 20 MB/s). A burst
 * - takes the KSM lock (src/ksm/lock.ts), so that no other mergemem changes
 *   the settings meanwhile, restoring a crashed burst's settings first;
 * - records the settings in the journal (src/ksm/journal.ts), so that a
 *   burst killed with SIGKILL is repaired by the next mergemem command;
 * - sets a high scan rate with run=1, turns the advisor and smart scan
 *   off, and waits until the caller's progress() reaches the prediction,
 *   stops rising, or a timeout passes;
 * - restores the settings in a finally block (also on errors and on
 *   SIGINT/SIGTERM) and removes the journal. Restoring run=0 stops ksmd
 *   but keeps every merge that was made: the saving then costs no CPU.
 *
 * When to stop. progress() is the truth: the caller measures what its
 * selection freed (distinct frames), which also sees frames freed onto
 * the zero page (use_zero_pages, THP splits) that pages_sharing misses;
 * the burst reads no global counter for the decision. KSM merges a page
 * whose content is stable within two full scans (the first confirms the
 * checksum, the second merges it through the unstable tree), so a burst
 * has stalled once {@link STALL_SCANS} full scans completed after the
 * last rise of progress() with no further rise. Smart scan (6.7+) skips
 * pages that failed to merge for up to 8 later scans, which would make a
 * scan-counting rule stop early; the burst turns it off (it is restored
 * like the others), and where that fails it waits
 * {@link STALL_SCANS_SMART} scans instead. While progress() still rises,
 * only the target or the timeout end the burst. The rule is one pure
 * function, {@link burstStep}; the loop around it samples and sleeps.
 *
 * progress() may be expensive (a pagemap read of every chosen VMA), so it
 * is called no more often than every {@link PROGRESS_COST_FACTOR} times
 * its own last measured cost (and at most every pollMs), or, once a cheap
 * hint (BurstOptions.hint) says the target may be reached, as soon as
 * one cost has passed since the last call.
 *
 * @module
 */
import { sleep } from "./sleep.ts";
import { ErrorKind, ErrorReason, MergememError, messageOf } from "../errors.ts";
import { removeJournal, RUN_DIR, writeJournal } from "./journal.ts";
import { type KsmLockOptions, withKsmLock } from "./lock.ts";
import { type RestoreMismatch, restoreSettings } from "./settings.ts";
import { KSM_DIR, readKsm, readKsmNumber, writeKsmFile } from "./sysfs.ts";

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

/** Throws ErrorKind.Interrupted when the signal was aborted. */
export function throwIfInterrupted(signal?: AbortSignal): void {
  if (signal?.aborted) {
    throw new MergememError(
      `interrupted by ${
        String(signal.reason ?? "signal")
      }; KSM settings restored`,
      ErrorKind.Interrupted,
    );
  }
}

/**
 * How long a burst waits for ksmd by default, in seconds: merge's
 * `timeoutSeconds` and the CLI's --timeout (the one place it is written).
 */
export const DEFAULT_BURST_TIMEOUT_SECONDS = 60;

/** Options of {@link runBurst}; the lock options are {@link KsmLockOptions}. */
export interface BurstOptions extends KsmLockOptions {
  /** The KSM sysfs directory. */
  dir?: string;
  /** pages_to_scan during the burst (default 10000). */
  pagesToScan?: number;
  /** sleep_millisecs during the burst (default 0). */
  sleepMillisecs?: number;
  /**
   * The measure of merging progress: pages the caller's selection freed
   * so far. The only input of the stop decision besides full_scans.
   */
  progress: () => number;
  /** Stop once progress() reaches this (the prediction). */
  target?: number;
  /**
   * Optional, cheap: a figure that rises with progress(), such as KSM's
   * global pages_sharing delta (which other KSM users move too). Read
   * every pollMs; once it reaches `target`, progress() is sampled without
   * waiting out its cost factor, so that a burst notices its target soon
   * after ksmd reaches it. Never part of the stop decision.
   */
  hint?: () => number;
  /**
   * Optional: false once nothing the burst works for is left (every
   * marked process has exited; then ksmd may have nothing to scan and
   * full_scans stops, so the stall rule could never fire). Asked after
   * each progress() sample; false ends the burst as "gone".
   */
  anyLeft?: () => boolean;
  /**
   * Give up after this many milliseconds (default
   * {@link DEFAULT_BURST_TIMEOUT_SECONDS} s).
   */
  timeoutMs?: number;
  /** The shortest interval between two progress() calls (default 20 ms). */
  pollMs?: number;
  /** Leave smart scan as it is during the burst (default: turn it off). */
  keepSmartScan?: boolean;
  /**
   * Leave ksmd running at its own settings instead of bursting: only make
   * sure run=1 (the --no-wait mode). Nothing is restored.
   */
  noWait?: boolean;
  /**
   * Abort (with restore) when this fires, e.g. from {@link guardSignals};
   * also stops waiting for the lock.
   */
  signal?: AbortSignal;
  /** Called on every progress() sample with its value. */
  onProgress?: (progress: number, elapsedMs: number) => void;
}

/** Why a burst ended. */
export type BurstEnd = "target" | "stalled" | "gone" | "timeout" | "no-wait";

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
  /** How many times progress() was called. */
  progressSamples: number;
  /** Wall-clock seconds from run=1 to the end. */
  seconds: number;
  /** Full scans ksmd completed during the burst. */
  fullScans: number;
  /** Smart scan was turned off for the burst (and restored). */
  smartScanOff: boolean;
  /** Settings that could not be restored exactly (name: wanted/got). */
  restoreMismatch: RestoreMismatch;
  /** Lines for the user: a crashed burst's settings restored first. */
  warnings: string[];
}

/**
 * Full scans after the last rise of progress(), with no further rise,
 * after which a burst counts as stalled when every scan visits every page
 * (smart scan off or absent): a page that can merge merges within two,
 * plus one for the scan that was under way at the last rise.
 */
export const STALL_SCANS = 3;

/**
 * The same while smart scan stays on: a page that failed to merge is
 * skipped for up to 8 scans at a time, and needs two visits.
 */
const STALL_SCANS_SMART = 20;

/** progress() runs at most once per this many times its own cost. */
export const PROGRESS_COST_FACTOR = 5;

/** The fixed inputs of the stop rule ({@link burstStep}) for one burst. */
export interface StopRule {
  /** Stop once progress() reaches this (none: only stall, gone, timeout). */
  target?: number;
  /** Full scans without a rise after which the burst has stalled. */
  stallScans: number;
  /** When the burst times out (performance.now() ms). */
  deadline: number;
}

/** What the stop rule remembers between samples. */
export interface StopState {
  /** The highest progress() seen (-Infinity before the first sample). */
  best: number;
  /** full_scans when progress() last rose (at the start: before the burst). */
  bestScans: number;
}

/** One progress() sample. */
export interface StopSample {
  /** progress()'s value. */
  progress: number;
  /** full_scans read just before progress(). */
  scans: number;
  /** BurstOptions.anyLeft()'s answer (true without one). */
  anyLeft: boolean;
}

/**
 * One decision of the stop rule: `end` when the burst ends now, else
 * whether the sample rose above the best so far (the caller then records
 * it, with the full_scans it reads after the sample, in its
 * {@link StopState}).
 */
export type BurstStep =
  | { end: Exclude<BurstEnd, "no-wait">; rise?: undefined }
  | { end?: undefined; rise: boolean };

/**
 * The burst's stop rule, a pure function of its inputs: at `now`
 * (performance.now() ms, after the sample if one was taken), with or
 * without a new progress() sample. In this order: the sample reached the
 * target ("target"); nothing is left to work for ("gone"); the sample
 * rose (go on); {@link StopRule.stallScans} full scans passed since the
 * last rise without one ("stalled"); the deadline passed ("timeout").
 */
export function burstStep(
  rule: StopRule,
  state: StopState,
  now: number,
  sample?: StopSample,
): BurstStep {
  let rise = false;
  if (sample) {
    if (rule.target !== undefined && sample.progress >= rule.target) {
      return { end: "target" };
    }
    if (!sample.anyLeft) return { end: "gone" };
    if (sample.progress > state.best) rise = true;
    else if (sample.scans - state.bestScans >= rule.stallScans) {
      return { end: "stalled" };
    }
  }
  if (now >= rule.deadline) return { end: "timeout" };
  return { rise };
}

/** Tries to set smart_scan=0; false when the kernel has none or refused. */
function smartScanOff(before: Record<string, string>, dir: string): boolean {
  if (before.smart_scan === undefined) return false;
  if (before.smart_scan === "0") return true;
  try {
    writeKsmFile("smart_scan", "0", dir);
    return true;
  } catch {
    return false;
  }
}

/**
 * Runs ksmd in a burst until progress() reaches target, stops rising, or
 * the timeout passes (see the module documentation); then restores every
 * changed setting exactly, also when interrupted (throws
 * ErrorKind.Interrupted after restoring) or on any error. Holds the KSM
 * lock throughout (reentrant: merge() may hold it already).
 *
 * @throws MergememError LockBusy (another run held the lock past
 *   lockTimeoutSeconds), Refused (run=2), Failed (settings or journal not
 *   writable), Interrupted.
 */
export function runBurst(opts: BurstOptions): Promise<BurstResult> {
  return withKsmLock(
    { ...opts, lockHolder: opts.lockHolder ?? "runBurst()" },
    (held) => burstLocked(opts, held.holder, held.warnings),
  );
}

async function burstLocked(
  opts: BurstOptions,
  holder: string,
  warnings: string[],
): Promise<BurstResult> {
  const dir = opts.dir ?? KSM_DIR;
  const runDir = opts.runDir ?? RUN_DIR;
  const before = readKsm(dir).knobs;
  if (before.run === "2") {
    throw new MergememError(
      "KSM is unmerging everything (run=2); refusing to start ksmd",
      ErrorKind.Refused,
      { reason: ErrorReason.KsmUnmerging },
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
      progressSamples: 1,
      seconds: 0,
      fullScans: 0,
      smartScanOff: false,
      restoreMismatch: {},
      warnings,
    };
  }

  try {
    writeJournal(before, {
      runDir,
      ksmDir: dir,
      command: holder,
    });
  } catch (err) {
    throw new MergememError(
      `cannot write the KSM journal in ${runDir}: ${messageOf(err)}`,
      ErrorKind.Failed,
      { reason: ErrorReason.JournalUnwritable },
    );
  }

  const timeoutMs = opts.timeoutMs ?? DEFAULT_BURST_TIMEOUT_SECONDS * 1000;
  const pollMs = opts.pollMs ?? 20;
  let ended: BurstEnd = "timeout";
  let progress = Number.NEGATIVE_INFINITY;
  let samples = 0;
  let smartOff = false;
  let restoreMismatch: RestoreMismatch = {};
  try {
    // The advisor (6.8+) manages pages_to_scan itself and refuses writes
    // to it; turn it off so the burst rate holds.
    if (before.advisor_mode !== undefined && before.advisor_mode !== "none") {
      writeKsmFile("advisor_mode", "none", dir);
    }
    smartOff = opts.keepSmartScan ? before.smart_scan === "0" : smartScanOff(
      before,
      dir,
    );
    const stallScans = before.smart_scan === undefined || smartOff
      ? STALL_SCANS
      : STALL_SCANS_SMART;
    writeKsmFile("pages_to_scan", String(opts.pagesToScan ?? 10000), dir);
    writeKsmFile("sleep_millisecs", String(opts.sleepMillisecs ?? 0), dir);
    writeKsmFile("run", "1", dir);

    const start = performance.now();
    const rule: StopRule = {
      target: opts.target,
      stallScans,
      deadline: start + timeoutMs,
    };
    let state: StopState = {
      best: Number.NEGATIVE_INFINITY,
      bestScans: scans0,
    };
    let nextSample = start;
    // The hint's value at the last sample, and when that sample may repeat.
    let hintAtSample = Number.NEGATIVE_INFINITY;
    let earliestRepeat = start;
    while (true) {
      throwIfInterrupted(opts.signal);
      const now = performance.now();
      const hint = opts.hint && opts.target !== undefined
        ? opts.hint()
        : Number.NEGATIVE_INFINITY;
      const early = hint >= opts.target! && hint > hintAtSample &&
        now >= earliestRepeat;
      let sample: StopSample | undefined;
      if (now >= nextSample || early) {
        hintAtSample = hint;
        // Scans completed before the sample: the sample shows their merges.
        const scans = readKsmNumber("full_scans", dir) ?? 0;
        progress = opts.progress();
        samples++;
        const after = performance.now();
        opts.onProgress?.(progress, after - t0);
        // Asked only when the target is not reached (as documented).
        const reached = opts.target !== undefined && progress >= opts.target;
        const left = reached || !opts.anyLeft || opts.anyLeft();
        sample = { progress, scans, anyLeft: left };
        nextSample = after +
          Math.max(pollMs, PROGRESS_COST_FACTOR * (after - now));
        earliestRepeat = after + (after - now);
      }
      const step = burstStep(rule, state, performance.now(), sample);
      if (step.end !== undefined) {
        ended = step.end;
        break;
      }
      if (step.rise) {
        // The rise may have come from any scan up to now.
        state = {
          best: sample!.progress,
          bestScans: readKsmNumber("full_scans", dir) ?? sample!.scans,
        };
      }
      // With a hint, wake every pollMs to read it.
      const wake = opts.hint ? Math.min(nextSample, now + pollMs) : nextSample;
      await sleep(
        Math.max(0, Math.min(wake, rule.deadline) - performance.now()),
        opts.signal,
      );
    }
  } finally {
    restoreMismatch = restoreSettings(before, dir);
    removeJournal(runDir);
  }
  // A signal that arrived during the restore still means "interrupted".
  throwIfInterrupted(opts.signal);
  return {
    settingsBefore: before,
    settingsAfter: readKsm(dir).knobs,
    ended,
    progress,
    progressSamples: samples,
    seconds: (performance.now() - t0) / 1000,
    fullScans: (readKsmNumber("full_scans", dir) ?? scans0) - scans0,
    smartScanOff: smartOff,
    restoreMismatch,
    warnings,
  };
}
