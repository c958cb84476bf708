/**
 * "xxh64", XXH64 with seed 0: the hash the kernel module computes in place
 * (MERGEMEM_IOC_PAGEINFO), so the user and kernel back-ends give identical
 * values for the same page. Implemented twice:
 *
 * - {@link xxh64Ref}: a plain BigInt transcription of the specification,
 *   for any input; slow, the reference the tests use.
 * - the page path: 64-bit arithmetic on pairs of 32-bit halves, which
 *   avoids BigInt allocation; for lengths that are a multiple of 32.
 *
 * Pages are hashed by the system's libxxhash (libxxhash.so.0, XXH64)
 * through FFI when it can be loaded (about 40x faster than the JS page
 * path), else by the JS page path; both give the same values. Setting
 * MERGEMEM_NO_LIBXXHASH=1 forces the JS path.
 *
 * @module
 */
import { type Checksum, hashedFlags, isZero } from "./types.ts";

const M64 = (1n << 64n) - 1n;
const BP1 = 0x9E3779B185EBCA87n;
const BP2 = 0xC2B2AE3D27D4EB4Fn;
const BP3 = 0x165667B19E3779F9n;
const BP4 = 0x85EBCA77C2B2AE63n;
const BP5 = 0x27D4EB2F165667C5n;

function rotl64(x: bigint, r: bigint): bigint {
  return ((x << r) | (x >> (64n - r))) & M64;
}
function roundRef(acc: bigint, input: bigint): bigint {
  acc = (acc + input * BP2) & M64;
  return (rotl64(acc, 31n) * BP1) & M64;
}
function mergeRef(acc: bigint, v: bigint): bigint {
  acc ^= roundRef(0n, v);
  return (acc * BP1 + BP4) & M64;
}

/** XXH64 of `data` with `seed`, straight from the specification. */
export function xxh64Ref(data: Uint8Array, seed = 0n): bigint {
  const dv = new DataView(data.buffer, data.byteOffset, data.byteLength);
  const len = data.length;
  let p = 0;
  let h: bigint;
  if (len >= 32) {
    let v1 = (seed + BP1 + BP2) & M64;
    let v2 = (seed + BP2) & M64;
    let v3 = seed;
    let v4 = (seed - BP1) & M64;
    while (p + 32 <= len) {
      v1 = roundRef(v1, dv.getBigUint64(p, true));
      v2 = roundRef(v2, dv.getBigUint64(p + 8, true));
      v3 = roundRef(v3, dv.getBigUint64(p + 16, true));
      v4 = roundRef(v4, dv.getBigUint64(p + 24, true));
      p += 32;
    }
    h = (rotl64(v1, 1n) + rotl64(v2, 7n) + rotl64(v3, 12n) + rotl64(v4, 18n)) &
      M64;
    h = mergeRef(h, v1);
    h = mergeRef(h, v2);
    h = mergeRef(h, v3);
    h = mergeRef(h, v4);
  } else {
    h = (seed + BP5) & M64;
  }
  h = (h + BigInt(len)) & M64;
  while (p + 8 <= len) {
    h ^= roundRef(0n, dv.getBigUint64(p, true));
    h = (rotl64(h, 27n) * BP1 + BP4) & M64;
    p += 8;
  }
  if (p + 4 <= len) {
    h ^= (BigInt(dv.getUint32(p, true)) * BP1) & M64;
    h = (rotl64(h, 23n) * BP2 + BP3) & M64;
    p += 4;
  }
  while (p < len) {
    h ^= (BigInt(data[p]) * BP5) & M64;
    h = (rotl64(h, 11n) * BP1) & M64;
    p++;
  }
  h ^= h >> 33n;
  h = (h * BP2) & M64;
  h ^= h >> 29n;
  h = (h * BP3) & M64;
  h ^= h >> 32n;
  return h;
}

// ---- 32-bit-halves page path -------------------------------------------
// 64-bit values are (hi, lo) pairs of uint32; results go to module-level
// registers rh/rl so that nothing is allocated per operation.

