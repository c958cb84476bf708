/**
 * Page hashing rate in memory, per checksum of src/hash/ and, for xxh64,
 * side by side: in place (a buffer from the checksum's pageBuffer, as the
 * scan reads pages), through a copy (any other buffer), xxhash-wasm (npm,
 * one call per page, what src/hash/xxh64.ts used before) and libxxhash's
 * XXH64 through FFI where the library is installed:
 *
 *   deno run --allow-all bench/hash_bench.ts [--mib 128] [--runs 5]
 *
 * Prints min/median/max GB/s over the runs for each.
 *
 * @module
 */
import { parseArgs } from "node:util";
// deno-lint-ignore no-import-prefix
import xxhash from "npm:xxhash-wasm@1.1.0";
import { CHECKSUMS } from "../src/hash/mod.ts";

const PS = 4096;
const a = parseArgs({
  args: Deno.args,
  options: { mib: { type: "string" }, runs: { type: "string" } },
});
const n = Number(a.values.mib ?? 128) * 256;
const runs = Number(a.values.runs ?? 5);
const buf = new Uint8Array(PS * n);
for (let i = 0; i < buf.length; i += 4) buf[i] = (i * 2654435761) >>> 24;
const words = new Uint32Array(buf.buffer);
const out = {
  hashLo: new Uint32Array(n),
  hashHi: new Uint32Array(n),
  flags: new Uint8Array(n),
  offset: 0,
};

function rate(name: string, f: () => void): void {
  f(); // warm-up
  const r: number[] = [];
  for (let i = 0; i < runs; i++) {
    const t = performance.now();
    f();
    r.push(buf.length / ((performance.now() - t) / 1000) / 1e9);
  }
  r.sort((x, y) => x - y);
  console.log(
    `${name.padEnd(24)} ${r[0].toFixed(2)} / ${r[r.length >> 1].toFixed(2)} / ${
      r[r.length - 1].toFixed(2)
    } GB/s (min / median / max)`,
  );
}

for (const c of Object.values(CHECKSUMS)) {
  if (c.name === "const") continue;
  rate(c.name, () => c.hashPages(words, 0, n, PS, out, 0));
}
{
  const cs = CHECKSUMS.xxh64;
  // The scan's read batches are 1 MiB of the checksum's own memory.
  const own = cs.pageBuffer!(256 * PS);
  const ownWords = new Uint32Array(own.buffer, own.byteOffset, own.length / 4);
  rate("xxh64 in place", () => {
    for (let k = 0; k < n; k += 256) {
      own.set(buf.subarray(k * PS, (k + 256) * PS));
      cs.hashPages(ownWords, 0, Math.min(256, n - k), PS, out, k);
    }
  });
  console.log("  (includes a 1 MiB copy per batch, standing in for the read)");
  const { h64Raw } = await xxhash();
  rate("xxhash-wasm h64Raw (npm)", () => {
    for (let k = 0; k < n; k++) h64Raw(buf.subarray(k * PS, (k + 1) * PS), 0n);
  });
}
try {
  const lib = Deno.dlopen("libxxhash.so.0", {
    XXH64: { parameters: ["buffer", "usize", "u64"], result: "u64" },
  });
  rate("libxxhash XXH64 (FFI)", () => {
    for (let k = 0; k < n; k++) {
      lib.symbols.XXH64(buf.subarray(k * PS, (k + 1) * PS), BigInt(PS), 0n);
    }
  });
  lib.close();
} catch {
  console.log("libxxhash XXH64 (FFI)     not installed");
}
