/**
 * Getting a thread out of our hands after an error (restored and
 * detached, or reaped), and the threads seized whose stop never came.
 *
 * @module
 */
import { errnoCode } from "../errors.ts";
import {
  __WALL,
  decodeStatus,
  getRegs,
  getSiginfo,
  getSyscallInfo,
  ptrace,
  PTRACE_CONT,
  PTRACE_DETACH,
  PTRACE_EVENT_STOP,
  PTRACE_INTERRUPT,
  PTRACE_SYSCALL,
  REG,
  setRegs,
  siginfoFields,
  tgkill,
  waitpid,
  type WaitStatus,
  WNOHANG,
} from "./sys.ts";
import { asGone, TargetGone } from "./gone.ts";
import { MINUS_ONE } from "./registers.ts";
import { pause } from "./wait.ts";

/** Threads seized whose stop never came: detached when it does. */
const unsettled = new Set<number>();

/** Remembers a thread seized whose stop has not come yet. */
export function addUnsettled(tid: number): void {
  unsettled.add(tid);
}

/**
 * Detaches threads that were seized but did not stop in time, once they
 * have stopped (their registers were never changed). Called before each
 * new hold and by the marker's close().
 */
export function settleStragglers(): void {
  for (const tid of unsettled) {
    try {
      const w = waitpid(tid, __WALL | WNOHANG);
      if (w === null) continue;
      const s = decodeStatus(w.status);
      if (s.kind === "stopped") ptrace(PTRACE_DETACH, tid, 0n, 0n);
      unsettled.delete(tid);
    } catch {
      unsettled.delete(tid);
    }
  }
}

/**
 * Gets a thread out of our hands after an error: if it died, reaps it;
 * if it is in a ptrace stop, walks it to a stop where the saved registers
 * (when given) can be put back safely, restores them and detaches it; if
 * it is running, interrupts it first. Returns the error to report.
 */
export function leave(
  pid: number,
  tid: number,
  err: unknown,
  saved: BigUint64Array | undefined,
  signals: readonly Uint8Array[],
  stopTimeoutMs: number,
): unknown {
  const deadline = performance.now() + Math.max(stopTimeoutMs, 1000);
  const since = performance.now();
  let interrupted = false;
  for (;;) {
    let op: string | undefined;
    try {
      op = getSyscallInfo(tid).op; // succeeds only in a ptrace stop
    } catch {
      op = undefined;
    }
    try {
      if (op === "entry") {
        // About to run a call: skip it (nr -1 runs nothing and returns
        // -ENOSYS) and go on to its exit stop, where the registers can be
        // restored. Letting it run could block (a restarted read).
        const regs = getRegs(tid);
        regs[REG.orig_rax] = MINUS_ONE;
        setRegs(tid, regs);
        ptrace(PTRACE_SYSCALL, tid, 0n, 0n);
      } else if (op === "exit") {
        // Restore, then stop again in get_signal() (see the session's
        // close()).
        if (saved) setRegs(tid, saved);
        ptrace(PTRACE_INTERRUPT, tid);
        ptrace(PTRACE_CONT, tid, 0n, 0n);
      } else if (op !== undefined) {
        if (saved) setRegs(tid, saved);
        let sig = 0;
        try {
          const f = siginfoFields(getSiginfo(tid));
          if (f.code >> 8 !== PTRACE_EVENT_STOP) sig = f.signo;
        } catch { /* a group stop has no siginfo */ }
        ptrace(PTRACE_DETACH, tid, 0n, BigInt(sig));
        // Best effort on this abnormal path: queue again what the hold
        // suppressed (with a new siginfo).
        for (const info of signals) {
          try {
            tgkill(pid, tid, siginfoFields(info).signo);
          } catch { /* gone */ }
        }
        return asGone(tid, err);
      }
    } catch {
      // It left the stop meanwhile (killed): fall through to waitpid.
    }
    let s: WaitStatus | null;
    try {
      const w = waitpid(tid, __WALL | WNOHANG);
      s = w ? decodeStatus(w.status) : null;
    } catch (e) {
      // ECHILD: not our tracee any more (reaped, or never seized).
      return errnoCode(e) === "ECHILD" ? asGone(tid, err) : err;
    }
    if (s && s.kind !== "stopped") return new TargetGone(tid, "exited");
    if (s) continue; // a new stop: handle it above
    if (op === undefined && !interrupted) {
      try {
        ptrace(PTRACE_INTERRUPT, tid);
      } catch { /* dying */ }
      interrupted = true;
    }
    if (performance.now() > deadline) {
      unsettled.add(tid);
      return err;
    }
    pause(since);
  }
}
