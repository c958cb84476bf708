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

// One Uint8Array view per page of each buffer hashed, made once: a view
// per page per call would be garbage the size of the table.
const viewCache = new WeakMap<ArrayBufferLike, Uint8Array[]>();

/** The page views of words' whole buffer (page-aligned offsets). */
function pageViews(words: Uint32Array, pageSize: number): Uint8Array[] {
  let v = viewCache.get(words.buffer);
  if (!v || v.length === 0 || v[0].length !== pageSize) {
    v = [];
    for (let o = 0; o + pageSize <= words.buffer.byteLength; o += pageSize) {
      v.push(new Uint8Array(words.buffer, o, pageSize));
    }
    viewCache.set(words.buffer, v);
  }
  return v;
}

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
    const views = pageViews(words, pageSize);
    const first = (words.byteOffset + byteOffset) / pageSize;
    for (let k = 0, w = byteOffset >>> 2; k < count; k++, w += n) {
      const v = Number.isInteger(first)
        ? views[first + k]
        : new Uint8Array(words.buffer, words.byteOffset + w * 4, pageSize);
      cell64[0] = h64Raw(v, 0n);
      out.hashLo[outIndex + k] = cell32[0];
      out.hashHi[outIndex + k] = cell32[1];
      out.flags[outIndex + k] = hashedFlags(isZero(words, w, n));
    }
  },
};
