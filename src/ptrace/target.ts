/**
 * What the ptrace engine checks about a target before it touches it, and
 * where it finds a `syscall` instruction to borrow.
 *
 * A target is skipped, with its reason, when it cannot be injected
 * safely: another tracer holds it, a seccomp filter could refuse or kill
 * on the injected call, Yama forbids ptrace altogether (ptrace_scope 3),
 * or it is not an x86-64 process (32-bit or x32 code runs other system
 * call numbers and registers).
 *
 * @module
 */
import {
  errnoCode,
  ErrorKind,
  ErrorReason,
  MergememError,
  processGone,
} from "../errors.ts";
import { ProcessSkipped } from "../engine/marker.ts";
import { parseMaps } from "../pages/maps.ts";
import { readMem } from "../pages/vmread.ts";
import { isKernelThread, parseStatus, readStat } from "../proc/info.ts";

/** ELF identification of x86-64 executables. */
const ELFCLASS64 = 2;
const EM_X86_64 = 62;

/** Throws unless the host itself is x86-64 Linux. */
export function requireX86_64Host(): void {
  if (Deno.build.os !== "linux" || Deno.build.arch !== "x86_64") {
    throw new MergememError(
      `the ptrace engine supports x86-64 Linux only (this host is ${Deno.build.arch} ${Deno.build.os})`,
      ErrorKind.NoModule,
      { reason: ErrorReason.PtraceUnsupported },
    );
  }
}

/** Reads a /proc file as text; errors as they come. */
function readProc(path: string): string {
  return Deno.readTextFileSync(path);
}

/** Yama's ptrace_scope, or 0 when Yama is not built in. */
export function yamaScope(path = "/proc/sys/kernel/yama/ptrace_scope"): number {
  try {
    return Number(readProc(path).trim());
  } catch {
    return 0;
  }
}

/**
 * Why an executable whose first 20 bytes are `head` is not an x86-64
 * program, or undefined when it is: x86-64 is ELFCLASS64 with EM_X86_64;
 * x32 is ELFCLASS32 with EM_X86_64; i386 is EM_386.
 */
export function elfNotX86_64(head: Uint8Array): string | undefined {
  if (
    head.length < 20 || head[0] !== 0x7f || head[1] !== 0x45 ||
    head[2] !== 0x4c || head[3] !== 0x46
  ) return "executable is not ELF";
  const machine = head[5] === 2
    ? (head[18] << 8) | head[19] // big-endian
    : head[18] | (head[19] << 8);
  if (machine !== EM_X86_64) {
    return `not an x86-64 process (ELF machine ${machine})`;
  }
  if (head[4] !== ELFCLASS64) return "not an x86-64 process (x32)";
  return undefined;
}

/**
 * Why the program of /proc/PID/exe is not x86-64, or undefined when it
 * is; see {@link elfNotX86_64}.
 */
export function notX86_64(pid: number): string | undefined {
  const head = new Uint8Array(20);
  let n = 0;
  try {
    const f = Deno.openSync(`/proc/${pid}/exe`);
    try {
      while (n < 20) {
        const r = f.readSync(head.subarray(n));
        if (r === null || r === 0) break;
        n += r;
      }
    } finally {
      f.close();
    }
  } catch (err) {
    // No exe: a kernel thread, or a process whose mm is already gone
    // (exiting).
    if (errnoCode(err) === "ENOENT") {
      if (kernelThread(pid)) return "kernel thread (no executable)";
      throw processGone("open", `/proc/${pid}/exe`);
    }
    throw err;
  }
  return elfNotX86_64(head.subarray(0, n));
}

/** Whether pid is a kernel thread; false when it is gone. */
function kernelThread(pid: number): boolean {
  try {
    return isKernelThread(readStat(pid));
  } catch {
    return false;
  }
}

/** A thread chosen to run the injected calls. */
export interface ChosenThread {
  tid: number;
  /** Its state letter in /proc/PID/task/TID/stat. */
  state: string;
}

/** A thread's state letter; undefined when it is gone. */
function threadState(pid: number, tid: number): string | undefined {
  try {
    return readStat(pid, { tid }).state;
  } catch {
    return undefined;
  }
}

/**
 * Checks that pid can be injected at all and picks the thread to stop.
 * Prefers a thread asleep in a system call (S): it is stopped without
 * disturbing any computation, and it cannot be inside an rseq critical
 * section. Then running threads (R), then any live one; never a zombie.
 *
 * @throws ProcessSkipped with the reason; SyscallError ESRCH when gone.
 */
