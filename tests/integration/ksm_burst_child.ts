/**
 * A child program for the burst tests (ksm_burst_test.ts,
 * ksm_burst_overlap_test.ts): runs a library burst whose progress rises
 * for as long as it runs (so it never stalls) and whose target cannot be
 * reached, until SIGINT/SIGTERM, SIGKILL, or its timeout; with "stdin",
 * the target is reached once a line arrives on stdin (or stdin closes),
 * so that the test decides when the burst ends.
 *
 * Usage: ksm_burst_child.ts [TIMEOUT_MS [NAME [stdin]]]
 * Prints "bursting" once ksmd runs, "wait: NOTICE" when the KSM lock is
 * busy, and at the end "result JSON" (the BurstResult) or "error CODE
 * MESSAGE" (exiting with that code).
 *
 * @module
 */
import { exitCodeOf } from "../../src/cli/exit_codes.ts";
import { guardSignals, runBurst } from "../../src/ksm/burst.ts";
import { MergememError } from "../../src/errors.ts";

const timeoutMs = Number(Deno.args[0] ?? 30000);
const name = Deno.args[1] ?? "burst child";
const TARGET = 1e12;
let told = false;
if (Deno.args[2] === "stdin") {
  const tell = () => told = true;
  Deno.stdin.read(new Uint8Array(64)).then(tell, tell);
}
const guard = guardSignals();
let said = false;
const t0 = performance.now();
try {
  const r = await runBurst({
    progress: () => told ? TARGET : Math.floor(performance.now() - t0),
    target: TARGET,
    timeoutMs,
    signal: guard.signal,
    lockHolder: name,
    onLockWait: (notice) => console.log(`wait: ${notice}`),
    onProgress: () => {
      if (!said) console.log("bursting");
      said = true;
    },
  });
  console.log(`result ${JSON.stringify(r)}`);
} catch (err) {
  if (err instanceof MergememError) {
    console.log(`error ${exitCodeOf(err.kind)} ${err.message}`);
    Deno.exit(exitCodeOf(err.kind));
  }
  throw err;
} finally {
  guard.dispose();
}
