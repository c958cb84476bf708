/**
 * "crc32", the IEEE 802.3 CRC-32 (reflected, polynomial 0xEDB88320, initial
 * and final XOR 0xFFFFFFFF; check value crc32("123456789") = 0xCBF43926),
 * table-driven, one byte at a time. 32 bits, zero-extended to 64.
 *
 * @module
 */
import { type Checksum, hashedFlags, isZero } from "./types.ts";

const TABLE = (() => {
  const t = new Int32Array(256);
  for (let n = 0; n < 256; n++) {
    let c = n;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[n] = c;
  }
  return t;
})();

/** CRC-32 of `len` bytes of `bytes` from `start`. */
export function crc32(
  bytes: Uint8Array,
  start = 0,
  len = bytes.length,
): number {
  let c = -1;
  const end = start + len;
  for (let i = start; i < end; i++) {
    c = TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  }
  return (c ^ -1) >>> 0;
}

/** The CRC-32 checksum. */
export const crc32Checksum: Checksum = {
  name: "crc32",
  description: "IEEE CRC-32, table-driven (1999 mergemem)",
  digest: (data) => BigInt(crc32(data)),
  hashPages(words, byteOffset, count, pageSize, out, outIndex) {
    const bytes = new Uint8Array(words.buffer, words.byteOffset);
    const n = pageSize >>> 2;
    for (let k = 0; k < count; k++) {
      const off = byteOffset + k * pageSize;
      out.hashLo[outIndex + k] = crc32(bytes, off, pageSize);
      out.hashHi[outIndex + k] = 0;
      out.flags[outIndex + k] = hashedFlags(isZero(words, off >>> 2, n));
    }
  },
};
