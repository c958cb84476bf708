/**
 * An injecting process for the signal tests and the SIGKILL measurement:
 * marks the given VMAs of PID mergeable and unmergeable in turn, forever,
 * through the ptrace marker, writing "started" once the first round is
 * done. SIGINT/SIGTERM end it with exit code 130 once the target is
 * detached (the marker's own signal handling).
 *
 *   deno run -A tests/ptrace/injector.ts PID START-END [START-END...]
 *
 * @module
 */
import { createPtraceMarker } from "../../src/ptrace/marker.ts";
import { ExitCode, MergememError } from "../../src/errors.ts";

const pid = Number(Deno.args[0]);
const vmas = Deno.args.slice(1).map((a) => {
  const [s, e] = a.split("-");
  return { start: BigInt(s), end: BigInt(e) };
});
const m = createPtraceMarker();
try {
  for (let i = 0;; i++) {
    await m.markProcess(pid, vmas, i % 2 ? "unmerge" : "merge");
    if (i === 0) console.log("started");
  }
} catch (err) {
  if (err instanceof MergememError && err.exitCode === ExitCode.Interrupted) {
    console.error(`injector: ${err.message}`);
    Deno.exit(130);
  }
  throw err;
} finally {
  m.close();
}
