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
 * What cannot be guaranteed: if mergemem is killed with SIGKILL while
 * the registers of step 3 are in place (from changing them to the exit
 * stop of that call), the kernel detaches the thread and it resumes with
 * them: it runs the call, then returns to user space with its result in
 * rax (the interrupted call seems to return it) or continues in the vDSO
 * with the wrong registers. Outside that window a SIGKILL leaves the
 * target as a plain ptrace stop would (PTRACE_O_TRACESYSGOOD: a tracer
 * dying at a syscall stop sends no SIGTRAP). bench/README.md reports
 * measured rates.
 *
 * @module
 */
import { errnoCode, SyscallError } from "../errors.ts";
import { ProcessSkipped } from "../engine/marker.ts";
import {
  __WALL,
  AUDIT_ARCH_X86_64,
  decodeStatus,
  ERESTART_RESTARTBLOCK,
  getRegs,
  getRseqArea,
  getSiginfo,
  getSyscallInfo,
  isRestartCode,
  NR_RESTART_SYSCALL,
  PR_GET_TIMERSLACK,
  PR_SET_TIMERSLACK,
  prctlSelf,
  ptrace,
  PTRACE_CONT,
  PTRACE_DETACH,
  PTRACE_EVENT_STOP,
  PTRACE_INTERRUPT,
  PTRACE_O_TRACESYSGOOD,
  PTRACE_SEIZE,
  PTRACE_SYSCALL,
  REG,
  setRegs,
  setSiginfo,
  SI_TKILL,
  siginfoFields,
  SIGTRAP,
  tgkill,
  USER_CS_64,
  usleep,
  waitpid,
  type WaitStatus,
  WNOHANG,
} from "./sys.ts";
import { readMem } from "../pages/vmread.ts";
import { parseStatus } from "../proc/info.ts";
import { checkTarget, findSyscallInsn, threadSeccomp } from "./target.ts";

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

/** The target's thread exited (or the whole process did) during a hold. */
export class TargetGone extends SyscallError {
  /** Builds the error for the thread that went away. */
  constructor(tid: number, how: string) {
    super("ptrace", 3, "ESRCH", `tid ${tid} ${how}`);
    this.name = "TargetGone";
  }
}

const MINUS_ONE = 0xffffffffffffffffn;

const ARG_REGS = [REG.rdi, REG.rsi, REG.rdx, REG.r10, REG.r8, REG.r9];

function setArgs(regs: BigUint64Array, args: readonly bigint[]): void {
  args.forEach((a, i) => regs[ARG_REGS[i]] = BigInt.asUintN(64, a));
}

/** Signal-delivery stops one wait may pass through (see waitSyscallStop). */
const MAX_SIGNAL_STOPS = 1000;

/** Threads seized whose stop never came: detached when it does. */
const unsettled = new Set<number>();

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

