/**
 * The /dev/mergemem client: opens the device, performs the API handshake
 * and wraps PAGEINFO, MERGE and UNMERGE as typed functions. All struct
 * bytes go through src/kmod/uapi.ts.
 *
 * @module
 */
import {
  ErrorKind,
  ErrorReason,
  MergememError,
  SyscallError,
} from "../errors.ts";
import {
  closeFd,
  ioctl,
  ioctlAsync,
  O_RDONLY,
  O_RDWR,
  openFd,
} from "../ffi/libc.ts";
import {
  API_LAYOUT,
  FEATURE_NAMES,
  MERGEMEM_API,
  MERGEMEM_FEATURE_MERGE,
  MERGEMEM_FEATURE_PAGEINFO,
  MERGEMEM_FEATURE_THP,
  MERGEMEM_FEATURE_UNMERGE,
  MERGEMEM_IOC_API,
  MERGEMEM_IOC_MERGE,
  MERGEMEM_IOC_PAGEINFO,
  MERGEMEM_IOC_THP,
  MERGEMEM_IOC_UNMERGE,
  MERGEMEM_PAGEINFO_MAX,
  pack,
  PAGEINFO_ARGS_LAYOUT,
  PAGEINFO_LAYOUT,
  PAGEINFO_WORDS,
  RANGE_ARGS_LAYOUT,
  type StructValues,
  THP_ARGS_LAYOUT,
  unpack,
} from "./uapi.ts";

/** The device path. */
export const DEVICE_PATH = "/dev/mergemem";

/** The result of PAGEINFO: one hash and one flag word per page. */
export interface PageInfoBatch {
  /**
   * Low and high 32 bits of each page's xxh64 (valid when
   * MERGEMEM_PI_HASHED is set): halves, so that no BigInt is made per page.
   */
  hashLo: Uint32Array;
  /** High 32 bits of each page's xxh64 (see hashLo). */
  hashHi: Uint32Array;
  /** MERGEMEM_PI_* flags of each page. */
  flags: Uint32Array;
  /** How many entries the module wrote. */
  done: number;
}

/** The result of MERGE or UNMERGE. */
export interface RangeResult {
  /** VMAs newly marked (MERGE) or unmarked (UNMERGE). */
  vmasChanged: number;
  /** Total size of those VMAs. */
  bytesChanged: number;
  /** VMAs that already were in the requested state. */
  vmasUnchanged: number;
  /** VMAs KSM cannot handle, left untouched. */
  vmasSkipped: number;
}

/** The result of THP. */
export interface ThpResult {
  /** VMAs whose flags changed. */
  vmasChanged: number;
  /** Of those, VMAs that had VM_HUGEPAGE before. */
  vmasHugepage: number;
  /** VMAs already in the requested state. */
  vmasUnchanged: number;
  /** VMAs huge pages never apply to, left alone. */
  vmasSkipped: number;
}

/** An open, handshaken /dev/mergemem. */
export interface ModuleHandle {
  /** The module's API version. */
  readonly api: number;
  /** Every feature bit the module supports. */
  readonly features: bigint;
  /** Bit N set when the ioctl with _IOC_NR N is implemented. */
  readonly ioctls: bigint;
  /** The module's version as "major.minor.patch". */
  readonly moduleVersion: string;
  /**
   * Describes npages pages (≤ MERGEMEM_PAGEINFO_MAX) from start in the
   * process whose /proc/PID/mem is open as memFd.
   */
  pageinfo(memFd: number, start: bigint, npages: number): PageInfoBatch;
  /**
   * PAGEINFO on another thread (a nonblocking call), so that several calls,
   * and the caller's own work, run at once: the module then hashes on
   * every CPU. The module writes the entries into `out` (at least npages ×
   * PAGEINFO_LAYOUT.size bytes; read them through PAGEINFO_WORDS), which
   * must not be reused before the promise settles. Resolves to the number
   * of entries written; rejects as {@link pageinfo} throws.
   */
  pageinfoInto(
    memFd: number,
    start: bigint,
    npages: number,
    out: Uint8Array<ArrayBuffer>,
  ): Promise<number>;
  /** Marks every VMA intersecting [start, end) mergeable. */
  merge(memFd: number, start: bigint, end: bigint): RangeResult;
  /** Unmarks every VMA intersecting [start, end), breaking its merges. */
  unmerge(memFd: number, start: bigint, end: bigint): RangeResult;
  /**
   * THP: MERGEMEM_THP_* `flags` on every VMA intersecting [start, end)
   * (MERGEMEM_FEATURE_THP; check `features` first).
   */
  thp(memFd: number, start: bigint, end: bigint, flags: number): ThpResult;
  /** Closes the device. */
  close(): void;
}

