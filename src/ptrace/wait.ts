/**
 * Waiting for a tracee's stops: waitpid polled with WNOHANG against a
 * deadline (waitpid itself has no timeout), on the tracer's own thread.
 *
 * @module
 */
import {
  __WALL,
  decodeStatus,
  getSiginfo,
  PR_GET_TIMERSLACK,
  PR_SET_TIMERSLACK,
  prctlSelf,
  ptrace,
  PTRACE_CONT,
  PTRACE_EVENT_STOP,
  SIGTRAP,
  usleep,
  waitpid,
  type WaitStatus,
  WNOHANG,
} from "./sys.ts";
import { TargetGone } from "./gone.ts";

/** A ptrace stop, as waitpid reported it. */
export type Stop = WaitStatus & { kind: "stopped" };

/**
 * Signal-delivery stops one wait may pass through: each dequeues one
 * signal, and signals arriving faster than that would hold the thread
 * forever.
 */
export const MAX_SIGNAL_STOPS = 1000;

/** The status of a syscall stop under PTRACE_O_TRACESYSGOOD. */
export const SYSCALL_STOP = SIGTRAP | 0x80;

/**
 * Sleeps between two polls of waitpid: 10 us for the first 2 ms (a stop
 * the engine asked for takes tens of microseconds), then longer. Never a
 * busy spin: on a small machine the tracee needs the CPU to reach its
 * stop.
 */
export function pause(since: number, now = performance.now()): void {
  const waited = now - since;
  usleep(waited < 2 ? 10 : waited < 50 ? 200 : 1000);
}

/**
 * Waits for the next stop of tid until `deadline` (performance.now()
 * ms); null on timeout. Exit or death of the thread throws TargetGone.
 */
export function waitStop(tid: number, deadline: number): Stop | null {
  const slack = prctlSelf(PR_GET_TIMERSLACK);
  if (slack > 1000) prctlSelf(PR_SET_TIMERSLACK, 1000n);
  try {
    return pollStop(tid, deadline);
  } finally {
    if (slack > 1000) prctlSelf(PR_SET_TIMERSLACK, BigInt(slack));
  }
}

function pollStop(tid: number, deadline: number): Stop | null {
  const since = performance.now();
  for (;;) {
    const w = waitpid(tid, __WALL | WNOHANG);
    if (w !== null) {
      const s = decodeStatus(w.status);
      if (s.kind === "exited") throw new TargetGone(tid, `exited (${s.code})`);
      if (s.kind === "killed") {
        throw new TargetGone(tid, `killed by signal ${s.signal}`);
      }
      return s;
    }
    const now = performance.now();
    if (now > deadline) return null;
    pause(since, now);
  }
}

/**
 * Waits for a PTRACE_EVENT_STOP (the interrupt trap, or a group stop)
 * within timeoutMs, recording (in `signals`) and suppressing
 * signal-delivery stops. Returns false on timeout.
 */
export function waitTrap(
  tid: number,
  timeoutMs: number,
  signals: Uint8Array[],
): boolean {
  let deadline = performance.now() + timeoutMs;
  let signalStops = 0;
  for (;;) {
    const s = waitStop(tid, deadline);
    if (s === null) return false;
    if (s.event === PTRACE_EVENT_STOP) return true;
    if (s.event === 0 && s.signal !== SYSCALL_STOP) {
      // A flood of signals: give up as on a timeout (see MAX_SIGNAL_STOPS).
      if (++signalStops > MAX_SIGNAL_STOPS) return false;
      signals.push(getSiginfo(tid));
      deadline = performance.now() + timeoutMs;
    }
    ptrace(PTRACE_CONT, tid, 0n, 0n);
  }
}
