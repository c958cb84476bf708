/**
 * One ptrace hold of one thread of a target process, during which the
 * thread runs system calls for us: the injection engine under the ptrace
 * marker.
 *
 * How a call is injected (x86-64):
 * 1. PTRACE_SEIZE the thread (never PTRACE_ATTACH: no SIGSTOP is sent, no
 *    job-control stop is visible to the process or its parent) and
 *    PTRACE_INTERRUPT it. It stops in get_signal() on its way back to user
 *    space: if it was blocked in a system call, that call has returned
 *    -ERESTARTSYS (or -ERESTARTNOHAND, -ERESTART_RESTARTBLOCK) with
 *    orig_rax holding its number; the kernel decides how to restart it
 *    only after the stop, from the registers it then finds.
 * 2. Save the whole register block (rip, rsp, rax, orig_rax, ...).
 * 3. For each call, one of two ways:
 *    - the thread was stopped in a system call that the kernel will
 *      restart (rax -ERESTART*, orig_rax its number): resume it with
 *      PTRACE_SYSCALL; the kernel's restart logic re-executes the call's
 *      own `syscall` instruction; at that call's entry stop (checked: the
 *      expected number, at the saved rip) put our number in orig_rax and
 *      our arguments in place; the kernel runs ours instead;
 *    - otherwise: set rip to an existing `syscall` instruction (in the
 *      vDSO; the target's code is never written), rax to the call number,
 *      the arguments, and orig_rax to -1 so that the restart logic, which
 *      runs before the thread reaches that instruction, leaves these
 *      registers alone; PTRACE_SYSCALL to its entry stop (checked: our
 *      number, at our instruction).
 *    Then PTRACE_SYSCALL to the exit stop, read rax, and put the saved
 *    registers straight back. The first way keeps the registers changed
 *    for one stop instead of two (see SIGKILL below). A later call of the
 *    same hold starts with PTRACE_INTERRUPT, so that the way out of the
 *    exit stop passes through get_signal() and the restart logic again.
 * 4. Leave through the same kind of stop we entered by: PTRACE_INTERRUPT
 *    and PTRACE_CONT from the exit stop make the thread stop in
 *    get_signal() once more, with the saved registers in place; then
 *    PTRACE_DETACH. The kernel's restart logic now runs on exactly the
 *    registers of step 1, as after a plain ptrace stop: read() is
 *    restarted, nanosleep() goes through restart_syscall() with the
 *    restart_block its interruption left (madvise and prctl never touch
 *    it), epoll_wait() returns EINTR as it would after any stop.
 *
 * Signals. Any signal-delivery-stop during the hold is recorded (with its
 * siginfo) and suppressed, so nothing runs in the target meanwhile. At
 * detach each recorded signal is queued again to the thread with
 * tgkill(), and at its signal-delivery-stop its original siginfo is put
 * back (PTRACE_SETSIGINFO) and it is delivered; the last one by
 * PTRACE_DETACH itself. Handlers therefore run after the hold, on the
 * original registers, with the original sender and code.
 *
 * Why synchronous on the main thread. A tracee belongs to the thread
 * that attached it: every ptrace request and every waitpid for it must
 * come from that OS thread. Deno runs FFI calls declared `nonblocking` on
 * a pool of other threads, so none is used here. A Worker would give the
 * tracer its own thread, but a Worker's thread ends when the Worker is
 * terminated, and the kernel then detaches its tracees wherever they
 * stand. So every call runs synchronously on the calling (main) thread,
 * waitpid polls with WNOHANG (sched_yield, then short sleeps) against a
 * deadline, and a whole hold runs without yielding to the event loop:
 * a SIGINT/SIGTERM handler (see marker.ts) runs only once the thread is
 * detached. A hold is short (tens of microseconds per call).
 *
 * What cannot be guaranteed: if the process running the session is
 * killed with SIGKILL while the registers of step 3 are in place (from
 * changing them to the exit stop of that call), the kernel detaches the
 * thread and it resumes with them: it runs the call, then returns to user
 * space with its result in rax (the interrupted call seems to return it)
 * or continues in the vDSO with the wrong registers. Outside that window
 * a SIGKILL leaves the target as a plain ptrace stop would
 * (PTRACE_O_TRACESYSGOOD: a tracer dying at a syscall stop sends no
 * SIGTRAP). That is why mergemem runs its sessions in a tracer process
 * of their own (tracer.ts), which a SIGKILL of mergemem does not reach;
 * bench/README.md reports measured rates.
 *
 * The parts, by concern: waiting for stops (wait.ts), the registers of a
 * call (registers.ts), which threads may be injected (checks.ts), signal
 * re-delivery at detach (signals.ts), the error path (leave.ts) and a
 * tracee that went away (gone.ts).
 *
 * @module
 */
