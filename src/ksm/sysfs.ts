/**
 * Reading and writing KSM's sysfs interface, /sys/kernel/mm/ksm.
 *
 * The set of files differs between kernels (6.12 adds general_profit,
 * ksm_zero_pages, pages_scanned, pages_skipped, smart_scan and advisor_*),
 * so everything here reads whatever exists instead of assuming a list.
 * Every function takes the directory as a parameter so tests can use
 * fixtures.
 *
 * @module
 */
import { ErrorKind, ErrorReason, MergememError, messageOf } from "../errors.ts";

/** Where KSM lives in sysfs. */
export const KSM_DIR = "/sys/kernel/mm/ksm";

/**
 * The files that are settings (writable) rather than counters. Anything
 * not listed and unknown to us is classified by its file mode.
 */
const KNOWN_KNOBS: readonly string[] = [
  "run",
  "pages_to_scan",
  "sleep_millisecs",
  "max_page_sharing",
  "merge_across_nodes",
  "use_zero_pages",
  "stable_node_chains_prune_millisecs",
  "smart_scan",
  "advisor_mode",
  "advisor_max_cpu",
  "advisor_min_pages_to_scan",
  "advisor_max_pages_to_scan",
  "advisor_target_scan_time",
];

/** A snapshot of KSM's sysfs: settings and counters that exist. */
export interface KsmState {
  /** Writable settings, as the strings the kernel prints (choice files
   * like advisor_mode reduced to the selected word). */
  knobs: Record<string, string>;
  /** Read-only counters as numbers. */
  counters: Record<string, number>;
}

/**
 * Parses one sysfs value. Choice files print "[none] scan-time"; the
 * selected word is what one writes back.
 */
export function parseSysfsValue(text: string): string {
  const t = text.trim();
  const m = /\[([^\]]+)\]/.exec(t);
  return m ? m[1] : t;
}

/** True when the kernel has KSM (the sysfs directory exists). */
export function ksmAvailable(dir = KSM_DIR): boolean {
  try {
    return Deno.statSync(`${dir}/run`).isFile;
  } catch {
    return false;
  }
}

/** Throws ErrorKind.NoKsm unless KSM is available. */
export function requireKsm(dir = KSM_DIR): void {
  if (!ksmAvailable(dir)) {
    throw new MergememError(
      `KSM is not available: ${dir} does not exist`,
      ErrorKind.NoKsm,
    );
  }
}

/** Reads every KSM file that exists. */
export function readKsm(dir = KSM_DIR): KsmState {
  requireKsm(dir);
  const knobs: Record<string, string> = {};
  const counters: Record<string, number> = {};
  const names = [...Deno.readDirSync(dir)]
    .filter((e) => e.isFile || e.isSymlink)
    .map((e) => e.name)
    .sort();
  for (const name of names) {
    let raw: string;
    try {
      raw = Deno.readTextFileSync(`${dir}/${name}`);
    } catch {
      continue; // unreadable (some files are root-only on some kernels)
    }
    const value = parseSysfsValue(raw);
    if (isKnob(dir, name)) knobs[name] = value;
    else {
      const n = Number(value);
      if (Number.isFinite(n)) counters[name] = n;
    }
  }
  return { knobs, counters };
}

function isKnob(dir: string, name: string): boolean {
  if (KNOWN_KNOBS.includes(name)) return true;
  try {
    const mode = Deno.statSync(`${dir}/${name}`).mode ?? 0;
    return (mode & 0o200) !== 0;
  } catch {
    return false;
  }
}

/** Reads one KSM file as a string ("" when it does not exist). */
export function readKsmFile(name: string, dir = KSM_DIR): string {
  try {
    return parseSysfsValue(Deno.readTextFileSync(`${dir}/${name}`));
  } catch {
    return "";
  }
}

/** Reads one KSM counter as a number (undefined when absent). */
export function readKsmNumber(name: string, dir = KSM_DIR): number | undefined {
  const v = readKsmFile(name, dir);
  if (v === "") return undefined;
  const n = Number(v);
  return Number.isFinite(n) ? n : undefined;
}

/**
 * Writes one KSM setting. Errors name the file and the value: writing
 * needs root, and some values are refused (EBUSY for max_page_sharing
 * while pages are merged).
 */
export function writeKsmFile(name: string, value: string, dir = KSM_DIR): void {
  try {
    Deno.writeTextFileSync(`${dir}/${name}`, value);
  } catch (err) {
    if (err instanceof Deno.errors.PermissionDenied) {
      throw new MergememError(
        `cannot set ${dir}/${name}: permission denied`,
        ErrorKind.Failed,
        { reason: ErrorReason.NeedsRoot },
      );
    }
    throw new MergememError(
      `cannot set ${dir}/${name} to ${value}: ${messageOf(err)}`,
      ErrorKind.Failed,
    );
  }
}
