/**
 * The few libc functions mergemem needs, through Deno.dlopen: open, close,
 * ioctl, process_vm_readv, pread, flock and setsid, with errno reported as
 * a {@link SyscallError}.
 *
 * The library is opened once: when this module loads if FFI is allowed,
 * else on first use, so that programs that never touch FFI need no
 * --allow-ffi. errno's address is looked up with it, so that reading
 * errno never makes a call of its own.
 *
 * @module
 */
import { errnoName, SyscallError } from "../errors.ts";

// errno's names are src/errors.ts's (the lower layer), offered here too
// to the callers of errno().
export { errnoName } from "../errors.ts";

const SYMBOLS = {
  open: { parameters: ["buffer", "i32", "u32"], result: "i32" },
  close: { parameters: ["i32"], result: "i32" },
  ioctl: { parameters: ["i32", "u64", "buffer"], result: "i32" },
  // The same call on a worker thread (PAGEINFO hashes on every CPU).
  ioctl_async: {
    name: "ioctl",
    parameters: ["i32", "u64", "buffer"],
    result: "i32",
    nonblocking: true,
  },
  process_vm_readv: {
    parameters: ["i32", "buffer", "u64", "buffer", "u64", "u64"],
    result: "i64",
  },
  // The same call on a worker thread, so that reading overlaps hashing.
  process_vm_readv_async: {
    name: "process_vm_readv",
    parameters: ["i32", "buffer", "u64", "buffer", "u64", "u64"],
    result: "i64",
    nonblocking: true,
  },
  // Reads of /proc/PID/mem (no page pin), here and on a worker thread.
  pread: { parameters: ["i32", "buffer", "usize", "i64"], result: "isize" },
  pread_async: {
    name: "pread",
    parameters: ["i32", "buffer", "usize", "i64"],
    result: "isize",
    nonblocking: true,
  },
  // Byte comparison of two raw addresses (buffers that stay alive).
  memcmp: { parameters: ["usize", "usize", "usize"], result: "i32" },
  // Advisory whole-file locks (the KSM lock, src/ksm/lock.ts).
  flock: { parameters: ["i32", "i32"], result: "i32" },
  // A session of its own (the ptrace tracer, src/ptrace/tracer.ts).
  setsid: { parameters: [], result: "i32" },
  __errno_location: { parameters: [], result: "pointer" },
  strerror: { parameters: ["i32"], result: "pointer" },
} as const satisfies Deno.ForeignLibraryInterface;

type Libc = Deno.DynamicLibrary<typeof SYMBOLS>["symbols"];
let libc: Libc | undefined;

// errno of this (the main) thread: synchronous FFI calls run here. Its
// address is fixed for the thread's life, so it is looked up once, with
// the library, and errno() only reads it: errno() must never make a call
// or allocate (an allocation may run the runtime's own system calls,
// which overwrite errno), not even the first time.
let errnoView: Deno.UnsafePointerView | undefined;

/** The libc symbols; opens libc.so.6 (and finds errno) on first use. */
export function lib(): Libc {
  if (!libc) {
    const l = Deno.dlopen("libc.so.6", SYMBOLS).symbols;
    const p = l.__errno_location();
    if (p === null) throw new Error("libc: __errno_location() returned NULL");
    errnoView = new Deno.UnsafePointerView(p);
    libc = l;
  }
  return libc;
}

// Opened when this module loads if FFI is allowed (the CLI: --allow-all),
// so that errno is found before any call can fail, also a call through
// another library handle (src/ptrace/sys.ts opens its own). Without the
// permission nothing is opened, and importing costs nothing.
if (Deno.permissions.querySync({ name: "ffi" }).state === "granted") lib();

/**
 * How many nonblocking calls (reads, PAGEINFO) to keep in flight: one more
 * than CPUs, so that the CPUs stay busy while this thread handles the
 * oldest result, and at most 4. On 2 CPUs, 2, 3 and 4 measured the same
 * for reads (bench/README.md); 1 was a third slower.
 */
export const CALLS_IN_FLIGHT = Math.min(
  4,
  (navigator.hardwareConcurrency ?? 1) + 1,
);

/**
 * The errno value the last failed call on this thread left behind. Read
 * it right after the call, before anything that allocates: the runtime's
 * own system calls (a garbage collection, a lock) may overwrite it. This
 * read makes no call and allocates nothing: errno was found when libc was
 * opened, at the latest by the failed call itself. (Only a program that
 * gains FFI permission after loading this module, and whose first failed
 * call goes through its own library handle, finds errno here.)
 */
export function errno(): number {
  if (errnoView === undefined) lib();
  return errnoView!.getInt32();
}

/** Throws a {@link SyscallError} for the current errno. */
function throwErrno(syscall: string, detail?: string): never {
  const e = errno();
  throw new SyscallError(syscall, e, errnoName(e), detail);
}

/** open(2) flags used by mergemem. */
export const O_RDONLY = 0;
export const O_RDWR = 2;
export const O_CREAT = 0o100;
/** {@link openFd} adds it to every open, so no fd leaks into a child. */
const O_CLOEXEC = 0o2000000;

/** A NUL-terminated C string. */
function cString(s: string): Uint8Array<ArrayBuffer> {
  const bytes = new TextEncoder().encode(s);
  const out = new Uint8Array(bytes.length + 1);
  out.set(bytes);
  return out;
}

/**
 * open(2); returns the fd or throws a {@link SyscallError}. `mode` is the
 * permission of a file that O_CREAT creates.
 */
export function openFd(path: string, flags: number, mode = 0): number {
  const fd = lib().open(cString(path), flags | O_CLOEXEC, mode);
  if (fd < 0) throwErrno("open", path);
  return fd;
}

/** close(2), ignoring errors: there is nothing useful to do about them. */
export function closeFd(fd: number): void {
  lib().close(fd);
}

/** flock(2) operations. */
export const LOCK_EX = 2;
export const LOCK_NB = 4;
export const LOCK_UN = 8;

/**
 * flock(2). Returns true when the lock was taken, false when LOCK_NB was
 * given and another open file holds it (EWOULDBLOCK); throws a
 * {@link SyscallError} on any other failure.
 */
export function flock(fd: number, operation: number): boolean {
  if (lib().flock(fd, operation) === 0) return true;
  if (errno() === 11) return false;
  throwErrno("flock");
}

/**
 * ioctl(2) with a pointer argument on another thread; resolves to its
 * result. errno cannot be read from here: a caller that needs the reason
 * for a negative result redoes the call with {@link ioctl}.
 */
export function ioctlAsync(
  fd: number,
  request: bigint,
  arg: Uint8Array<ArrayBuffer>,
): Promise<number> {
  return lib().ioctl_async(fd, request, arg);
}

/**
 * ioctl(2) with a pointer argument. Returns the (non-negative) result or
 * throws a {@link SyscallError} carrying errno.
 */
export function ioctl(
  fd: number,
  request: bigint,
  arg: Uint8Array<ArrayBuffer>,
): number {
  const r = lib().ioctl(fd, request, arg);
  if (r < 0) throwErrno("ioctl");
  return r;
}

/**
 * setsid(2): makes the calling process the leader of a new session and
 * process group, without a controlling terminal, so that signals sent to
 * its parent's process group or by its terminal no longer reach it.
 * Returns the new session id; throws a {@link SyscallError} (EPERM for a
 * process group leader).
 */
export function setsid(): number {
  const r = lib().setsid();
  if (r < 0) throwErrno("setsid");
  return r;
}