import { ProcessSkipped } from "../engine/marker.ts";
import {
  getRegs,
  getSiginfo,
  getSyscallInfo,
  isRestartCode,
  ptrace,
  PTRACE_CONT,
  PTRACE_INTERRUPT,
  PTRACE_O_TRACESYSGOOD,
  PTRACE_SEIZE,
  PTRACE_SYSCALL,
  REG,
  setRegs,
  usleep,
} from "./sys.ts";
import { checkTarget, findSyscallInsn } from "./target.ts";
import { seizeError, TargetGone } from "./gone.ts";
import { addUnsettled, leave, settleStragglers } from "./leave.ts";
import { checkEntry, MINUS_ONE, restartNumber, setArgs } from "./registers.ts";
import { whyNotInject } from "./checks.ts";
import { detachDelivering } from "./signals.ts";
import { MAX_SIGNAL_STOPS, SYSCALL_STOP, waitStop, waitTrap } from "./wait.ts";

export { settleStragglers, TargetGone };

/** Options of {@link PtraceSession.open}. */
export interface SessionOptions {
  /** The thread to stop (default: chosen by checkTarget). */
  tid?: number;
  /** A `syscall` instruction's address in the target (default: found in
   * its vDSO). */
  syscallInsn?: bigint;
  /** Longest wait for a stop the engine asked for, ms (default 5000: a thread may wait that long for a CPU on a loaded host). */
  stopTimeoutMs?: number;
  /** Longest time one injected call may run before it is interrupted,
   * ms (default 10000). */
  callTimeoutMs?: number;
  /** Swap the call in at the restart of an interrupted system call
   * (default true); false always goes through the `syscall` instruction. */
  inPlace?: boolean;
}

/** One held thread; see the module doc. */
export class PtraceSession {
  /** The process. */
  readonly pid: number;
  /** The held thread. */
  readonly tid: number;
  /** The `syscall` instruction used. */
  readonly syscallInsn: bigint;
  readonly #saved: BigUint64Array;
  readonly #stopTimeoutMs: number;
  readonly #callTimeoutMs: number;
  readonly #t0: number;
  /** siginfos of signals suppressed during the hold, in arrival order. */
  readonly #signals: Uint8Array[] = [];
  /** The number the kernel restarts the interrupted call with (its own,
   * or restart_syscall), when the thread was stopped in one. */
  readonly #restartNr: bigint | undefined;
  /** At a syscall-exit stop (after a call) rather than the first trap. */
  #atExitStop = false;
  #closed = false;
  #holdMs = 0;

  private constructor(
    pid: number,
    tid: number,
    insn: bigint,
    saved: BigUint64Array,
    t0: number,
    opts: SessionOptions,
  ) {
    this.pid = pid;
    this.tid = tid;
    this.syscallInsn = insn;
    this.#saved = saved;
    this.#t0 = t0;
    this.#stopTimeoutMs = opts.stopTimeoutMs ?? 5000;
    this.#callTimeoutMs = opts.callTimeoutMs ?? 10000;
    if (opts.inPlace !== false) this.#restartNr = restartNumber(saved);
  }

