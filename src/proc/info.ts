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

/** The fields mergemem uses of a /proc/PID/stat line. */
export interface ProcStat {
  /** Field 1: the process (or thread) id. */
  pid: number;
  /** Field 2: the command name, without its parentheses. */
  comm: string;
  /** Field 3: the one-letter state ("R", "S", "Z", ...). */
  state: string;
  /** Field 9: the flags (PF_*). */
  flags: number;
  /** Field 22: the start time in clock ticks since boot, as printed; with
   * the pid it names one process for the life of the system. Undefined
   * when the line is cut short. */
  startTime?: string;
}

/** Parses the fields mergemem uses from a /proc/PID/stat line. The comm
 * field is in parentheses and may itself contain ") " and spaces, so the
 * fields are taken after the LAST ")". */
export function parseStat(text: string): ProcStat {
  const open = text.indexOf("(");
  const close = text.lastIndexOf(")");
  if (open < 0 || close < open) throw new Error("malformed stat line");
  const rest = text.slice(close + 2).trimEnd().split(" ");
  // rest[0] is field 3 (state); flags is field 9, starttime field 22.
  const stat: ProcStat = {
    pid: Number(text.slice(0, open).trim()),
    comm: text.slice(open + 1, close),
    state: rest[0],
    flags: Number(rest[6]),
  };
  const start = rest[22 - 3];
  if (start !== undefined && /^\d+$/.test(start)) stat.startTime = start;
  return stat;
}

/**
 * Reads and parses /proc/PID/stat, or /proc/PID/task/TID/stat when `tid`
 * is given (one thread's state).
 *
 * @throws {Deno.errors.NotFound} when the process is gone; the error of
 *   {@link parseStat} for a malformed line.
 */
export function readStat(
  pid: number,
  opts: { tid?: number; proc?: string } = {},
): ProcStat {
  const dir = `${opts.proc ?? "/proc"}/${pid}`;
  return parseStat(Deno.readTextFileSync(
    opts.tid === undefined ? `${dir}/stat` : `${dir}/task/${opts.tid}/stat`,
  ));
}

/** The "Key:\tvalue" fields of /proc/PID(/task/TID)/status. */
export function parseStatus(text: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const line of text.split("\n")) {
    const i = line.indexOf(":");
    if (i > 0) out.set(line.slice(0, i), line.slice(i + 1).trim());
  }
  return out;
}

/** Real and effective uid from /proc/PID/status text. */
export function parseStatusUids(text: string): { uid: number; euid: number } {
  // "Uid:" lists the real, effective, saved and filesystem uids.
  const m = /^(\d+)\s+(\d+)/.exec(parseStatus(text).get("Uid") ?? "");
  if (!m) throw new Error("no Uid line in status");
  return { uid: Number(m[1]), euid: Number(m[2]) };
}

/**
 * Reads a process's {@link ProcInfo}.
 * @throws {Deno.errors.NotFound} when the process is gone (ENOENT, which
 *   callers report as ESRCH).
 */
export function readProcInfo(pid: number): ProcInfo {
  const stat = readStat(pid);
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

/** True for a kernel thread: PF_KTHREAD in the stat flags (of a
 * {@link ProcInfo} or a {@link ProcStat}). */
export function isKernelThread(p: Pick<ProcStat, "flags">): boolean {
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
