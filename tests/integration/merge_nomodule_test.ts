/**
 * On a machine without the module (this host: a custom kernel without
 * headers), merge with `engine: "module"` fails with ErrorKind.NoModule and
 * says how to install it (the default engine falls back to ptrace), and
 * status still works.
 */
import { ExitCode } from "../../src/cli/exit_codes.ts";
import { hintOf } from "../../src/cli/hints.ts";
import {
  deepStrictEqual as assertEquals,
  ok as assert,
  rejects,
} from "node:assert/strict";
import { merge } from "../../src/merge/merge.ts";
import { ErrorKind } from "../../src/errors.ts";
import { assertCleanError, isMergememError } from "../helpers/assert.ts";
import { status, STATUS_SCHEMA } from "../../src/status/status.ts";
import { skipIf } from "../helpers/skip.ts";

const hasModule = (() => {
  try {
    Deno.statSync("/dev/mergemem");
    return true;
  } catch {
    return false;
  }
})();
const hasKsm = (() => {
  try {
    Deno.statSync("/sys/kernel/mm/ksm/run");
    return true;
  } catch {
    return false;
  }
})();
/** Each of these tests needs a host without the module but with KSM. */
const skip = {
  "the module is loaded (/dev/mergemem exists)": hasModule,
  "no KSM (/sys/kernel/mm/ksm)": !hasKsm,
};

Deno.test({
  ...skipIf(
    "merge --engine module without the module: NoModule with a hint",
    skip,
  ),
  async fn() {
    const child = new Deno.Command("sleep", { args: ["3600"] }).spawn();
    try {
      await rejects(
        () => merge({ pids: [child.pid], engine: "module" }),
        (e: unknown) =>
          isMergememError(
            e,
            ErrorKind.NoModule,
            /^mergemem kernel module not loaded$/,
          ) &&
          (hintOf(e) ?? "").includes("sudo ./install.sh") &&
          (hintOf(e) ?? "").includes("modprobe mergemem"),
      );
    } finally {
      child.kill();
      await child.status;
    }
  },
});

Deno.test({
  ...skipIf(
    "CLI merge --engine module without the module exits 6 with the hint",
    skip,
  ),
  async fn() {
    const main = new URL("../../main.ts", import.meta.url).pathname;
    const child = new Deno.Command("sleep", { args: ["3600"] }).spawn();
    try {
      const r = await new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "-A",
          main,
          "merge",
          "--engine",
          "module",
          "--pid",
          String(child.pid),
        ],
        stderr: "piped",
        stdout: "piped",
      }).output();
      assertCleanError(
        { code: r.code, stderr: new TextDecoder().decode(r.stderr) },
        ExitCode.NoModule,
        /mergemem kernel module not loaded[\s\S]*sudo \.\/install\.sh/,
      );
    } finally {
      child.kill();
      await child.status;
    }
  },
});

Deno.test({
  ...skipIf("status without the module reports it and still reads KSM", skip),
  fn() {
    const r = status();
    assertEquals(r.schema, STATUS_SCHEMA);
    assertEquals(r.module.loaded, false);
    assertEquals(r.module.error, "mergemem kernel module not loaded");
    assert(r.ksm.available);
    assert("run" in r.ksm.settings);
    assert("pages_sharing" in r.ksm.counters);
  },
});
