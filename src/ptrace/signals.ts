/**
 * Signals suppressed during a hold, delivered again at detach with their
 * original siginfo.
 *
 * @module
 */
import {
  getSiginfo,
  ptrace,
  PTRACE_CONT,
  PTRACE_DETACH,
  setSiginfo,
  SI_TKILL,
  siginfoFields,
  tgkill,
} from "./sys.ts";
import { SYSCALL_STOP, waitStop } from "./wait.ts";

/**
 * The signals to deliver again: every recorded one, except repeats of a
 * standard signal (those do not queue: one pending instance is all there
 * would have been).
 */
export function signalsToDeliver(signals: readonly Uint8Array[]): Uint8Array[] {
  const pending: Uint8Array[] = [];
  for (const info of signals) {
    const { signo } = siginfoFields(info);
    if (
      signo < 32 && pending.some((p) => siginfoFields(p).signo === signo)
    ) continue;
    pending.push(info);
  }
  return pending;
}

/**
 * Detaches tid (stopped, with its own registers in place), first
 * delivering `signals`, the siginfos suppressed during the hold: each is
 * queued again with tgkill, its siginfo restored at its signal-delivery
 * stop, and the last one delivered by PTRACE_DETACH.
 */
export function detachDelivering(
  pid: number,
  tid: number,
  signals: readonly Uint8Array[],
  stopTimeoutMs: number,
): void {
  const pending = signalsToDeliver(signals);
  if (pending.length === 0) {
    ptrace(PTRACE_DETACH, tid, 0n, 0n);
    return;
  }
  for (const info of pending) {
    tgkill(pid, tid, siginfoFields(info).signo);
  }
  ptrace(PTRACE_CONT, tid, 0n, 0n);
  const deadline = performance.now() + stopTimeoutMs;
  for (;;) {
    const s = waitStop(tid, deadline);
    if (s === null) {
      throw new Error("ptrace: deferred signals were not delivered in time");
    }
    if (s.event !== 0 || s.signal === SYSCALL_STOP) {
      ptrace(PTRACE_CONT, tid, 0n, 0n);
      continue;
    }
    const got = siginfoFields(getSiginfo(tid));
    const i = pending.findIndex((p) => {
      const f = siginfoFields(p);
      return f.signo === got.signo &&
        (got.signo < 32 || (got.code === SI_TKILL && got.pid === Deno.pid));
    });
    if (i >= 0) {
      setSiginfo(tid, pending[i]);
      pending.splice(i, 1);
    }
    if (pending.length === 0) {
      ptrace(PTRACE_DETACH, tid, 0n, BigInt(got.signo));
      return;
    }
    ptrace(PTRACE_CONT, tid, 0n, BigInt(got.signo));
  }
}
