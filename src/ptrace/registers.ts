/**
 * The registers of an injected call (x86-64): arguments, the orig_rax of
 * -1 that keeps the restart logic away, the number the kernel restarts an
 * interrupted call with, and the check of the entry stop.
 *
 * @module
 */
import {
  ERESTART_RESTARTBLOCK,
  getSyscallInfo,
  isRestartCode,
  NR_RESTART_SYSCALL,
  REG,
} from "./sys.ts";

/** -1 as an unsigned 64-bit register value. */
export const MINUS_ONE = 0xffffffffffffffffn;

const ARG_REGS = [REG.rdi, REG.rsi, REG.rdx, REG.r10, REG.r8, REG.r9];

/** Puts a call's arguments in their registers. */
export function setArgs(regs: BigUint64Array, args: readonly bigint[]): void {
  args.forEach((a, i) => regs[ARG_REGS[i]] = BigInt.asUintN(64, a));
}

/**
 * The number the kernel restarts the interrupted call with (its own, or
 * restart_syscall) when the saved registers show a thread stopped in a
 * system call it will restart (rax -ERESTART*, orig_rax its number);
 * undefined otherwise.
 */
export function restartNumber(saved: BigUint64Array): bigint | undefined {
  const orig = BigInt.asIntN(64, saved[REG.orig_rax]);
  const rax = BigInt.asIntN(64, saved[REG.rax]);
  if (orig < 0n || !isRestartCode(rax)) return undefined;
  return rax === -BigInt(ERESTART_RESTARTBLOCK)
    ? BigInt(NR_RESTART_SYSCALL)
    : orig;
}

/**
 * Throws unless tid is at the entry stop of system call `nr` at `ip`
 * (the stop before the injected call).
 */
export function checkEntry(
  tid: number,
  nr: bigint,
  ip: bigint,
  status: unknown,
): void {
  const info = getSyscallInfo(tid);
  if (info.op !== "entry" || info.nr !== nr || info.ip !== ip) {
    throw new Error(
      `ptrace: unexpected stop before the injected call (${
        JSON.stringify(info, (_k, v) => typeof v === "bigint" ? String(v) : v)
      }, status ${JSON.stringify(status)})`,
    );
  }
}
