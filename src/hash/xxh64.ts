/**
 * "xxh64", XXH64 with seed 0: the hash the kernel module computes in place
 * (MERGEMEM_IOC_PAGEINFO), so the user and kernel back-ends give identical
 * values for the same page.
 *
 * Computed by a small WebAssembly module (xxh64.wat) that hashes a whole
 * batch of pages per call in the memory they were read into: the read
 * buffers of the user back-end are allocated in that memory
 * ({@link Checksum.pageBuffer}), so a page is never copied and no BigInt
 * is made per page. Measured against xxhash-wasm (npm), libxxhash through
 * FFI and hand-written JavaScript in bench/README.md, "xxh64
 * implementations".
 *
 * @module
 */
import { PAGE_HASHED, PAGE_ZERO } from "../pages/flags.ts";
import type { Checksum, PageHashOutput } from "./types.ts";
import { XXH64_WASM } from "./xxh64_wasm.ts";

/** Bytes of the module's memory: fixed, so its address never changes. */
const MEMORY_BYTES = 8 << 20;
/** The copy area, for bytes that lie outside the module's memory. */
const SCRATCH_AT = 0;
const SCRATCH_BYTES = 1 << 20;
/** Pages hashed per call of hash_pages (its output area's size). */
const GROUP = 256;
const OUT_AT = SCRATCH_AT + SCRATCH_BYTES;
const ZERO_AT = OUT_AT + 8 * GROUP;
/** Where {@link xxh64Checksum}.pageBuffer hands out memory. */
const HEAP_AT = ZERO_AT + GROUP;

const memory = new WebAssembly.Memory({
  initial: MEMORY_BYTES >> 16,
  maximum: MEMORY_BYTES >> 16,
});
// Compiled synchronously: 840 bytes, and no top-level await for importers.
const { exports } = new WebAssembly.Instance(
  new WebAssembly.Module(XXH64_WASM),
  { env: { memory } },
);
const wasmXxh64 = exports.xxh64 as (p: number, len: number) => bigint;
const hashPagesAt = exports.hash_pages as (
  src: number,
  count: number,
  size: number,
  out: number,
  zero: number,
) => void;
const bytes = new Uint8Array(memory.buffer);
const words = new Uint32Array(memory.buffer);
let heapTop = HEAP_AT;

/** XXH64 (seed 0) of up to 1 MiB of bytes. */
export function xxh64(data: Uint8Array): bigint {
  if (data.length > SCRATCH_BYTES) {
    throw new RangeError(`xxh64: at most ${SCRATCH_BYTES} bytes at once`);
  }
  bytes.set(data, SCRATCH_AT);
  return BigInt.asUintN(64, wasmXxh64(SCRATCH_AT, data.length));
}

/** Hashes `count` pages at `addr` of the module's memory into `out`. */
function hashInPlace(
  addr: number,
  count: number,
  pageSize: number,
  out: PageHashOutput,
  outIndex: number,
): void {
  for (let k = 0; k < count; k += GROUP) {
    const n = Math.min(GROUP, count - k);
    hashPagesAt(addr + k * pageSize, n, pageSize, OUT_AT, ZERO_AT);
    const o = outIndex + k;
    for (let j = 0, w = OUT_AT >>> 2; j < n; j++, w += 2) {
      out.hashLo[o + j] = words[w];
      out.hashHi[o + j] = words[w + 1];
      out.flags[o + j] = bytes[ZERO_AT + j]
        ? PAGE_HASHED | PAGE_ZERO
        : PAGE_HASHED;
    }
  }
}

/** XXH64 (seed 0) as the kernel module computes it. */
export const xxh64Checksum: Checksum = {
  name: "xxh64",
  description: "XXH64, seed 0: the same values as the kernel back-end",
  digest: xxh64,
  hashPages(src, byteOffset, count, pageSize, out, outIndex) {
    const at = src.byteOffset + byteOffset;
    if (src.buffer === memory.buffer) {
      hashInPlace(at, count, pageSize, out, outIndex);
      return;
    }
    // Elsewhere: through the copy area, as many pages at a time as fit.
    const per = Math.max(1, Math.floor(SCRATCH_BYTES / pageSize));
    for (let k = 0; k < count; k += per) {
      const n = Math.min(per, count - k);
      bytes.set(
        new Uint8Array(src.buffer, at + k * pageSize, n * pageSize),
        SCRATCH_AT,
      );
      hashInPlace(SCRATCH_AT, n, pageSize, out, outIndex + k);
    }
  },
  pageBuffer(size) {
    const start = heapTop;
    const end = start + size;
    if (end > MEMORY_BYTES) return new Uint8Array(size);
    heapTop = end;
    return new Uint8Array(memory.buffer as ArrayBuffer, start, size);
  },
};
