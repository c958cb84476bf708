import { deepStrictEqual as eq } from "node:assert/strict";
import { CHECKSUMS, crc32, xxh64 } from "../../src/hash/mod.ts";

const enc = (s: string) => new TextEncoder().encode(s);
/** XXH64 (seed 0) of a 4096-byte zero page, computed with libxxhash. */
const ZERO_PAGE_XXH64 = 0xac869b6f32d8bbdbn;

Deno.test("crc32: check value and empty input", () => {
  eq(crc32(enc("123456789")), 0xcbf43926);
  eq(crc32(enc("")), 0);
  eq(
    CHECKSUMS.crc32.digest(enc("The quick brown fox jumps over the lazy dog")),
    0x414fa339n,
  );
});

Deno.test("xxh64: known vectors (seed 0)", () => {
  eq(xxh64(enc("")), 0xEF46DB3751D8E999n);
  eq(xxh64(enc("a")), 0xD24EC4F1A98C6E5Bn);
  eq(xxh64(enc("abc")), 0x44BC2CF5AD770999n);
  eq(
    xxh64(enc("Nobody inspects the spammish repetition")),
    0xFBCEA83C8A378BF1n,
  );
});

Deno.test("xxh64: a page hashes as the kernel's xxh64 does (vector)", () => {
  // XXH64 of a zero page, seed 0, as the module computes it for the shared
  // zero page (zero_page_hash in kmod/pageinfo.c); from libxxhash.
  eq(xxh64(new Uint8Array(4096)), ZERO_PAGE_XXH64);
});

Deno.test("hashPages equals digest and detects zero pages, every checksum", () => {
  const buf = new Uint8Array(3 * 4096);
  for (let i = 0; i < 4096; i++) buf[i] = i & 0xff;
  buf[2 * 4096 + 100] = 1;
  const words = new Uint32Array(buf.buffer);
  for (const c of Object.values(CHECKSUMS)) {
    const out = {
      hashLo: new Uint32Array(3),
      hashHi: new Uint32Array(3),
      flags: new Uint8Array(3),
      offset: 0,
    };
    c.hashPages(words, 0, 3, 4096, out, 0);
    eq([...out.flags], [1, 3, 1], c.name);
    for (let k = 0; k < 3; k++) {
      const d = c.digest(buf.subarray(k * 4096, (k + 1) * 4096));
      eq((BigInt(out.hashHi[k]) << 32n) | BigInt(out.hashLo[k]), d, c.name);
    }
  }
  eq(CHECKSUMS.addrot.digest(new Uint8Array([1, 0, 0, 0, 2, 0, 0, 0])), 4n);
});
