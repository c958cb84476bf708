/**
 * What the merge benchmarks measure about ksmd: its thread, and CPU time
 * of a task from /proc/PID/stat.
 *
 * @module
 */

const TICK = 100; // USER_HZ

/** The pid of the ksmd kernel thread. */
export function ksmdPid(): number {
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      if (Deno.readTextFileSync(`/proc/${e.name}/comm`).trim() === "ksmd") {
        return Number(e.name);
      }
    } catch {
      // gone
    }
  }
  throw new Error("no ksmd thread");
}

/** utime + stime of a task, in seconds. */
export function cpuSeconds(pid: number | "self"): number {
  const s = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const f = s.slice(s.lastIndexOf(")") + 2).split(" ");
  return (Number(f[11]) + Number(f[12])) / TICK;
}