  /**
   * Seizes and stops one thread of pid and saves its registers.
   *
   * @throws ProcessSkipped (already traced, seccomp, not x86-64, ...);
   *   SyscallError ESRCH ({@link TargetGone}) when it exits meanwhile.
   */
  static open(pid: number, opts: SessionOptions = {}): PtraceSession {
    settleStragglers();
    let tid = opts.tid ?? checkTarget(pid).tid;
    const insn = opts.syscallInsn ?? findSyscallInsn(pid);
    const stopMs = opts.stopTimeoutMs ?? 5000;
    for (let attempt = 0;; attempt++) {
      try {
        ptrace(PTRACE_SEIZE, tid, 0n, BigInt(PTRACE_O_TRACESYSGOOD));
      } catch (err) {
        const e = seizeError(pid, tid, err);
        // The chosen thread exited, the process lives on: choose again.
        if (
          e instanceof TargetGone && opts.tid === undefined && tid !== pid &&
          attempt < 5
        ) {
          tid = checkTarget(pid).tid;
          continue;
        }
        throw e;
      }
      const t0 = performance.now();
      const signals: Uint8Array[] = [];
      let saved: BigUint64Array;
      try {
        ptrace(PTRACE_INTERRUPT, tid);
        if (!waitTrap(tid, stopMs, signals)) {
          // Seized, but not stopped yet (uninterruptible sleep): it cannot
          // be detached before it stops. Its registers are untouched.
          addUnsettled(tid);
          throw new ProcessSkipped(
            pid,
            `thread ${tid} did not stop within ${stopMs} ms`,
          );
        }
        saved = getRegs(tid);
      } catch (err) {
        if (err instanceof ProcessSkipped) throw err;
        throw leave(pid, tid, err, undefined, signals, stopMs);
      }
      const s = new PtraceSession(pid, tid, insn, saved, t0, opts);
      s.#signals.push(...signals);
      let refuse: string | undefined;
      try {
        refuse = whyNotInject(pid, tid, saved);
      } catch (err) {
        throw s.#abandon(err);
      }
      if (refuse === undefined) return s;
      s.close();
      if (refuse === "rseq" && attempt < 20) {
        // Stopped inside an rseq critical section: injecting there would
        // make the kernel forget to abort it. Let it run and try again.
        usleep(500);
        continue;
      }
      throw new ProcessSkipped(pid, refuse);
    }
  }

  /** Milliseconds since the thread was asked to stop (final after close). */
  get holdMs(): number {
    return this.#closed ? this.#holdMs : performance.now() - this.#t0;
  }

  /** Whether calls are swapped in at the restart of the interrupted
   * system call (true) or run through the `syscall` instruction. */
  get inPlace(): boolean {
    return this.#restartNr !== undefined;
  }

  /** Signals that arrived during the hold so far. */
  get signalsDeferred(): number {
    return this.#signals.length;
  }