/** Options of {@link openModule}. */
export interface OpenModuleOptions {
  /** The device path; tests point it elsewhere. */
  path?: string;
  /** Features the caller needs; the handshake fails without them. */
  features?: bigint;
}

/** Formats a (major << 16) | (minor << 8) | patch version. */
export function formatModuleVersion(v: number): string {
  return `${(v >>> 16) & 0xffff}.${(v >>> 8) & 0xff}.${v & 0xff}`;
}

/** Names the feature bits set in mask ("merge, unmerge"). */
export function featureNames(mask: bigint): string[] {
  const out: string[] = [];
  for (const [name, bit] of Object.entries(FEATURE_NAMES)) {
    if (mask & bit) out.push(name);
  }
  for (let b = 0n; b < 64n; b++) {
    const bit = 1n << b;
    if ((mask & bit) && !Object.values(FEATURE_NAMES).includes(bit)) {
      out.push(`bit${b}`);
    }
  }
  return out;
}

function pointerValue(buf: Uint8Array<ArrayBuffer>): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
}

/**
 * Opens /dev/mergemem and performs the MERGEMEM_IOC_API handshake.
 *
 * @throws MergememError NoModule when the device is absent or unusable,
 *   ModuleMismatch when the API version or a needed feature differs.
 */
export function openModule(opts: OpenModuleOptions = {}): ModuleHandle {
  const path = opts.path ?? DEVICE_PATH;
  const want = opts.features ?? 0n;
  let fd: number;
  try {
    fd = openFd(path, O_RDWR);
  } catch (err) {
    if (err instanceof SyscallError) {
      if (
        err.code === "ENOENT" || err.code === "ENODEV" || err.code === "ENXIO"
      ) {
        throw new MergememError(
          "mergemem kernel module not loaded",
          ErrorKind.NoModule,
        );
      }
      throw new MergememError(
        `cannot open ${path}: ${err.code}`,
        ErrorKind.NoModule,
        err.code === "EACCES" || err.code === "EPERM"
          ? { reason: ErrorReason.DeviceDenied }
          : undefined,
      );
    }
    throw err;
  }
  try {
    const arg = pack(API_LAYOUT, {
      api: BigInt(MERGEMEM_API),
      features: want,
    });
    let failed: SyscallError | undefined;
    try {
      ioctl(fd, MERGEMEM_IOC_API, arg);
    } catch (err) {
      if (!(err instanceof SyscallError)) throw err;
      failed = err;
    }
    const out = unpack(API_LAYOUT, arg);
    const api = Number(out.api);
    if (failed) {
      if (failed.code === "EINVAL" && api !== MERGEMEM_API) {
        throw new MergememError(
          `mergemem module speaks API ${api}, this mergemem speaks API ${MERGEMEM_API}`,
          ErrorKind.ModuleMismatch,
        );
      }
      if (failed.code === "EINVAL" && (out.features & want) !== want) {
        throw missingFeature(want & ~out.features, out.module_version);
      }
      if (failed.code === "ENOTTY") {
        throw new MergememError(
          `${path} does not understand the mergemem handshake (ENOTTY)`,
          ErrorKind.ModuleMismatch,
          { reason: ErrorReason.NotMergemem },
        );
      }
      throw new MergememError(
        `mergemem handshake failed: ${failed.code}`,
        ErrorKind.ModuleMismatch,
      );
    }
    if (api !== MERGEMEM_API) {
      throw new MergememError(
        `mergemem module speaks API ${api}, this mergemem speaks API ${MERGEMEM_API}`,
        ErrorKind.ModuleMismatch,
      );
    }
    if ((out.features & want) !== want) {
      throw missingFeature(want & ~out.features, out.module_version);
    }
    return makeHandle(
      fd,
      api,
      out.features,
      out.ioctls,
      Number(out.module_version),
    );
  } catch (err) {
    closeFd(fd);
    throw err;
  }
}

