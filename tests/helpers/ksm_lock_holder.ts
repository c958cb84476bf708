/**
 * Holds the KSM lock of the run directory given as first argument, prints
 * "held" once it does, and keeps it until its stdin closes (or it is
 * killed). For tests/unit/ksm_lock_test.ts.
 *
 * @module
 */
import { withKsmLock } from "../../src/ksm/lock.ts";

const runDir = Deno.args[0];
await withKsmLock({ runDir, lockHolder: "lock holder test" }, async () => {
  console.log("held");
  const buf = new Uint8Array(16);
  while ((await Deno.stdin.read(buf)) !== null) {
    // wait for EOF
  }
});