export function checkTarget(
  pid: number,
  opts: { yamaPath?: string } = {},
): ChosenThread {
  if (yamaScope(opts.yamaPath) >= 3) {
    throw new ProcessSkipped(pid, "ptrace disabled (Yama ptrace_scope 3)");
  }
  let status: Map<string, string>;
  try {
    status = parseStatus(readProc(`/proc/${pid}/status`));
  } catch (err) {
    if (errnoCode(err) === "ENOENT") {
      throw processGone("open", `/proc/${pid}`);
    }
    throw err;
  }
  const tracer = Number(status.get("TracerPid") ?? "0");
  if (tracer !== 0) {
    throw new ProcessSkipped(pid, `already traced (by pid ${tracer})`);
  }
  if ((status.get("Seccomp") ?? "0") !== "0") {
    // mode 1 (strict) allows only read/write/exit/sigreturn; mode 2 runs
    // filters we cannot evaluate: madvise might fail, or kill the process.
    throw new ProcessSkipped(
      pid,
      `seccomp ${status.get("Seccomp") === "1" ? "strict mode" : "filter"}`,
    );
  }
  const why = notX86_64(pid);
  if (why) throw new ProcessSkipped(pid, why);

  let tids: number[];
  try {
    tids = [...Deno.readDirSync(`/proc/${pid}/task`)]
      .map((e) => Number(e.name))
      .filter((n) => Number.isInteger(n))
      .sort((a, b) => (a === pid ? -1 : b === pid ? 1 : a - b));
  } catch (err) {
    if (errnoCode(err) === "ENOENT") {
      throw processGone("open", `/proc/${pid}`);
    }
    throw err;
  }
  const states = tids.map((tid) => ({ tid, state: threadState(pid, tid) }));
  for (const want of ["S", "R", "D"]) {
    const t = states.find((s) => s.state === want);
    if (t) return { tid: t.tid, state: want };
  }
  const t = states.find((s) => s.state === "t" || s.state === "T");
  if (t) throw new ProcessSkipped(pid, "stopped (every thread)");
  throw processGone("open", `/proc/${pid}`);
}

/** Per-thread seccomp (threads may differ from the leader). */
export function threadSeccomp(pid: number, tid: number): string {
  try {
    return parseStatus(readProc(`/proc/${pid}/task/${tid}/status`)).get(
      "Seccomp",
    ) ?? "0";
  } catch {
    return "0";
  }
}

/**
 * The address of a `syscall` instruction (0f 05) in the target's code:
 * in its [vdso] (every x86-64 vDSO has one in its clock_gettime
 * fallback), else in another executable mapping. The target's code is
 * only read, never written.
 */
export function findSyscallInsn(pid: number): bigint {
  let text: string;
  try {
    text = readProc(`/proc/${pid}/maps`);
  } catch (err) {
    const code = errnoCode(err);
    if (code === "ENOENT" || code === "ESRCH") {
      throw processGone("read", `/proc/${pid}/maps`);
    }
    throw err;
  }
  const exec = parseMaps(text)
    .filter((m) => m.perms[2] === "x")
    // Exactly as printed: [vsyscall]'s address is above 2^53.
    .map((m) => ({
      start: BigInt(m.startHex),
      end: BigInt(m.endHex),
      name: m.path,
    }))
    // The vsyscall page is emulated and execute-only: never use it.
    .filter((m) => m.name !== "[vsyscall]");
  exec.sort((a, b) =>
    (a.name === "[vdso]" ? 0 : 1) - (b.name === "[vdso]" ? 0 : 1)
  );
  let mem: Deno.FsFile;
  try {
    mem = Deno.openSync(`/proc/${pid}/mem`);
  } catch {
    // Nothing is readable: its mm is gone (exiting).
    throw processGone("read", `/proc/${pid}/maps`);
  }
  let unreadable = 0;
  try {
    for (const m of exec) {
      const bytes = new Uint8Array(Math.min(Number(m.end - m.start), 1 << 20));
      let n: number;
      try {
        n = readMem(mem, m.start, bytes);
      } catch {
        n = 0;
      }
      // Nothing read: an error, or end of file once the mm is gone.
      if (n === 0) {
        unreadable++;
        continue;
      }
      for (let i = 0; i + 1 < n; i++) {
        if (bytes[i] === 0x0f && bytes[i + 1] === 0x05) {
          return m.start + BigInt(i);
        }
      }
    }
  } finally {
    mem.close();
  }
  // No executable mapping, or none readable: its mm is gone (exiting).
  if (exec.length === unreadable) {
    throw processGone("read", `/proc/${pid}/maps`);
  }
  throw new ProcessSkipped(pid, "no syscall instruction found in its code");
}