  /**
   * Makes the thread run one system call; returns its raw result (a
   * negative errno on failure). A call that a signal interrupted
   * (-ERESTART*) is run again; one that outruns callTimeoutMs is
   * interrupted and returns -EINTR.
   */
  call(nr: number, args: readonly bigint[] = []): bigint {
    if (this.#closed) throw new Error("ptrace session is closed");
    try {
      for (;;) {
        const timedOut = this.#restartNr !== undefined
          ? this.#runInPlace(nr, args)
          : this.#runInVdso(nr, args);
        const out = getSyscallInfo(this.tid);
        // Back to the saved registers at once: the window in which a
        // killed tracer would leave them changed ends here.
        setRegs(this.tid, this.#saved);
        this.#atExitStop = true;
        if (out.op !== "exit") {
          throw new Error(
            `ptrace: expected a syscall-exit stop, got ${out.op}`,
          );
        }
        if (isRestartCode(out.rval)) {
          if (timedOut.interrupted) return -4n; // EINTR
          continue; // a signal cut it short: it is recorded, run it again
        }
        return out.rval;
      }
    } catch (err) {
      throw this.#abandon(err);
    }
  }

  /**
   * The thread was stopped in a system call the kernel restarts (its
   * rax is -ERESTART*): let the kernel restart it, and at the entry stop
   * of the restarted call swap in ours (orig_rax and the arguments). The
   * registers are changed from that stop to the exit stop only: one stop
   * fewer in the window than through the vDSO.
   */
  #runInPlace(nr: number, args: readonly bigint[]): { interrupted: boolean } {
    // From an exit stop, interrupt first, so that the way out passes
    // through get_signal() and the restart logic.
    if (this.#atExitStop) ptrace(PTRACE_INTERRUPT, this.tid);
    this.#resume(PTRACE_SYSCALL);
    const entry = this.#waitSyscallStop(this.#stopTimeoutMs, false);
    checkEntry(this.tid, this.#restartNr!, this.#saved[REG.rip], entry);
    const regs = getRegs(this.tid);
    regs[REG.orig_rax] = BigInt(nr);
    setArgs(regs, args);
    setRegs(this.tid, regs);
    this.#resume(PTRACE_SYSCALL);
    return this.#waitSyscallStop(this.#callTimeoutMs, true);
  }

  /**
   * Any other stop: run the call through the `syscall` instruction found
   * in the target's code, with orig_rax -1 so that the restart logic,
   * which runs before the thread gets there, leaves the registers alone.
   */
  #runInVdso(nr: number, args: readonly bigint[]): { interrupted: boolean } {
    const inj = this.#saved.slice();
    inj[REG.rip] = this.syscallInsn;
    inj[REG.rax] = BigInt(nr);
    inj[REG.orig_rax] = MINUS_ONE;
    setArgs(inj, args);
    setRegs(this.tid, inj);
    this.#resume(PTRACE_SYSCALL);
    const entry = this.#waitSyscallStop(this.#stopTimeoutMs, false);
    checkEntry(this.tid, BigInt(nr), this.syscallInsn + 2n, entry);
    this.#resume(PTRACE_SYSCALL);
    return this.#waitSyscallStop(this.#callTimeoutMs, true);
  }

  /** Restores the thread and detaches it (idempotent); returns holdMs. */
  close(): number {
    if (this.#closed) return this.#holdMs;
    try {
      if (this.#atExitStop) {
        // From the exit stop, back to a stop in get_signal(): the kernel's
        // restart logic then runs on the saved registers after detach,
        // exactly as after a plain PTRACE_INTERRUPT stop.
        ptrace(PTRACE_INTERRUPT, this.tid);
        this.#resume(PTRACE_CONT);
        if (!waitTrap(this.tid, this.#stopTimeoutMs, this.#signals)) {
          throw new ProcessSkipped(
            this.pid,
            `thread ${this.tid} did not stop again within ${this.#stopTimeoutMs} ms`,
          );
        }
      }
      setRegs(this.tid, this.#saved);
      // Handed over: from here on, delivering them is detach's business.
      const signals = this.#signals.splice(0);
      detachDelivering(this.pid, this.tid, signals, this.#stopTimeoutMs);
    } catch (err) {
      throw this.#abandon(err);
    }
    this.#closed = true;
    this.#holdMs = performance.now() - this.#t0;
    return this.#holdMs;
  }

  #resume(request: number): void {
    ptrace(request, this.tid, 0n, 0n);
  }

  /**
   * Waits for the next syscall stop, recording and suppressing signals,
   * and resuming through group stops. `interruptible`: past the deadline,
   * interrupt the call once and keep waiting (stopTimeoutMs).
   */
  #waitSyscallStop(
    timeoutMs: number,
    interruptible: boolean,
  ): { interrupted: boolean } {
    let deadline = performance.now() + timeoutMs;
    let interrupted = false;
    let signalStops = 0;
    for (;;) {
      const s = waitStop(this.tid, deadline);
      if (s === null) {
        if (interruptible && !interrupted) {
          ptrace(PTRACE_INTERRUPT, this.tid);
          interrupted = true;
          deadline = performance.now() + this.#stopTimeoutMs;
          continue;
        }
        throw new ProcessSkipped(
          this.pid,
          `thread ${this.tid} did not reach the injected call within ${this.#stopTimeoutMs} ms`,
        );
      }
      if (s.signal === SYSCALL_STOP) return { interrupted };
      if (s.event === 0) {
        // Each signal-delivery stop dequeues one signal; signals arriving
        // faster than that would hold the thread forever.
        if (++signalStops > MAX_SIGNAL_STOPS) {
          throw new ProcessSkipped(
            this.pid,
            `thread ${this.tid} receives signals faster than they can be deferred`,
          );
        }
        this.#signals.push(getSiginfo(this.tid));
        if (!interrupted) deadline = performance.now() + timeoutMs;
      }
      // Signal-delivery stop (suppressed), PTRACE_EVENT_STOP (our own
      // late interrupt or a group stop, which detach reinstates).
      this.#resume(PTRACE_SYSCALL);
    }
  }

  /**
   * The error path: whatever happened, get the thread detached with its
   * saved registers (or reaped if it died), then return the error to
   * throw (ESRCH as {@link TargetGone} when the thread is gone).
   */
  #abandon(err: unknown): unknown {
    if (this.#closed) return err;
    this.#closed = true;
    this.#holdMs = performance.now() - this.#t0;
    return leave(
      this.pid,
      this.tid,
      err,
      this.#saved,
      this.#signals,
      this.#stopTimeoutMs,
    );
  }
}

/**
 * Makes one thread of pid run one system call, in a hold of its own:
 * {@link PtraceSession.open}, {@link PtraceSession.call},
 * {@link PtraceSession.close}. Returns the raw result (a negative errno
 * on failure) and how long the thread was held, in ms.
 */
export function injectSyscall(
  pid: number,
  nr: number,
  args: readonly bigint[] = [],
  opts: SessionOptions = {},
): { result: bigint; holdMs: number } {
  const s = PtraceSession.open(pid, opts);
  try {
    const result = s.call(nr, args);
    return { result, holdMs: s.close() };
  } finally {
    s.close();
  }
}
