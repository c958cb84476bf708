/**
 * Wall time per phase of a scan (ScanOptions.profile), for the bench.
 *
 * @module
 */

/** Wall time (ms) per phase of a scan, by phase name. */
export type ScanProfile = Record<string, number>;

/** Adds the time since `t` to `prof[name]`; returns now. */
export function lap(prof: ScanProfile, name: string, t: number): number {
  const now = performance.now();
  prof[name] = (prof[name] ?? 0) + now - t;
  return now;
}
