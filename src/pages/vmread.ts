/**
 * Reading another process's pages with process_vm_readv(2), in batches:
 * one local iovec (the batch buffer) and up to IOV_MAX remote iovecs, each
 * a run of contiguous pages. Only ever called on pages that pagemap showed
 * present, so no page is faulted in (apart from the unavoidable race with
 * reclaim between the pagemap read and this one).
 *
 * @module
 */
import { SyscallError } from "../errors.ts";
import { errno, errnoName, lib } from "../ffi/libc.ts";

/** The kernel's limit on iovecs per call. */
const IOV_MAX = 1024;

/** errno values that mean "this process cannot be read at all". */
const FATAL = new Set(["ESRCH", "EPERM", "EACCES"]);

/** The address of a buffer, for building iovecs. */
export function addressOf(buf: Uint8Array): bigint {
  return BigInt(Deno.UnsafePointer.value(Deno.UnsafePointer.of(buf)));
}

/**
 * A reusable batch: a page buffer and its iovec arrays. Pages are packed
 * in the buffer in the order they were added.
 */
export interface ReadBatch {
  /** The page contents. */
  bytes: Uint8Array<ArrayBuffer>;
  /** The same memory as u32 words. */
  words: Uint32Array<ArrayBuffer>;
  /** The local iovec (one entry: the buffer). */
  local: BigUint64Array<ArrayBuffer>;
  /** Remote iovecs: base, length pairs. */
  remote: BigUint64Array<ArrayBuffer>;
  /** The same memory as u32 halves (written without BigInt). */
  remote32: Uint32Array<ArrayBuffer>;
  /** End address of the last remote iovec. */
  lastEnd: number;
  /** Remote iovecs in use. */
  iovs: number;
  /** Pages in use. */
  pages: number;
  /** Capacity in pages. */
  capacity: number;
  /** Address of `bytes`. */
  base: bigint;
  /** Page size. */
  pageSize: number;
}

/**
 * Allocates a batch of `capacity` pages, in `alloc`'s memory when given
 * (e.g. a checksum's pageBuffer, hashed in place).
 */
export function newBatch(
  capacity: number,
  pageSize: number,
  alloc?: (size: number) => Uint8Array<ArrayBuffer>,
): ReadBatch {
  const bytes = alloc?.(capacity * pageSize) ??
    new Uint8Array(capacity * pageSize);
  const remote = new BigUint64Array(2 * IOV_MAX);
  const b: ReadBatch = {
    bytes,
    words: new Uint32Array(bytes.buffer, bytes.byteOffset, bytes.length >>> 2),
    local: new BigUint64Array(2),
    remote,
    remote32: new Uint32Array(remote.buffer),
    lastEnd: -1,
    iovs: 0,
    pages: 0,
    capacity,
    base: addressOf(bytes),
    pageSize,
  };
  b.local[0] = b.base;
  return b;
}

/** Empties a batch. */
export function resetBatch(b: ReadBatch): void {
  b.iovs = 0;
  b.lastEnd = -1;
  b.pages = 0;
}

/**
 * Adds up to `pages` pages from `addr`, extending the last iovec when
 * contiguous. Returns how many pages fit (0 when the batch is full).
 */
export function addPages(b: ReadBatch, addr: number, pages: number): number {
  const n = Math.min(pages, b.capacity - b.pages);
  if (n <= 0) return 0;
  // Lengths stay below 2^32 (a batch is far smaller); no BigInt is made.
  const len = n * b.pageSize;
  const r = b.remote32;
  if (b.iovs > 0 && b.lastEnd === addr) {
    r[4 * (b.iovs - 1) + 2] += len;
    b.lastEnd += len;
    b.pages += n;
    return n;
  }
  if (b.iovs === IOV_MAX) return 0;
  const i = 4 * b.iovs;
  r[i] = addr >>> 0;
  r[i + 1] = Math.floor(addr / 4294967296);
  r[i + 2] = len;
  r[i + 3] = 0;
  b.lastEnd = addr + len;
  b.iovs++;
  b.pages += n;
  return n;
}

/** Starts reading a whole batch on another thread; resolves to the result
 * of process_vm_readv (bytes, or -1 with errno unknowable there). */
export function readBatchAsync(pid: number, b: ReadBatch): Promise<number> {
  b.local[1] = BigInt(b.pages * b.pageSize);
  return lib().process_vm_readv_async(
    pid,
    b.local,
    1n,
    b.remote,
    BigInt(b.iovs),
    0n,
  )
    .then(Number);
}

/**
 * Reads a whole batch on this thread. `ok[k]` is set to 1 for each page k
 * that was read and 0 for one that could not be (unmapped or gone since
 * pagemap). A short read is continued page by page, so one bad page costs
 * only itself.
 *
 * @throws {SyscallError} ESRCH, EPERM or EACCES: the process is gone or
 *   may not be read.
 */
export function readBatchSync(pid: number, b: ReadBatch, ok: Uint8Array): void {
  const total = b.pages * b.pageSize;
  b.local[1] = BigInt(total);
  const r = Number(
    lib().process_vm_readv(pid, b.local, 1n, b.remote, BigInt(b.iovs), 0n),
  );
  if (r === total) {
    ok.fill(1, 0, b.pages);
    return;
  }
  if (r < 0) checkFatal();
  readPagewise(pid, b, ok);
}

