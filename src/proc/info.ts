/**
 * What mergemem needs to know about one process, from /proc/PID/stat,
 * status, comm and exe.
 *
 * @module
 */
import { errnoCode } from "../errors.ts";

/** PF_KTHREAD in the flags field of /proc/PID/stat (include/linux/sched.h). */
export const PF_KTHREAD = 0x00200000;

/** A process as seen in /proc. */
export interface ProcInfo {
  /** Process id. */
  pid: number;
  /** /proc/PID/comm: the first 15 bytes of the command name. */
  comm: string;
  /** Real user id. */
  uid: number;
  /** Effective user id. */
  euid: number;
  /** The executable's path (readlink /proc/PID/exe), or null when it
   * cannot be read (kernel thread, or no permission). */
  exe: string | null;
  /** The one-letter state from stat ("R", "S", "Z", ...). */
  state: string;
  /** The flags field of stat (PF_*). */
  flags: number;
}

/** Parses the fields mergemem uses from a /proc/PID/stat line. The comm
 * field is in parentheses and may itself contain ") " and spaces, so the
 * fields are taken after the LAST ")". */
export function parseStat(
  text: string,
): { pid: number; comm: string; state: string; flags: number } {
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  if (open < 0 || close < open) throw new Error("malformed stat line");
  const rest = text.slice(close + 2).split(" ");
  // rest[0] is field 3 (state); flags is field 9.
  return {
    pid: Number(text.slice(0, open).trim()),
    comm: text.slice(open + 1, close),
    state: rest[0],
    flags: Number(rest[6]),
  };
}

/** Real and effective uid from /proc/PID/status text. */
export function parseStatusUids(text: string): { uid: number; euid: number } {
  const m = /^Uid:\s+(\d+)\s+(\d+)/m.exec(text);
  if (!m) throw new Error("no Uid line in status");
  return { uid: Number(m[1]), euid: Number(m[2]) };
}

/**
 * Reads a process's {@link ProcInfo}.
 * @throws {Deno.errors.NotFound} when the process is gone (ENOENT, which
 *   callers report as ESRCH).
 */
export function readProcInfo(pid: number): ProcInfo {
  const stat = parseStat(Deno.readTextFileSync(`/proc/${pid}/stat`));
  const ids = parseStatusUids(Deno.readTextFileSync(`/proc/${pid}/status`));
  let exe: string | null = null;
  try {
    exe = Deno.readLinkSync(`/proc/${pid}/exe`);
  } catch (err) {
    const code = errnoCode(err);
    if (code === "ENOENT" && !procExists(pid)) throw err;
  }
  return {
    pid,
    comm: stat.comm,
    uid: ids.uid,
    euid: ids.euid,
    exe,
    state: stat.state,
    flags: stat.flags,
  };
}

/** True if /proc/PID exists. */
export function procExists(pid: number): boolean {
  try {
    Deno.statSync(`/proc/${pid}`);
    return true;
  } catch {
    return false;
  }
}

/** True for a kernel thread (PF_KTHREAD set, or no executable at all). */
export function isKernelThread(p: ProcInfo): boolean {
  return (p.flags & PF_KTHREAD) !== 0;
}

/** Every numeric entry of /proc (or `proc`), ascending. */
export function listPids(proc = "/proc"): number[] {
  const pids: number[] = [];
  for (const e of Deno.readDirSync(proc)) {
    if (/^\d+$/.test(e.name)) pids.push(Number(e.name));
  }
  return pids.sort((a, b) => a - b);
}

/** /proc/PID/comm without its newline; "" when the process is gone. */
export function readComm(pid: number, proc = "/proc"): string {
  try {
    return Deno.readTextFileSync(`${proc}/${pid}/comm`).trim();
  } catch {
    return "";
  }
}

/** The real uid of a process; undefined when it is gone or unreadable. */
export function readUid(pid: number, proc = "/proc"): number | undefined {
  try {
    return parseStatusUids(Deno.readTextFileSync(`${proc}/${pid}/status`)).uid;
  } catch {
    return undefined;
  }
}