const P1H = 0x9E3779B1, P1L = 0x85EBCA87;
const P2H = 0xC2B2AE3D, P2L = 0x27D4EB4F;
const P3H = 0x165667B1, P3L = 0x9E3779F9;
const P4H = 0x85EBCA77, P4L = 0xC2B2AE63;

let rh = 0, rl = 0;

/** High 32 bits of the 64-bit product of two uint32. */
function mulhi(a: number, b: number): number {
  const a0 = a & 0xffff, a1 = a >>> 16, b0 = b & 0xffff, b1 = b >>> 16;
  const p00 = a0 * b0, p01 = a0 * b1, p10 = a1 * b0;
  const mid = (p00 >>> 16) + (p01 & 0xffff) + (p10 & 0xffff);
  return (a1 * b1 + (p01 >>> 16) + (p10 >>> 16) + (mid >>> 16)) >>> 0;
}

/** (ah,al) * (bh,bl) mod 2^64 into rh/rl. */
function mul(ah: number, al: number, bh: number, bl: number): void {
  rl = Math.imul(al, bl) >>> 0;
  rh = (mulhi(al, bl) + Math.imul(ah, bl) + Math.imul(al, bh)) >>> 0;
}

/** (ah,al) + (bh,bl) mod 2^64 into rh/rl. */
function add(ah: number, al: number, bh: number, bl: number): void {
  const l = al + bl;
  rl = l >>> 0;
  rh = (ah + bh + (l > 0xffffffff ? 1 : 0)) >>> 0;
}

/** rotl64((h,l), r) into rh/rl, 0 < r < 64. */
function rotl(h: number, l: number, r: number): void {
  if (r >= 32) {
    const t = h;
    h = l;
    l = t;
    r -= 32;
  }
  if (r === 0) {
    rh = h >>> 0;
    rl = l >>> 0;
  } else {
    rh = ((h << r) | (l >>> (32 - r))) >>> 0;
    rl = ((l << r) | (h >>> (32 - r))) >>> 0;
  }
}

/** round(acc, input) into rh/rl. */
function round(ah: number, al: number, ih: number, il: number): void {
  mul(ih, il, P2H, P2L);
  add(ah, al, rh, rl);
  rotl(rh, rl, 31);
  mul(rh, rl, P1H, P1L);
}

/** XXH64 (seed 0) of n words from start, n a positive multiple of 8. */
function xxh64Words(words: Uint32Array, start: number, n: number): void {
  // v1 = P1 + P2, v2 = P2, v3 = 0, v4 = -P1
  add(P1H, P1L, P2H, P2L);
  let v1h = rh, v1l = rl;
  let v2h = P2H, v2l = P2L;
  let v3h = 0, v3l = 0;
  // -P1 mod 2^64
  let v4l = (-P1L) >>> 0;
  let v4h = (~P1H + (v4l === 0 ? 1 : 0)) >>> 0;
  const end = start + n;
  for (let i = start; i < end; i += 8) {
    round(v1h, v1l, words[i + 1], words[i]);
    v1h = rh;
    v1l = rl;
    round(v2h, v2l, words[i + 3], words[i + 2]);
    v2h = rh;
    v2l = rl;
    round(v3h, v3l, words[i + 5], words[i + 4]);
    v3h = rh;
    v3l = rl;
    round(v4h, v4l, words[i + 7], words[i + 6]);
    v4h = rh;
    v4l = rl;
  }
  rotl(v1h, v1l, 1);
  let hh = rh, hl = rl;
  rotl(v2h, v2l, 7);
  add(hh, hl, rh, rl);
  hh = rh;
  hl = rl;
  rotl(v3h, v3l, 12);
  add(hh, hl, rh, rl);
  hh = rh;
  hl = rl;
  rotl(v4h, v4l, 18);
  add(hh, hl, rh, rl);
  hh = rh;
  hl = rl;
  mergeRound(hh, hl, v1h, v1l);
  mergeRound(rh, rl, v2h, v2l);
  mergeRound(rh, rl, v3h, v3l);
  mergeRound(rh, rl, v4h, v4l);
  // h += len (n * 4 bytes, below 2^32 here)
  add(rh, rl, 0, n * 4);
  hh = rh;
  hl = rl;
  // avalanche: h ^= h >> 33; h *= P2; h ^= h >> 29; h *= P3; h ^= h >> 32
  hl = (hl ^ (hh >>> 1)) >>> 0;
  mul(hh, hl, P2H, P2L);
  hl = (rl ^ ((rl >>> 29) | (rh << 3))) >>> 0;
  hh = (rh ^ (rh >>> 29)) >>> 0;
  mul(hh, hl, P3H, P3L);
  rl = (rl ^ rh) >>> 0;
}