/** Reads a batch one page per call, marking each page's outcome. */
function readPagewise(pid: number, b: ReadBatch, ok: Uint8Array): void {
  const local = new BigUint64Array(2);
  const remote = new BigUint64Array(2);
  const ps = BigInt(b.pageSize);
  local[1] = ps;
  remote[1] = ps;
  let k = 0;
  for (let i = 0; i < b.iovs; i++) {
    const base = b.remote[2 * i];
    const n = Number(b.remote[2 * i + 1] / ps);
    for (let j = 0; j < n; j++, k++) {
      local[0] = b.base + BigInt(k) * ps;
      remote[0] = base + BigInt(j) * ps;
      const r = Number(lib().process_vm_readv(pid, local, 1n, remote, 1n, 0n));
      if (r === b.pageSize) ok[k] = 1;
      else {
        if (r < 0) checkFatal();
        ok[k] = 0;
      }
    }
  }
}

function checkFatal(): void {
  const e = errno();
  const name = errnoName(e);
  if (FATAL.has(name)) throw new SyscallError("process_vm_readv", e, name);
}

/** The remote range of iovec `i` of a batch: [address, length]. */
function remoteRange(b: ReadBatch, i: number): [number, number] {
  const r = b.remote32;
  return [r[4 * i] + r[4 * i + 1] * 4294967296, r[4 * i + 2]];
}

/**
 * Batches with at most this many runs are read through /proc/PID/mem on
 * worker threads (one pread each, at once); more runs are read here, one
 * after the other: a thread hand-off per small run would cost more than
 * the read.
 */
const MEM_ASYNC_MAX_RUNS = 8;

/**
 * Reads a whole batch through /proc/PID/mem (open as `memFd`): no page
 * pin, so shared pages stay shared (PageRuns.noPin). Resolves to true if
 * every page was read; false means "redo it with {@link readBatchMemSync}",
 * which tells the pages apart and reports a lost process.
 */
export async function readBatchMemAsync(
  memFd: number,
  b: ReadBatch,
): Promise<boolean> {
  if (b.iovs > MEM_ASYNC_MAX_RUNS) {
    return readRunsMem(memFd, b, null);
  }
  const reads: Promise<number | bigint>[] = [];
  let off = 0;
  for (let i = 0; i < b.iovs; i++) {
    const [addr, len] = remoteRange(b, i);
    reads.push(
      lib().pread_async(
        memFd,
        b.bytes.subarray(off, off + len),
        BigInt(len),
        BigInt(addr),
      ),
    );
    off += len;
  }
  const got = await Promise.all(reads);
  return got.every((n, i) => Number(n) === remoteRange(b, i)[1]);
}

/**
 * Reads a batch through /proc/PID/mem on this thread, run by run and,
 * where a run fails, page by page: `ok[k]` is 1 for each page k read and 0
 * for one that could not be (unmapped meanwhile).
 *
 * @throws {SyscallError} ESRCH, EPERM or EACCES: the process is gone or
 *   may not be read.
 */
export function readBatchMemSync(
  memFd: number,
  b: ReadBatch,
  ok: Uint8Array,
): void {
  readRunsMem(memFd, b, ok);
}

/** Runs of a batch through pread, this thread; see readBatchMemSync. */
function readRunsMem(
  memFd: number,
  b: ReadBatch,
  ok: Uint8Array | null,
): boolean {
  const ps = b.pageSize;
  let k = 0, all = true;
  for (let i = 0; i < b.iovs; i++) {
    const [addr, len] = remoteRange(b, i);
    const n = len / ps;
    if (preadMem(memFd, b.bytes.subarray(k * ps, k * ps + len), addr)) {
      ok?.fill(1, k, k + n);
    } else if (!ok) return false;
    else {
      all = false;
      for (let j = 0; j < n; j++) {
        const at = (k + j) * ps;
        ok[k + j] =
          preadMem(memFd, b.bytes.subarray(at, at + ps), addr + j * ps) ? 1 : 0;
      }
    }
    k += n;
  }
  return all;
}

/** One pread of /proc/PID/mem: true if all of `dst` was read. */
function preadMem(memFd: number, dst: Uint8Array<ArrayBuffer>, addr: number) {
  const r = Number(lib().pread(memFd, dst, BigInt(dst.length), BigInt(addr)));
  if (r === dst.length) return true;
  if (r < 0) {
    const e = errno();
    const name = errnoName(e);
    if (FATAL.has(name)) throw new SyscallError("pread", e, name);
  }
  return false;
}

/**
 * Reads into `bytes` from `addr` of another process through its open
 * /proc/PID/mem, which (unlike process_vm_readv) takes no page pin and so
 * never unshares a COW-shared or KSM page. Returns how many bytes were
 * read: fewer than asked when the process's memory is gone (its exit).
 *
 * @throws the read's error: EIO when the range, or its rest after a
 *   partial read, is not mapped (unmapped meanwhile); ESRCH, EACCES or
 *   EPERM when the process is gone or no longer readable.
 */
export function readMem(
  mem: Deno.FsFile,
  addr: number | bigint,
  bytes: Uint8Array,
): number {
  mem.seekSync(addr, Deno.SeekMode.Start);
  let got = 0;
  while (got < bytes.length) {
    const n = mem.readSync(bytes.subarray(got));
    if (!n) break;
    got += n;
  }
  return got;
}
