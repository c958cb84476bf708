/**
 * The host's KSM settings and counters in sysfs (/sys/kernel/mm/ksm), for
 * the tests that drive the real KSM.
 *
 * @module
 */

const KSM = "/sys/kernel/mm/ksm";

/** Reads a KSM sysfs file as a trimmed string. */
export function ksmFile(name: string): string {
  return Deno.readTextFileSync(`${KSM}/${name}`).trim();
}

/** Writes a KSM sysfs file. */
export function setKsm(name: string, value: string): void {
  Deno.writeTextFileSync(`${KSM}/${name}`, value);
}

/** True when the host's KSM is usable by this test (root + sysfs). */
export function ksmUsable(): boolean {
  try {
    Deno.statSync(`${KSM}/run`);
    return Deno.uid() === 0;
  } catch {
    return false;
  }
}
