/**
 * A child program for ksm_burst_test.ts: runs a burst with a target that
 * can never be reached, printing "bursting" once ksmd runs, so the test
 * can send SIGINT in the middle and check that settings are restored.
 *
 * @module
 */
import { guardSignals, runBurst } from "../../src/ksm/burst.ts";
import { MergememError } from "../../src/errors.ts";

const guard = guardSignals();
let said = false;
try {
  await runBurst({
    progress: () => 0,
    target: 1e12,
    timeoutMs: 30000,
    signal: guard.signal,
    onProgress: () => {
      if (!said) console.log("bursting");
      said = true;
    },
  });
  console.log("finished");
} catch (err) {
  if (err instanceof MergememError) {
    console.log(`error ${err.exitCode} ${err.message}`);
    Deno.exit(err.exitCode);
  }
  throw err;
} finally {
  guard.dispose();
}
