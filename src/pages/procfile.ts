/**
 * Opening a file of another process under /proc/PID with typed errors.
 *
 * @module
 */
import { errnoCode, processGone, SyscallError } from "../errors.ts";
import { O_RDONLY, openFd } from "../ffi/libc.ts";

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

/**
 * Opens /proc/PID/NAME read-only as a raw fd (for FFI calls: pread, the
 * module's ioctls); the same errors as {@link openProcFile}.
 */
export function openProcFd(pid: number, name: string): number {
  const path = `/proc/${pid}/${name}`;
  try {
    return openFd(path, O_RDONLY);
  } catch (err) {
    if (err instanceof SyscallError && err.code === "ENOENT") {
      throw processGone("open", path);
    }
    throw err;
  }
}
