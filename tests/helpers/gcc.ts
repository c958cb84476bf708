/**
 * Whether gcc is available: tests that compile C programs need it (CI
 * installs build-essential).
 *
 * @module
 */

/** True when `gcc --version` runs. */
export function haveGcc(): boolean {
  try {
    return new Deno.Command("gcc", {
      args: ["--version"],
      stdout: "null",
      stderr: "null",
    }).outputSync().success;
  } catch {
    return false;
  }
}
