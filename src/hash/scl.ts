/**
 * "scl", shift-carry-left/sum: two 32-bit halves over the data as
 * little-endian 32-bit words (a trailing partial word zero-padded).
 *
 * - low half: r = rcl33(r) + w, where rcl33 rotates the 33-bit value
 *   (carry, r) left by one: the bit shifted out of r becomes the carry
 *   shifted in next time, and the addition's own overflow sets the carry.
 * - high half: the plain 32-bit sum of the words.
 *
 * Cheap like the 1999 mergemem's checksums, and the sum half makes a page
 * whose words were merely reordered still differ in the low half.
 *
 * @module
 */
import { type Checksum, perPage, wordsOf } from "./types.ts";

function scl(
  words: Uint32Array,
  start: number,
  n: number,
  hi: Uint32Array,
): number {
  let r = 0;
  let carry = 0;
  let sum = 0;
  const end = start + n;
  for (let i = start; i < end; i++) {
    const w = words[i];
    const out = r >>> 31;
    const t = (((r << 1) | carry) >>> 0) + w;
    r = t >>> 0;
    carry = out | (t > 0xffffffff ? 1 : 0);
    sum = (sum + w) | 0;
  }
  hi[0] = sum;
  return r;
}

/** The shift-carry-left/sum checksum. */
export const sclChecksum: Checksum = {
  name: "scl",
  description: "shift-carry-left with a word sum (1999 mergemem style)",
  digest(data) {
    const w = wordsOf(data);
    const hi = new Uint32Array(1);
    const lo = scl(w, 0, w.length, hi);
    return (BigInt(hi[0]) << 32n) | BigInt(lo);
  },
  hashPages: perPage(scl),
};