function missingFeature(missing: bigint, moduleVersion: bigint): MergememError {
  return new MergememError(
    `mergemem module ${formatModuleVersion(Number(moduleVersion))} lacks ` +
      `feature(s): ${featureNames(missing).join(", ")}`,
    ErrorKind.ModuleMismatch,
    { reason: ErrorReason.ModuleTooOld },
  );
}

function makeHandle(
  fd: number,
  api: number,
  features: bigint,
  ioctls: bigint,
  version: number,
): ModuleHandle {
  let open = true;
  const need = (bit: bigint) => {
    if (!open) throw new Error("mergemem module handle used after close()");
    if (!(features & bit)) throw missingFeature(bit, BigInt(version));
  };
  // PAGEINFO output buffer, grown on demand and reused across calls so a
  // whole scan does not allocate a megabyte per batch.
  let outBuf = new Uint8Array(0);
  // The checked arguments of a PAGEINFO call writing into `out`.
  const pageinfoArgs = (
    memFd: number,
    start: bigint,
    npages: number,
    out: Uint8Array<ArrayBuffer>,
  ): Uint8Array<ArrayBuffer> => {
    need(MERGEMEM_FEATURE_PAGEINFO);
    if (npages < 1 || npages > MERGEMEM_PAGEINFO_MAX) {
      throw new RangeError(
        `pageinfo: npages ${npages} out of 1..${MERGEMEM_PAGEINFO_MAX}`,
      );
    }
    if (out.length < npages * PAGEINFO_LAYOUT.size) {
      throw new RangeError(`pageinfo: output buffer too small`);
    }
    return pack(PAGEINFO_ARGS_LAYOUT, {
      mem_fd: BigInt(memFd),
      start,
      npages: BigInt(npages),
      out: pointerValue(out),
    });
  };

  const range = (
    cmd: bigint,
    memFd: number,
    start: bigint,
    end: bigint,
  ): RangeResult => {
    const arg = pack(RANGE_ARGS_LAYOUT, {
      mem_fd: BigInt(memFd),
      start,
      end,
    });
    ioctl(fd, cmd, arg);
    return toRange(unpack(RANGE_ARGS_LAYOUT, arg));
  };

  return {
    api,
    features,
    ioctls,
    moduleVersion: formatModuleVersion(version),
    pageinfo(memFd, start, npages) {
      const bytes = npages * PAGEINFO_LAYOUT.size;
      if (outBuf.length < bytes) outBuf = new Uint8Array(bytes);
      const arg = pageinfoArgs(memFd, start, npages, outBuf);
      ioctl(fd, MERGEMEM_IOC_PAGEINFO, arg);
      const done = Number(unpack(PAGEINFO_ARGS_LAYOUT, arg).done);
      const hashLo = new Uint32Array(done);
      const hashHi = new Uint32Array(done);
      const flags = new Uint32Array(done);
      const words = new Uint32Array(outBuf.buffer, 0, bytes >>> 2);
      const W = PAGEINFO_WORDS;
      for (let i = 0, w = 0; i < done; i++, w += W.stride) {
        hashLo[i] = words[w + W.hashLo];
        hashHi[i] = words[w + W.hashHi];
        flags[i] = words[w + W.flags];
      }
      return { hashLo, hashHi, flags, done };
    },
    async pageinfoInto(memFd, start, npages, out) {
      const arg = pageinfoArgs(memFd, start, npages, out);
      if (await ioctlAsync(fd, MERGEMEM_IOC_PAGEINFO, arg) < 0) {
        // errno stayed on the other thread: redo the call here, where a
        // failure throws with its errno.
        ioctl(fd, MERGEMEM_IOC_PAGEINFO, arg);
      }
      return Number(unpack(PAGEINFO_ARGS_LAYOUT, arg).done);
    },
    merge(memFd, start, end) {
      need(MERGEMEM_FEATURE_MERGE);
      return range(MERGEMEM_IOC_MERGE, memFd, start, end);
    },
    unmerge(memFd, start, end) {
      need(MERGEMEM_FEATURE_UNMERGE);
      return range(MERGEMEM_IOC_UNMERGE, memFd, start, end);
    },
    thp(memFd, start, end, flags) {
      need(MERGEMEM_FEATURE_THP);
      const arg = pack(THP_ARGS_LAYOUT, {
        mem_fd: BigInt(memFd),
        flags: BigInt(flags),
        start,
        end,
      });
      ioctl(fd, MERGEMEM_IOC_THP, arg);
      const r = unpack(THP_ARGS_LAYOUT, arg);
      return {
        vmasChanged: Number(r.vmas_changed),
        vmasHugepage: Number(r.vmas_hugepage),
        vmasUnchanged: Number(r.vmas_unchanged),
        vmasSkipped: Number(r.vmas_skipped),
      };
    },
    close() {
      if (open) closeFd(fd);
      open = false;
    },
  };
}

