import { deepStrictEqual as eq } from "node:assert/strict";
import { xxh64, xxh64Checksum } from "../../src/hash/xxh64.ts";
import { PAGE_HASHED, PAGE_ZERO } from "../../src/pages/flags.ts";

/** Bytes i of a vector: (i * 131 + 7) & 0xff. */
function vector(n: number): Uint8Array {
  const d = new Uint8Array(n);
  for (let i = 0; i < n; i++) d[i] = (i * 131 + 7) & 0xff;
  return d;
}

// Every path of the algorithm: under one stripe (32 bytes), whole stripes,
// and each tail (8-, 4- and 1-byte steps). Expected values from
// xxhash-wasm 1.1.0 (npm), the reference implementation compiled.
const VECTORS: [number, bigint][] = [
  [1, 0xa96c7f0ce858bbb7n],
  [2, 0xc22c6a70ad56bba6n],
  [3, 0xbed43740ee6332bbn],
  [4, 0xfa212ae44b3bb23dn],
  [5, 0xd339dcc9ac8e6776n],
  [7, 0x2744460dd675d2c0n],
  [8, 0x994b676b71ce94ddn],
  [9, 0x572b84c18b983af8n],
  [12, 0xb92f588ce720786en],
  [15, 0x09e6451ed2ff8b1dn],
  [16, 0x94ad0095e72b24d5n],
  [17, 0x1464f2eff23b5fe1n],
  [24, 0x0a3b0194f3afe0b8n],
  [31, 0x6711d55e306b5d8fn],
  [32, 0x07f7b8e3bc5d6e25n],
  [33, 0x09f85eeb4e1cbe9fn],
  [40, 0xd25150177ba46490n],
  [63, 0xb7c9968c066cb6a5n],
  [64, 0x50d4159a0411632en],
  [65, 0xd277176bff863efcn],
  [100, 0x9ddada11d3dc2d8fn],
  [1000, 0x0bf0bdbcc82eb373n],
  [4096, 0xcf05adf75aca30cfn],
];

Deno.test("xxh64: reference vectors of every length class", () => {
  for (const [n, want] of VECTORS) eq([n, xxh64(vector(n))], [n, want]);
});

Deno.test("xxh64: more than the copy area is refused, not truncated", () => {
  let threw = false;
  try {
    xxh64(new Uint8Array((1 << 20) + 1));
  } catch (e) {
    threw = e instanceof RangeError;
  }
  eq(threw, true);
});

// 300 pages: more than one hash_pages group (256), every 7th page zero.
const PAGES = 300;
const PS = 4096;
function fillPages(buf: Uint8Array) {
  for (let p = 0; p < PAGES; p++) {
    const page = buf.subarray(p * PS, (p + 1) * PS);
    if (p % 7 === 0) page.fill(0);
    else for (let i = 0; i < PS; i++) page[i] = (i * 31 + p * 17 + 1) & 0xff;
  }
}

function hashAll(buf: Uint8Array<ArrayBuffer>, offsetPages: number) {
  const n = PAGES - offsetPages;
  const out = {
    hashLo: new Uint32Array(n),
    hashHi: new Uint32Array(n),
    flags: new Uint8Array(n),
    offset: 0,
  };
  xxh64Checksum.hashPages(
    new Uint32Array(buf.buffer, buf.byteOffset, buf.length / 4),
    offsetPages * PS,
    n,
    PS,
    out,
    0,
  );
  return out;
}

Deno.test("xxh64: hashPages in its own memory and in any buffer agree with digest", () => {
  const own = xxh64Checksum.pageBuffer!(PAGES * PS);
  const plain = new Uint8Array(PAGES * PS);
  fillPages(own);
  fillPages(plain);
  for (const skip of [0, 3]) {
    for (const buf of [own, plain]) {
      const out = hashAll(buf, skip);
      for (let k = 0; k < PAGES - skip; k++) {
        const p = k + skip;
        const want = xxh64(buf.subarray(p * PS, (p + 1) * PS));
        const got = (BigInt(out.hashHi[k]) << 32n) | BigInt(out.hashLo[k]);
        eq([p, got], [p, want]);
        eq(
          [p, out.flags[k]],
          [p, p % 7 === 0 ? PAGE_HASHED | PAGE_ZERO : PAGE_HASHED],
        );
      }
    }
  }
});
