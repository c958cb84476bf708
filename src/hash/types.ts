/**
 * The checksum interface shared by every page hash in src/hash/.
 *
 * @module
 */
import { PAGE_HASHED, PAGE_ZERO } from "../pages/flags.ts";

/** The checksum names mergemem accepts. */
export type ChecksumName =
  | "fast"
  | "xxh64"
  | "crc32"
  | "addrot"
  | "scl"
  | "const";

/**
 * Where page hashes are written: page k of a call goes to index
 * `offset + k` (or the index the call names) of each array.
 */
export interface PageHashOutput {
  /** Low 32 bits of each page's 64-bit hash. */
  hashLo: Uint32Array;
  /** High 32 bits of each page's 64-bit hash. */
  hashHi: Uint32Array;
  /** PAGE_HASHED | PAGE_ZERO (src/pages/flags.ts) per page; 0 if not read. */
  flags: Uint8Array;
  /** Index of the first page of the call's runs. */
  offset: number;
}

/** The flags of a hashed page: hashed, and zero-filled or not. */
export function hashedFlags(zero: boolean): number {
  return zero ? PAGE_HASHED | PAGE_ZERO : PAGE_HASHED;
}

/** A page checksum. Hashes are 64-bit; 32-bit checksums are zero-extended. */
export interface Checksum {
  /** The name used on the command line and in results. */
  readonly name: ChecksumName;
  /** One line for --help and docs. */
  readonly description: string;
  /** The checksum of arbitrary bytes (for tests and known vectors). */
  digest(data: Uint8Array): bigint;
  /**
   * Hashes `count` whole pages of `pageSize` bytes from `words` (a
   * Uint32Array view of the batch buffer; `byteOffset` must be a multiple
   * of 4) and writes page k's hash to `out.hashLo/hashHi[outIndex + k]` and
   * its flags (PAGE_HASHED, plus PAGE_ZERO for an all-zero page) to
   * `out.flags[outIndex + k]`. Must give the same value as {@link digest}.
   */
  hashPages(
    words: Uint32Array,
    byteOffset: number,
    count: number,
    pageSize: number,
    out: PageHashOutput,
    outIndex: number,
  ): void;
  /**
   * Optional: a buffer of `size` bytes that {@link hashPages} hashes in
   * place, without a copy (read batches are allocated with it). It lives
   * as long as the program; a checksum without it hashes any buffer.
   */
  pageBuffer?(size: number): Uint8Array<ArrayBuffer>;
}

/** True if `n` words from `words[start]` are all zero. Stops at the first
 * non-zero word, so it costs next to nothing for ordinary pages. */
export function isZero(words: Uint32Array, start: number, n: number): boolean {
  const end = start + n;
  for (let i = start; i < end; i++) if (words[i] !== 0) return false;
  return true;
}

/** A bigint from two 32-bit halves. */
export function toBigInt(lo: number, hi: number): bigint {
  return (BigInt(hi >>> 0) << 32n) | BigInt(lo >>> 0);
}

/**
 * Builds {@link Checksum.hashPages} from a per-page function that returns
 * the low half and stores the high half in `hi[0]`.
 */
export function perPage(
  fn: (words: Uint32Array, start: number, n: number, hi: Uint32Array) => number,
): Checksum["hashPages"] {
  const hi = new Uint32Array(1);
  return (words, byteOffset, count, pageSize, out, outIndex) => {
    const n = pageSize >>> 2;
    let w = byteOffset >>> 2;
    for (let k = 0; k < count; k++, w += n) {
      hi[0] = 0;
      const lo = fn(words, w, n, hi);
      out.hashLo[outIndex + k] = lo;
      out.hashHi[outIndex + k] = hi[0];
      out.flags[outIndex + k] = hashedFlags(isZero(words, w, n));
    }
  };
}

/** A Uint32Array over a copy of `data` zero-padded to a multiple of 4. */
export function wordsOf(data: Uint8Array): Uint32Array {
  const padded = new Uint8Array((data.length + 3) & ~3);
  padded.set(data);
  return new Uint32Array(padded.buffer);
}
