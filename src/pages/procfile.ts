/**
 * Opening a file of another process under /proc/PID with typed errors.
 *
 * @module
 */
import { errnoCode, processGone, SyscallError } from "../errors.ts";

/**
 * Opens /proc/PID/NAME for reading.
 *
 * @throws {SyscallError} ESRCH when the process is gone (ENOENT, or ESRCH
 *   for a zombie), EACCES or EPERM when the caller may not read it; any
 *   other error as it came.
 */
export function openProcFile(pid: number, name: string): Deno.FsFile {
  const path = `/proc/${pid}/${name}`;
  try {
    return Deno.openSync(path);
  } catch (err) {
    const code = errnoCode(err);
    if (code === "ENOENT" || code === "ESRCH") throw processGone("open", path);
    if (code === "EACCES" || code === "EPERM") {
      throw new SyscallError("open", code === "EACCES" ? 13 : 1, code, path);
    }
    throw err;
  }
}