/** mergeRound(h, v) into rh/rl: (h ^ round(0, v)) * P1 + P4. */
function mergeRound(hh: number, hl: number, vh: number, vl: number): void {
  round(0, 0, vh, vl);
  mul((hh ^ rh) >>> 0, (hl ^ rl) >>> 0, P1H, P1L);
  add(rh, rl, P4H, P4L);
}

const cell64 = new BigUint64Array(1);
const cell32 = new Uint32Array(cell64.buffer);

type Xxh64Ffi = (ptr: number, len: number, seed: number) => number | bigint;
let native: Xxh64Ffi | null | undefined;

/** libxxhash's XXH64, or null when it cannot be loaded. */
function nativeXxh64(): Xxh64Ffi | null {
  if (native !== undefined) return native;
  native = null;
  try {
    if (Deno.env.get("MERGEMEM_NO_LIBXXHASH")) return native;
  } catch {
    // no --allow-env: use the library
  }
  for (const name of ["libxxhash.so.0", "libxxhash.so"]) {
    try {
      const lib = Deno.dlopen(name, {
        XXH64: { parameters: ["usize", "usize", "u64"], result: "u64" },
      });
      // Addresses go as numbers (exact below 2^53); FFI accepts them.
      native = lib.symbols.XXH64 as unknown as Xxh64Ffi;
      break;
    } catch {
      // not installed (or no --allow-ffi): try the next, then JS
    }
  }
  return native;
}

/** True when pages are hashed by libxxhash rather than in JS. */
export function xxh64Native(): boolean {
  return nativeXxh64() !== null;
}

/** XXH64 (seed 0) as the kernel module computes it. */
export const xxh64Checksum: Checksum = {
  name: "xxh64",
  description: "XXH64, seed 0: the same values as the kernel back-end",
  digest(data) {
    if (
      data.length > 0 && data.length % 32 === 0 && data.byteOffset % 4 === 0
    ) {
      const w = new Uint32Array(data.buffer, data.byteOffset, data.length / 4);
      xxh64Words(w, 0, w.length);
      return (BigInt(rh) << 32n) | BigInt(rl);
    }
    return xxh64Ref(data);
  },
  hashPages(words, byteOffset, count, pageSize, out, outIndex) {
    const n = pageSize >>> 2;
    let w = byteOffset >>> 2;
    const ffi = count > 0 ? nativeXxh64() : null;
    if (ffi) {
      const base = Number(
        Deno.UnsafePointer.value(Deno.UnsafePointer.of(words)),
      );
      for (let k = 0; k < count; k++, w += n) {
        // Split the u64 through a shared 8-byte cell: no BigInt arithmetic
        // (each & or >> would allocate another BigInt per page).
        const h = ffi(base + w * 4, pageSize, 0);
        if (typeof h === "bigint") {
          cell64[0] = h;
          out.hashLo[outIndex + k] = cell32[0];
          out.hashHi[outIndex + k] = cell32[1];
        } else {
          out.hashLo[outIndex + k] = h >>> 0;
          out.hashHi[outIndex + k] = Math.floor(h / 4294967296);
        }
        out.flags[outIndex + k] = hashedFlags(isZero(words, w, n));
      }
      return;
    }
    for (let k = 0; k < count; k++, w += n) {
      xxh64Words(words, w, n);
      out.hashLo[outIndex + k] = rl;
      out.hashHi[outIndex + k] = rh;
      out.flags[outIndex + k] = hashedFlags(isZero(words, w, n));
    }
  },
};
