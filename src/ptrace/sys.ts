/**
 * The raw ptrace(2) interface of x86-64 Linux for the ptrace engine:
 * libc's ptrace, waitpid, tgkill, sched_yield and usleep through
 * Deno.dlopen, the request numbers, the register block (struct
 * user_regs_struct), siginfo and PTRACE_GET_SYSCALL_INFO layouts, and wait
 * status decoding.
 *
 * Every function here is a synchronous FFI call: it runs on the calling
 * JavaScript thread, which for the main module is always the process's
 * main OS thread. ptrace binds a tracee to the *thread* that attached it,
 * so none of these symbols may ever be declared `nonblocking` (Deno runs
 * those on a pool of other threads). See src/ptrace/session.ts.
 *
 * @module
 */
import { SyscallError } from "../errors.ts";
import { errno, errnoName } from "../ffi/libc.ts";

const SYMBOLS = {
  // long ptrace(enum __ptrace_request, pid_t, void *addr, void *data).
  // glibc's wrapper is variadic; on x86-64 integer arguments are passed
  // the same way either way, and none of our requests is a PEEK (the only
  // ones glibc treats specially).
  ptrace: { parameters: ["i32", "i32", "u64", "u64"], result: "i64" },
  waitpid: { parameters: ["i32", "buffer", "i32"], result: "i32" },
  tgkill: { parameters: ["i32", "i32", "i32"], result: "i32" },
  sched_yield: { parameters: [], result: "i32" },
  usleep: { parameters: ["u32"], result: "i32" },
  prctl: {
    parameters: ["i32", "u64", "u64", "u64", "u64"],
    result: "i32",
  },
} as const satisfies Deno.ForeignLibraryInterface;

type Sys = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];
let sys: Sys | undefined;

function lib(): Sys {
  if (!sys) sys = Deno.dlopen("libc.so.6", SYMBOLS).symbols;
  return sys;
}

/** ptrace requests (linux/ptrace.h, asm/ptrace-abi.h for x86-64). */
export const PTRACE_CONT = 7;
export const PTRACE_GETREGS = 12;
export const PTRACE_SETREGS = 13;
export const PTRACE_DETACH = 17;
export const PTRACE_SYSCALL = 24;
export const PTRACE_GETSIGINFO = 0x4202;
export const PTRACE_SETSIGINFO = 0x4203;
export const PTRACE_SEIZE = 0x4206;
export const PTRACE_INTERRUPT = 0x4207;
export const PTRACE_GET_SYSCALL_INFO = 0x420e;
export const PTRACE_GET_RSEQ_CONFIGURATION = 0x420f;
/** Syscall stops report SIGTRAP | 0x80, so they cannot be mistaken for a
 * real SIGTRAP; it also keeps a tracer's death at a syscall stop from
 * sending the tracee a SIGTRAP (ptrace_report_syscall). */
export const PTRACE_O_TRACESYSGOOD = 1;
/** The event of a PTRACE_INTERRUPT trap or a group stop of a seized
 * tracee. */
export const PTRACE_EVENT_STOP = 128;

/** waitpid options. */
export const WNOHANG = 1;
export const __WALL = 0x40000000;

/** Signals by number (x86-64). */
export const SIGTRAP = 5;
export const SIGSTOP = 19;
export const SIGTSTP = 20;
export const SIGTTIN = 21;
export const SIGTTOU = 22;

/** x86-64 system call numbers used by the engine. */
export const NR_MADVISE = 28;
export const NR_PRCTL = 157;
export const NR_RESTART_SYSCALL = 219;

/** The -ERESTART* values a system call returns when a signal or a stop
 * interrupted it; the kernel's exit path turns them into a restart or
 * EINTR, they never reach user space. */
export const ERESTARTSYS = 512;
export const ERESTARTNOINTR = 513;
export const ERESTARTNOHAND = 514;
export const ERESTART_RESTARTBLOCK = 516;

/** Is a raw syscall return value one of the -ERESTART* codes? */
export function isRestartCode(v: bigint): boolean {
  return v === -BigInt(ERESTARTSYS) || v === -BigInt(ERESTARTNOINTR) ||
    v === -BigInt(ERESTARTNOHAND) || v === -BigInt(ERESTART_RESTARTBLOCK);
}

/** Throws errno `e` (read by the caller first thing) as a SyscallError. */
function fail(e: number, call: string, detail?: string): never {
  throw new SyscallError(call, e, errnoName(e), detail);
}

