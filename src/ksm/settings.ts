/**
 * The ksmd settings a burst changes, and putting them back exactly.
 *
 * One list, used by the burst (src/ksm/burst.ts) and by the recovery of a
 * crashed burst's journal (src/ksm/journal.ts), so that both restore the
 * same settings in the same order.
 *
 * @module
 */
import { KSM_DIR, readKsmFile, writeKsmFile } from "./sysfs.ts";

/**
 * The settings a burst may change, in the order they are restored:
 * - pages_to_scan first: the kernel refuses it (EINVAL) while the advisor
 *   runs, so it goes back while advisor_mode is still "none";
 * - smart_scan (6.7+), which the burst turns off so that every full scan
 *   visits every page;
 * - advisor_mode (6.8+) after them: switching it back on resets
 *   pages_to_scan to the advisor's own minimum, which the advisor then
 *   tunes itself;
 * - run last, so that a restored run=0 stops ksmd only once the scan rate
 *   is back.
 */
const BURST_KNOBS: readonly string[] = [
  "pages_to_scan",
  "sleep_millisecs",
  "smart_scan",
  "advisor_mode",
  "run",
];

/** A setting that did not come back: what was wanted and what is there. */
export type RestoreMismatch = Record<string, { wanted: string; got: string }>;

/** The burst settings among `knobs` (those this kernel has). */
export function burstSettings(
  knobs: Record<string, string>,
): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of BURST_KNOBS) if (k in knobs) out[k] = knobs[k];
  return out;
}

/**
 * Restores the burst settings to `before` in the order of
 * {@link BURST_KNOBS}, twice if needed (a first pass may meet the advisor
 * still on, which refuses pages_to_scan). Returns the settings that still
 * differ. pages_to_scan is not compared while the advisor is on: the
 * advisor owns it.
 */
export function restoreSettings(
  before: Record<string, string>,
  dir = KSM_DIR,
): RestoreMismatch {
  const advisorOwnsRate = before.advisor_mode !== undefined &&
    before.advisor_mode !== "none";
  const compared = (k: string) =>
    k in before && !(k === "pages_to_scan" && advisorOwnsRate);
  let mismatch: RestoreMismatch = {};
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
    mismatch = {};
    for (const k of BURST_KNOBS) {
      if (!compared(k)) continue;
      const got = readKsmFile(k, dir);
      if (got !== before[k]) mismatch[k] = { wanted: before[k], got };
    }
    if (Object.keys(mismatch).length === 0) break;
  }
  return mismatch;
}
