/**
 * Waiting for a condition instead of sleeping a fixed time: the tests run
 * on machines of any speed, under load, and in TCG guests tens of times
 * slower than the host. A test polls for the state it needs, with a
 * generous bound that fails with a message naming what did not happen.
 *
 * @module
 */

/**
 * Polls `cond` every `stepMs` until it returns true; throws an Error
 * "timed out after N s waiting until WHAT" if it has not after `timeoutMs`
 * (default 120 s: a bound against a hang, not a timing).
 */
export async function waitUntil(
  cond: () => boolean | Promise<boolean>,
  what: string,
  timeoutMs = 120_000,
  stepMs = 10,
): Promise<void> {
  const end = Date.now() + timeoutMs;
  for (;;) {
    if (await cond()) return;
    if (Date.now() > end) {
      throw new Error(
        `timed out after ${timeoutMs / 1000} s waiting until ${what}`,
      );
    }
    await new Promise((r) => setTimeout(r, stepMs));
  }
}

/**
 * The state letter of /proc/PID/stat (R, S, D, T, t, Z, X...), or
 * undefined when there is no such process (any more). With `tid`, that
 * thread's state (/proc/PID/task/TID/stat).
 */
export function procState(pid: number, tid?: number): string | undefined {
  const path = tid === undefined
    ? `/proc/${pid}/stat`
    : `/proc/${pid}/task/${tid}/stat`;
  try {
    const stat = Deno.readTextFileSync(path);
    return stat.slice(stat.lastIndexOf(")") + 2)[0];
  } catch {
    return undefined;
  }
}

/**
 * Whether the process has exited: a zombie (its memory is gone, it waits
 * to be reaped), dead, or reaped already.
 */
export function hasExited(pid: number): boolean {
  const s = procState(pid);
  return s === undefined || s === "Z" || s === "X";
}

/** Whether `path` exists (a journal or lock file a test waits on). */
export function pathExists(path: string): boolean {
  try {
    Deno.statSync(path);
    return true;
  } catch {
    return false;
  }
}
