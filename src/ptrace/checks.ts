/**
 * Whether a stopped thread may be injected: 64-bit code and system call,
 * no seccomp filter, no other tracer, not inside an rseq critical section.
 *
 * @module
 */
import { readMem } from "../pages/vmread.ts";
import { parseStatus } from "../proc/info.ts";
import {
  AUDIT_ARCH_X86_64,
  getRseqArea,
  getSyscallInfo,
  REG,
  USER_CS_64,
} from "./sys.ts";
import { threadSeccomp } from "./target.ts";

/**
 * Why tid of pid, stopped by us with registers `saved`, must not be
 * injected ("rseq": only for now, inside a critical section), or
 * undefined.
 */
export function whyNotInject(
  pid: number,
  tid: number,
  saved: BigUint64Array,
): string | undefined {
  if (saved[REG.cs] !== USER_CS_64) return "thread runs 32-bit code";
  const info = getSyscallInfo(tid);
  if (info.arch !== AUDIT_ARCH_X86_64) {
    return "thread is in a 32-bit system call";
  }
  if (threadSeccomp(pid, tid) !== "0") return "seccomp filter";
  const status = parseStatus(
    Deno.readTextFileSync(`/proc/${pid}/task/${tid}/status`),
  );
  // TracerPid names the tracing thread, which is ours.
  if (!ownThread(Number(status.get("TracerPid")))) return "already traced";
  if (inRseqSection(pid, tid, saved[REG.rip])) return "rseq";
  return undefined;
}

/**
 * rseq: the kernel aborts a critical section the thread was preempted in
 * when it next returns to user space at an ip inside it. Our calls return
 * at the vDSO ip, where the kernel would clear rseq_cs instead. True when
 * `ip` lies in the thread's current critical section.
 */
function inRseqSection(pid: number, tid: number, ip: bigint): boolean {
  const area = getRseqArea(tid);
  if (area === 0n) return false;
  const mem = Deno.openSync(`/proc/${pid}/mem`);
  try {
    // struct rseq's rseq_cs pointer (0 when not in a critical section).
    const ptr = new Uint8Array(8);
    readMem(mem, area + 8n, ptr);
    const csPtr = new DataView(ptr.buffer).getBigUint64(0, true);
    if (csPtr === 0n) return false;
    const cs = new Uint8Array(32);
    if (readMem(mem, csPtr, cs) !== 32) return false;
    const v = new DataView(cs.buffer);
    const start = v.getBigUint64(8, true);
    const len = v.getBigUint64(16, true);
    return ip >= start && ip - start < len;
  } finally {
    mem.close();
  }
}

/** Whether tid is a thread of this process. */
function ownThread(tid: number): boolean {
  try {
    return tid > 0 && Deno.statSync(`/proc/self/task/${tid}`).isDirectory;
  } catch {
    return false;
  }
}
