/**
 * A tracee that went away during a hold ({@link TargetGone}), and what a
 * failed PTRACE_SEIZE means for the report.
 *
 * @module
 */
import { errnoCode, SyscallError } from "../errors.ts";
import { ProcessSkipped } from "../engine/marker.ts";
import { parseStatus } from "../proc/info.ts";

/** The target's thread exited (or the whole process did) during a hold. */
export class TargetGone extends SyscallError {
  /** Builds the error for the thread that went away. */
  constructor(tid: number, how: string) {
    super("ptrace", 3, "ESRCH", `tid ${tid} ${how}`);
    this.name = "TargetGone";
  }
}

/** `err` as {@link TargetGone} when it is an ESRCH, else unchanged. */
export function asGone(tid: number, err: unknown): unknown {
  if (err instanceof TargetGone) return err;
  if (errnoCode(err) === "ESRCH") return new TargetGone(tid, "exited");
  return err;
}

/**
 * What a failed PTRACE_SEIZE of tid means: {@link TargetGone} (ESRCH),
 * {@link ProcessSkipped} (another tracer, or EPERM), else `err` itself.
 */
export function seizeError(pid: number, tid: number, err: unknown): unknown {
  const code = errnoCode(err);
  if (code === "ESRCH") return new TargetGone(tid, "exited");
  // Another tracer is the usual EPERM. It is read from the thread itself,
  // whatever errno said, so that a mis-read errno (seen once in CI as
  // EAGAIN, which PTRACE_SEIZE never returns) cannot hide it.
  let tracer = "0";
  try {
    tracer = parseStatus(
      Deno.readTextFileSync(`/proc/${pid}/task/${tid}/status`),
    ).get("TracerPid") ?? "0";
  } catch { /* gone */ }
  if (tracer !== "0") {
    return new ProcessSkipped(pid, `already traced (by pid ${tracer})`);
  }
  if (code === "EPERM") {
    return new ProcessSkipped(pid, "ptrace not permitted (EPERM)");
  }
  return err;
}
