import { deepStrictEqual as eq } from "node:assert/strict";
import { CHECKSUMS, crc32, xxh64Ref } from "../../src/hash/mod.ts";

const enc = (s: string) => new TextEncoder().encode(s);

Deno.test("crc32: check value and empty input", () => {
  eq(crc32(enc("123456789")), 0xcbf43926);
  eq(crc32(enc("")), 0);
  eq(
    CHECKSUMS.crc32.digest(enc("The quick brown fox jumps over the lazy dog")),
    0x414fa339n,
  );
});

Deno.test("xxh64: known vectors (seed 0)", () => {
  eq(xxh64Ref(enc("")), 0xEF46DB3751D8E999n);
  eq(xxh64Ref(enc("a")), 0xD24EC4F1A98C6E5Bn);
  eq(xxh64Ref(enc("abc")), 0x44BC2CF5AD770999n);
  eq(
    xxh64Ref(enc("Nobody inspects the spammish repetition")),
    0xFBCEA83C8A378BF1n,
  );
});

Deno.test("xxh64: the page path equals the reference, as libxxhash", () => {
  const page = new Uint8Array(4096);
  for (let i = 0; i < page.length; i++) page[i] = (i * 31 + 7) & 0xff;
  eq(CHECKSUMS.xxh64.digest(page), xxh64Ref(page));
  const lib = Deno.dlopen("libxxhash.so.0", {
    XXH64: { parameters: ["buffer", "usize", "u64"], result: "u64" },
  });
  try {
    eq(BigInt(lib.symbols.XXH64(page, 4096n, 0n)), xxh64Ref(page));
  } finally {
    lib.close();
  }
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
