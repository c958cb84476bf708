/**
 * Page hashing rate in memory, per checksum of src/hash/ over `--mib` MiB
 * (xxh64 copies each MiB into its own memory first), and xxh64 three
 * ways side by side on one 1 MiB batch, cache-warm as in the scan: in
 * place (src/hash/xxh64.wat, the batch in its memory), xxhash-wasm (npm,
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
    `${name.padEnd(27)} ${r[0].toFixed(2)} / ${r[r.length >> 1].toFixed(2)} / ${
      r[r.length - 1].toFixed(2)
    } GB/s (min / median / max)`,
  );
}

for (const c of Object.values(CHECKSUMS)) {
  if (c.name === "const") continue;
  rate(c.name, () => c.hashPages(words, 0, n, PS, out, 0));
}
// xxh64 three ways on one 1 MiB batch hashed over and over, as in the
// scan, where each batch is hashed right after its read (cache-warm).
const BATCH = 256;
const cs = CHECKSUMS.xxh64;
const own = cs.pageBuffer!(BATCH * PS);
own.set(buf.subarray(0, BATCH * PS));
const ownWords = new Uint32Array(own.buffer, own.byteOffset, own.length / 4);
const batch = buf.subarray(0, BATCH * PS);
rate("xxh64, 1 MiB in place", () => {
  for (let k = 0; k < n; k += BATCH) {
    cs.hashPages(ownWords, 0, Math.min(BATCH, n - k), PS, out, k);
  }
});
const { h64Raw } = await xxhash();
rate("xxhash-wasm h64Raw, 1 MiB", () => {
  for (let k = 0; k < n; k++) {
    const p = k % BATCH;
    h64Raw(batch.subarray(p * PS, (p + 1) * PS), 0n);
  }
});
try {
  const lib = Deno.dlopen("libxxhash.so.0", {
    XXH64: { parameters: ["buffer", "usize", "u64"], result: "u64" },
  });
  rate("libxxhash XXH64 FFI, 1 MiB", () => {
    for (let k = 0; k < n; k++) {
      const p = k % BATCH;
      lib.symbols.XXH64(batch.subarray(p * PS, (p + 1) * PS), BigInt(PS), 0n);
    }
  });
  lib.close();
} catch {
  console.log("libxxhash XXH64 FFI       not installed");
}
