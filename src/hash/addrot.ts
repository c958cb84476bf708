/**
 * "addrot", the 1999 mergemem's add-and-rotate checksum: over the data as
 * little-endian 32-bit words, h = rotl32(h, 1) + w (mod 2^32), from h = 0.
 * A trailing partial word is zero-padded. 32 bits, zero-extended to 64.
 *
 * @module
 */
import { type Checksum, perPage, wordsOf } from "./types.ts";

function addrot(words: Uint32Array, start: number, n: number): number {
  let h = 0;
  const end = start + n;
  for (let i = start; i < end; i++) {
    h = (((h << 1) | (h >>> 31)) + words[i]) | 0;
  }
  return h >>> 0;
}

/** The add-and-rotate checksum. */
export const addrotChecksum: Checksum = {
  name: "addrot",
  description: "add-and-rotate over 32-bit words (1999 mergemem)",
  digest(data) {
    const w = wordsOf(data);
    return BigInt(addrot(w, 0, w.length));
  },
  hashPages: perPage(addrot),
};