const REQUEST_NAMES: Record<number, string> = {
  [PTRACE_CONT]: "PTRACE_CONT",
  [PTRACE_GETREGS]: "PTRACE_GETREGS",
  [PTRACE_SETREGS]: "PTRACE_SETREGS",
  [PTRACE_DETACH]: "PTRACE_DETACH",
  [PTRACE_SYSCALL]: "PTRACE_SYSCALL",
  [PTRACE_GETSIGINFO]: "PTRACE_GETSIGINFO",
  [PTRACE_SETSIGINFO]: "PTRACE_SETSIGINFO",
  [PTRACE_SEIZE]: "PTRACE_SEIZE",
  [PTRACE_INTERRUPT]: "PTRACE_INTERRUPT",
  [PTRACE_GET_SYSCALL_INFO]: "PTRACE_GET_SYSCALL_INFO",
  [PTRACE_GET_RSEQ_CONFIGURATION]: "PTRACE_GET_RSEQ_CONFIGURATION",
};

/**
 * ptrace(2). `addr` and `data` are numbers or buffers (passed by address).
 * Returns the result; throws a SyscallError named after the request.
 */
export function ptrace(
  request: number,
  tid: number,
  addr: bigint | Uint8Array = 0n,
  data: bigint | Uint8Array = 0n,
): bigint {
  const a = typeof addr === "bigint" ? addr : address(addr);
  const d = typeof data === "bigint" ? data : address(data);
  const r = lib().ptrace(request, tid, a, d);
  if (r < 0n) {
    const e = errno();
    fail(e, REQUEST_NAMES[request] ?? `ptrace(${request})`, `tid ${tid}`);
  }
  return r;
}

function address(b: Uint8Array): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(b)));
}

const statusBuf = new Int32Array(1);

/**
 * waitpid(tid, &status, options): the pid whose state changed and its
 * status, `null` when WNOHANG found nothing. Throws a SyscallError
 * (ECHILD when tid is neither a child nor a tracee of this process).
 */
export function waitpid(
  tid: number,
  options: number,
): { pid: number; status: number } | null {
  const r = lib().waitpid(tid, new Uint8Array(statusBuf.buffer), options);
  if (r < 0) fail(errno(), "waitpid", `tid ${tid}`);
  if (r === 0) return null;
  return { pid: r, status: statusBuf[0] };
}

/** tgkill(2). */
export function tgkill(tgid: number, tid: number, sig: number): void {
  if (lib().tgkill(tgid, tid, sig) < 0) fail(errno(), "tgkill", `tid ${tid}`);
}

/** sched_yield(2). */
export function schedYield(): void {
  lib().sched_yield();
}

/** usleep(3). */
export function usleep(us: number): void {
  lib().usleep(us);
}

/** prctl options for the tracer's own timer slack (its poll sleeps). */
export const PR_SET_TIMERSLACK = 29;
export const PR_GET_TIMERSLACK = 30;

/** prctl(2) on the calling thread; returns the result or -errno. */
export function prctlSelf(option: number, arg2 = 0n): number {
  const r = lib().prctl(option, arg2, 0n, 0n, 0n);
  return r < 0 ? -errno() : r;
}

/** prctl option naming the calling thread (its comm, 15 bytes). */
export const PR_SET_NAME = 15;

/**
 * Names the calling thread; on the main thread that is the process's
 * name in ps and /proc/PID/comm. Returns the prctl result (-errno).
 */
export function setOwnName(name: string): number {
  const bytes = new TextEncoder().encode(name.slice(0, 15));
  const buf = new Uint8Array(16); // NUL-terminated
  buf.set(bytes);
  return prctlSelf(PR_SET_NAME, address(buf));
}

/** A decoded wait status. */
export type WaitStatus =
  | { kind: "exited"; code: number }
  | { kind: "killed"; signal: number }
  | {
    kind: "stopped";
    /** WSTOPSIG: the signal, or SIGTRAP|0x80 for a syscall stop. */
    signal: number;
    /** status >> 16: the PTRACE_EVENT_*, 0 for none. */
    event: number;
  };

/** Decodes a status from waitpid (the W* macros). */
export function decodeStatus(status: number): WaitStatus {
  if ((status & 0xff) === 0x7f) {
    return {
      kind: "stopped",
      signal: (status >> 8) & 0xff,
      event: (status >>> 16) & 0xffff,
    };
  }
  if ((status & 0x7f) === 0) {
    return { kind: "exited", code: (status >> 8) & 0xff };
  }
  return { kind: "killed", signal: status & 0x7f };
}