function toRange(
  r: StructValues<keyof typeof RANGE_ARGS_LAYOUT.fields>,
): RangeResult {
  return {
    vmasChanged: Number(r.vmas_changed),
    bytesChanged: Number(r.bytes_changed),
    vmasUnchanged: Number(r.vmas_unchanged),
    vmasSkipped: Number(r.vmas_skipped),
  };
}

/**
 * Opens /proc/PID/mem read-only, as PAGEINFO needs. Opening it is where the
 * kernel performs the ptrace-attach check (PTRACE_MODE_ATTACH_FSCREDS, LSMs
 * included), so holding the fd is the permission the module relies on.
 *
 * @throws MergememError AllDenied on EACCES/EPERM, NothingScannable when
 *   the process is gone.
 */
export function openProcMem(pid: number): number {
  return openProcMemMode(pid, O_RDONLY);
}

/**
 * Opens /proc/PID/mem read-write, as MERGE and UNMERGE need: the module
 * refuses to mark through an fd not open for writing (EBADF). Same checks
 * and errors as {@link openProcMem}.
 *
 * @throws MergememError AllDenied on EACCES/EPERM, NothingScannable when
 *   the process is gone.
 */
export function openProcMemForMarking(pid: number): number {
  return openProcMemMode(pid, O_RDWR);
}

function openProcMemMode(pid: number, flags: number): number {
  const path = `/proc/${pid}/mem`;
  try {
    return openFd(path, flags);
  } catch (err) {
    if (err instanceof SyscallError) {
      if (err.code === "EACCES" || err.code === "EPERM") {
        throw new MergememError(
          `permission denied: cannot open ${path} (ptrace access check)`,
          ErrorKind.AllDenied,
        );
      }
      if (err.code === "ENOENT" || err.code === "ESRCH") {
        throw new MergememError(
          `process ${pid} is gone`,
          ErrorKind.NothingScannable,
        );
      }
    }
    throw err;
  }
}

/** Closes an fd from {@link openProcMem} or {@link openProcMemForMarking}. */
export function closeProcMem(fd: number): void {
  closeFd(fd);
}