type Stop = WaitStatus & { kind: "stopped" };

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
    const orig = BigInt.asIntN(64, saved[REG.orig_rax]);
    const rax = BigInt.asIntN(64, saved[REG.rax]);
    if (opts.inPlace !== false && orig >= 0n && isRestartCode(rax)) {
      this.#restartNr = rax === -BigInt(ERESTART_RESTARTBLOCK)
        ? BigInt(NR_RESTART_SYSCALL)
        : orig;
    }
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
          unsettled.add(tid);
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
        refuse = s.#whyNot();
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

  /** Why the stopped thread must not be injected, or undefined. */
  #whyNot(): string | undefined {
    if (this.#saved[REG.cs] !== USER_CS_64) return "thread runs 32-bit code";
    const info = getSyscallInfo(this.tid);
    if (info.arch !== AUDIT_ARCH_X86_64) {
      return "thread is in a 32-bit system call";
    }
    if (threadSeccomp(this.pid, this.tid) !== "0") return "seccomp filter";
    const status = parseStatus(
      Deno.readTextFileSync(`/proc/${this.pid}/task/${this.tid}/status`),
    );
    // TracerPid names the tracing thread, which is ours.
    if (!ownThread(Number(status.get("TracerPid")))) return "already traced";
    // rseq: the kernel aborts a critical section the thread was preempted
    // in when it next returns to user space at an ip inside it. Our calls
    // return at the vDSO ip, where the kernel would clear rseq_cs instead.
    const area = getRseqArea(this.tid);
    if (area !== 0n) {
      const mem = Deno.openSync(`/proc/${this.pid}/mem`);
      try {
        // struct rseq's rseq_cs pointer (0 when not in a critical section).
        const ptr = new Uint8Array(8);
        readMem(mem, area + 8n, ptr);
        const csPtr = new DataView(ptr.buffer).getBigUint64(0, true);
        if (csPtr !== 0n) {
          const cs = new Uint8Array(32);
          if (readMem(mem, csPtr, cs) === 32) {
            const v = new DataView(cs.buffer);
            const start = v.getBigUint64(8, true);
            const len = v.getBigUint64(16, true);
            const ip = this.#saved[REG.rip];
            if (ip >= start && ip - start < len) return "rseq";
          }
        }
      } finally {
        mem.close();
      }
    }
    return undefined;
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
    this.#checkEntry(this.#restartNr!, this.#saved[REG.rip], entry);
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
    this.#checkEntry(BigInt(nr), this.syscallInsn + 2n, entry);
    this.#resume(PTRACE_SYSCALL);
    return this.#waitSyscallStop(this.#callTimeoutMs, true);
  }

  #checkEntry(nr: bigint, ip: bigint, status: unknown): void {
    const info = getSyscallInfo(this.tid);
    if (info.op !== "entry" || info.nr !== nr || info.ip !== ip) {
      throw new Error(
        `ptrace: unexpected stop before the injected call (${
          JSON.stringify(info, (_k, v) => typeof v === "bigint" ? String(v) : v)
        }, status ${JSON.stringify(status)})`,
      );
    }
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
      this.#detachDelivering();
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
      if (s.signal === (SIGTRAP | 0x80)) return { interrupted };
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
   * Detaches, first delivering the signals suppressed during the hold:
   * each is queued again with tgkill, its siginfo restored at its
   * signal-delivery stop, and the last one delivered by PTRACE_DETACH.
   */
  #detachDelivering(): void {
    const pending: Uint8Array[] = [];
    for (const info of this.#signals) {
      const { signo } = siginfoFields(info);
      // Standard signals do not queue: one pending instance is all there
      // would have been.
      if (
        signo < 32 && pending.some((p) => siginfoFields(p).signo === signo)
      ) continue;
      pending.push(info);
    }
    this.#signals.length = 0;
    if (pending.length === 0) {
      ptrace(PTRACE_DETACH, this.tid, 0n, 0n);
      return;
    }
    for (const info of pending) {
      tgkill(this.pid, this.tid, siginfoFields(info).signo);
    }
    this.#resume(PTRACE_CONT);
    const deadline = performance.now() + this.#stopTimeoutMs;
    for (;;) {
      const s = waitStop(this.tid, deadline);
      if (s === null) {
        throw new Error("ptrace: deferred signals were not delivered in time");
      }
      if (s.event !== 0 || s.signal === (SIGTRAP | 0x80)) {
        this.#resume(PTRACE_CONT);
        continue;
      }
      const got = siginfoFields(getSiginfo(this.tid));
      const i = pending.findIndex((p) => {
        const f = siginfoFields(p);
        return f.signo === got.signo &&
          (got.signo < 32 || (got.code === SI_TKILL && got.pid === Deno.pid));
      });
      if (i >= 0) {
        setSiginfo(this.tid, pending[i]);
        pending.splice(i, 1);
      }
      if (pending.length === 0) {
        ptrace(PTRACE_DETACH, this.tid, 0n, BigInt(got.signo));
        return;
      }
      ptrace(PTRACE_CONT, this.tid, 0n, BigInt(got.signo));
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
 * Gets a thread out of our hands after an error: if it died, reaps it;
 * if it is in a ptrace stop, walks it to a stop where the saved registers
 * (when given) can be put back safely, restores them and detaches it; if
 * it is running, interrupts it first. Returns the error to report.
 */
function leave(
  pid: number,
  tid: number,
  err: unknown,
  saved: BigUint64Array | undefined,
  signals: Uint8Array[],
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
        // Restore, then stop again in get_signal() (see close()).
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

function ownThread(tid: number): boolean {
  try {
    return tid > 0 && Deno.statSync(`/proc/self/task/${tid}`).isDirectory;
  } catch {
    return false;
  }
}

function asGone(tid: number, err: unknown): unknown {
  if (err instanceof TargetGone) return err;
  if (errnoCode(err) === "ESRCH") return new TargetGone(tid, "exited");
  return err;
}

function seizeError(pid: number, tid: number, err: unknown): unknown {
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

/**
 * Sleeps between two polls of waitpid: 10 us for the first 2 ms (a stop
 * the engine asked for takes tens of microseconds), then longer. Never a
 * busy spin: on a small machine the tracee needs the CPU to reach its
 * stop. (waitpid itself has no timeout, hence the polling.)
 */
function pause(since: number, now = performance.now()): void {
  const waited = now - since;
  usleep(waited < 2 ? 10 : waited < 50 ? 200 : 1000);
}

/**
 * Waits for the next stop of tid until `deadline` (performance.now()
 * ms); null on timeout. Exit or death of the thread throws TargetGone.
 */
function waitStop(tid: number, deadline: number): Stop | null {
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
 * within timeoutMs, recording and suppressing signal-delivery stops.
 * Returns false on timeout.
 */
function waitTrap(tid: number, timeoutMs: number, signals: Uint8Array[]) {
  let deadline = performance.now() + timeoutMs;
  let signalStops = 0;
  for (;;) {
    const s = waitStop(tid, deadline);
    if (s === null) return false;
    if (s.event === PTRACE_EVENT_STOP) return true;
    if (s.event === 0 && s.signal !== (SIGTRAP | 0x80)) {
      // A flood of signals: give up as on a timeout (see waitSyscallStop).
      if (++signalStops > MAX_SIGNAL_STOPS) return false;
      signals.push(getSiginfo(tid));
      deadline = performance.now() + timeoutMs;
    }
    ptrace(PTRACE_CONT, tid, 0n, 0n);
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
