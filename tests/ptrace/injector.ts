/**
 * An injecting process for the signal tests and the SIGKILL measurement:
 * marks the given VMAs of PID mergeable and unmergeable in turn, forever,
 * writing "started" once the first round is done. Like the CLI, it
 * catches SIGINT/SIGTERM for its whole life (guardSignals); a signal
 * during a hold is taken once the target is detached. It then exits 130.
 *
 *   deno run -A tests/ptrace/injector.ts [--tracer] PID START-END [START-END...]
 *
 * By default it injects itself (createPtraceMarker: the engine in the
 * process that gets killed, the worst case). With --tracer it marks
 * through a tracer process of its own, as mergemem does
 * (createTracerMarker), and writes "started TRACER_PID".
 *
 * @module
 */
import { createPtraceMarker } from "../../src/ptrace/marker.ts";
import { createTracerMarker } from "../../src/ptrace/tracer_client.ts";
import { guardSignals } from "../../src/ksm/burst.ts";
import { ErrorKind, MergememError } from "../../src/errors.ts";

const tracer = Deno.args[0] === "--tracer";
const args = tracer ? Deno.args.slice(1) : Deno.args;
const pid = Number(args[0]);
const vmas = args.slice(1).map((a) => {
  const [s, e] = a.split("-");
  return { start: BigInt(s), end: BigInt(e) };
});
const guard = guardSignals();
const t = tracer ? createTracerMarker() : undefined;
const m = t ?? createPtraceMarker();
let why = "";
try {
  for (let i = 0; !guard.signal.aborted; i++) {
    await m.markProcess(pid, vmas, i % 2 ? "unmerge" : "merge", guard.signal);
    if (i === 0) console.log(t ? `started ${t.tracerPid}` : "started");
  }
  why = `interrupted by ${guard.signal.reason}`;
} catch (err) {
  if (
    !(err instanceof MergememError && err.kind === ErrorKind.Interrupted)
  ) {
    throw err;
  }
  why = err.message;
} finally {
  m.close();
  guard.dispose();
}
console.error(`injector: ${why}; target detached`);
Deno.exit(130);
