/**
 * "xxh64", XXH64 with seed 0: the hash the kernel module computes in place
 * (MERGEMEM_IOC_PAGEINFO), so the user and kernel back-ends give identical
 * values for the same page.
 *
 * Computed by xxhash-wasm (npm, pinned), the fastest of the three ways
 * measured side by side (bench/README.md, "xxh64 implementations"): about
 * 8.5 GB/s on a page, against 7 GB/s for libxxhash through FFI and 0.13
 * GB/s for the hand-written 32-bit-halves JavaScript this replaces, with
 * no native library to install.
 *
 * @module
 */
// Inline and pinned rather than in deno.json's imports: install.sh's
// fallback launcher runs the sources with --no-config (no import map).
// deno-lint-ignore no-import-prefix
import xxhash from "npm:xxhash-wasm@1.1.0";
import { type Checksum, hashedFlags, isZero } from "./types.ts";

const { h64Raw } = await xxhash();

// Splits the u64 through a shared 8-byte cell, without BigInt arithmetic.
const cell64 = new BigUint64Array(1);
const cell32 = new Uint32Array(cell64.buffer);

/** XXH64 (seed 0) of any bytes. */
export function xxh64(data: Uint8Array): bigint {
  return h64Raw(data, 0n);
}

/** XXH64 (seed 0) as the kernel module computes it. */
export const xxh64Checksum: Checksum = {
  name: "xxh64",
  description: "XXH64, seed 0: the same values as the kernel back-end",
  digest: xxh64,
  hashPages(words, byteOffset, count, pageSize, out, outIndex) {
    const n = pageSize >>> 2;
    const bytes = new Uint8Array(words.buffer, words.byteOffset);
    for (let k = 0, w = byteOffset >>> 2; k < count; k++, w += n) {
      cell64[0] = h64Raw(bytes.subarray(w * 4, w * 4 + pageSize), 0n);
      out.hashLo[outIndex + k] = cell32[0];
      out.hashHi[outIndex + k] = cell32[1];
      out.flags[outIndex + k] = hashedFlags(isZero(words, w, n));
    }
  },
};
