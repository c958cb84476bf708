/**
 * Whether gcc is available: tests that compile C programs need it (CI
 * installs build-essential).
 *
 * @module
 */
import { tempDir } from "./temp.ts";

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

const compiled = new Map<string, string>();

/**
 * Compiles a C test program once per test process and returns the
 * binary's path: `<tmpdir>/<name>` for `<name>.c`, in a directory other
 * users may enter (some workers run under another uid).
 */
export function compileC(src: URL): string {
  const have = compiled.get(src.href);
  if (have) return have;
  const dir = tempDir({ prefix: "mergemem-c-" });
  Deno.chmodSync(dir, 0o755);
  const out = `${dir}/${src.pathname.split("/").pop()!.replace(/\.c$/, "")}`;
  const r = new Deno.Command("gcc", {
    args: ["-O2", "-Wall", "-pthread", "-o", out, src.pathname],
  }).outputSync();
  if (!r.success) throw new Error(new TextDecoder().decode(r.stderr));
  compiled.set(src.href, out);
  return out;
}