/**
 * x86-64 struct user_regs_struct, as PTRACE_GETREGS/SETREGS read and
 * write it: 27 unsigned 64-bit words in this order.
 */
export const REG = {
  r15: 0,
  r14: 1,
  r13: 2,
  r12: 3,
  rbp: 4,
  rbx: 5,
  r11: 6,
  r10: 7,
  r9: 8,
  r8: 9,
  rax: 10,
  rcx: 11,
  rdx: 12,
  rsi: 13,
  rdi: 14,
  orig_rax: 15,
  rip: 16,
  cs: 17,
  eflags: 18,
  rsp: 19,
  ss: 20,
  fs_base: 21,
  gs_base: 22,
  ds: 23,
  es: 24,
  fs: 25,
  gs: 26,
} as const;

/** Words in the register block. */
export const REG_WORDS = 27;

/** The user code segment selector of 64-bit code (__USER_CS). */
export const USER_CS_64 = 0x33n;

/** PTRACE_GETREGS into a new register block. */
export function getRegs(tid: number): BigUint64Array {
  const regs = new BigUint64Array(REG_WORDS);
  ptrace(PTRACE_GETREGS, tid, 0n, new Uint8Array(regs.buffer));
  return regs;
}

/** PTRACE_SETREGS from a register block. */
export function setRegs(tid: number, regs: BigUint64Array): void {
  ptrace(PTRACE_SETREGS, tid, 0n, new Uint8Array(regs.buffer));
}

/** Size of siginfo_t. */
export const SIGINFO_SIZE = 128;

/** PTRACE_GETSIGINFO: the siginfo of a signal-delivery-stop. */
export function getSiginfo(tid: number): Uint8Array {
  const info = new Uint8Array(SIGINFO_SIZE);
  ptrace(PTRACE_GETSIGINFO, tid, 0n, info);
  return info;
}

/** PTRACE_SETSIGINFO: replaces the siginfo of a signal-delivery-stop. */
export function setSiginfo(tid: number, info: Uint8Array): void {
  ptrace(PTRACE_SETSIGINFO, tid, 0n, info);
}

/** The fields of a siginfo the engine looks at. */
export function siginfoFields(
  info: Uint8Array,
): { signo: number; code: number; pid: number } {
  const v = new DataView(info.buffer, info.byteOffset, info.byteLength);
  return {
    signo: v.getInt32(0, true),
    code: v.getInt32(8, true),
    pid: v.getInt32(16, true),
  };
}

/** si_code of a signal sent with tkill/tgkill. */
export const SI_TKILL = -6;

/** A PTRACE_GET_SYSCALL_INFO answer. */
export type SyscallInfo =
  | { op: "entry"; ip: bigint; nr: bigint; arch: number }
  | { op: "exit"; ip: bigint; rval: bigint; arch: number }
  | { op: "none" | "seccomp"; ip: bigint; arch: number };

/** AUDIT_ARCH_X86_64. */
export const AUDIT_ARCH_X86_64 = 0xc000003e;

const infoBuf = new Uint8Array(88);

/** PTRACE_GET_SYSCALL_INFO (Linux 5.3+) at a stop. */
export function getSyscallInfo(tid: number): SyscallInfo {
  infoBuf.fill(0);
  ptrace(PTRACE_GET_SYSCALL_INFO, tid, BigInt(infoBuf.length), infoBuf);
  const v = new DataView(infoBuf.buffer);
  const op = v.getUint8(0);
  const arch = v.getUint32(4, true);
  const ip = v.getBigUint64(8, true);
  if (op === 1) return { op: "entry", ip, arch, nr: v.getBigUint64(24, true) };
  if (op === 2) return { op: "exit", ip, arch, rval: v.getBigInt64(24, true) };
  return { op: op === 3 ? "seccomp" : "none", ip, arch };
}

/**
 * PTRACE_GET_RSEQ_CONFIGURATION (Linux 5.13+): the address of the
 * thread's registered struct rseq, or 0n when it has none (or the kernel
 * lacks the request).
 */
export function getRseqArea(tid: number): bigint {
  const buf = new Uint8Array(32);
  try {
    ptrace(PTRACE_GET_RSEQ_CONFIGURATION, tid, BigInt(buf.length), buf);
  } catch (err) {
    if (err instanceof SyscallError && err.code === "EIO") return 0n;
    throw err;
  }
  return new DataView(buf.buffer).getBigUint64(0, true);
}
