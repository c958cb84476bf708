/**
 * "fast", the default checksum: four independent 32-bit multiply-rotate
 * lanes over the page as 32-bit words (lane j takes words j, j+4, ...),
 * folded into 64 bits. Independent lanes let the CPU overlap the multiply
 * latencies, and the OR of all words, kept on the side, detects zero pages
 * for free. Not a cryptographic hash; collisions are harmless because the
 * scan confirms every duplicate byte by byte.
 *
 * Data whose length is not a multiple of 16 is zero-padded, and the length
 * is mixed in, so digest() is defined for any input.
 *
 * @module
 */
import { type Checksum, hashedFlags, toBigInt, wordsOf } from "./types.ts";

const P1 = 0x9e3779b1 | 0;
const P2 = 0x85ebca77 | 0;
const P3 = 0xc2b2ae3d | 0;
const P4 = 0x27d4eb2f | 0;

function fmix(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  return (h ^ (h >>> 16)) >>> 0;
}

/** Hashes n words (n a multiple of 4) from start; returns lo, sets out. */
function fastCore(
  words: Uint32Array,
  start: number,
  n: number,
  len: number,
  res: Uint32Array,
): boolean {
  let a = P1, b = P2, c = P3, d = P4, z = 0;
  const end = start + n;
  for (let i = start; i < end; i += 4) {
    const w0 = words[i], w1 = words[i + 1], w2 = words[i + 2];
    const w3 = words[i + 3];
    z |= w0 | w1 | w2 | w3;
    a = Math.imul(a ^ w0, P1);
    b = Math.imul(b ^ w1, P2);
    c = Math.imul(c ^ w2, P3);
    d = Math.imul(d ^ w3, P4);
    a = (a << 13) | (a >>> 19);
    b = (b << 17) | (b >>> 15);
    c = (c << 11) | (c >>> 21);
    d = (d << 19) | (d >>> 13);
  }
  res[0] = fmix((a + ((b << 7) | (b >>> 25)) + Math.imul(c, P2) + d + len) | 0);
  res[1] = fmix(
    (((a << 5) | (a >>> 27)) ^ b ^ ((c << 16) | (c >>> 16)) ^ Math.imul(d, P1) ^
      len) | 0,
  );
  return z === 0;
}

const res = new Uint32Array(2);

/** The default checksum. */
export const fastChecksum: Checksum = {
  name: "fast",
  description: "4-lane 32-bit multiply-rotate, 64-bit result (default)",
  digest(data) {
    const padded = new Uint8Array((data.length + 15) & ~15);
    padded.set(data);
    const w = wordsOf(padded);
    fastCore(w, 0, w.length, data.length, res);
    return toBigInt(res[0], res[1]);
  },
  hashPages(words, byteOffset, count, pageSize, out, outIndex) {
    const n = pageSize >>> 2;
    let w = byteOffset >>> 2;
    for (let k = 0; k < count; k++, w += n) {
      const zero = fastCore(words, w, n, pageSize, res);
      out.hashLo[outIndex + k] = res[0];
      out.hashHi[outIndex + k] = res[1];
      out.flags[outIndex + k] = hashedFlags(zero);
    }
  },
};
