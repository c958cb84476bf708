import { deepStrictEqual as eq } from "node:assert/strict";
import {
  decodePagemap,
  KPF_KSM,
  KPF_THP,
  KPF_ZERO_PAGE,
} from "../../src/pages/pagemap.ts";

const dir = new URL("../fixtures/", import.meta.url);

Deno.test("pagemap: real entries of a MAP_SHARED anonymous mapping", () => {
  // 4 pages, pages 0 and 2 touched (captured as root: PFNs visible).
  const w = new Uint32Array(
    Deno.readFileSync(new URL("pagemap-4pages.bin", dir)).buffer,
  );
  eq(decodePagemap(w, 0), {
    present: true,
    swapped: false,
    file: true, // shared anonymous memory sets bit 61
    exclusive: true,
    pfn: 0x17e65b,
  });
  eq(decodePagemap(w, 1), {
    present: false,
    swapped: false,
    file: false,
    exclusive: false,
    pfn: 0,
  });
  eq(decodePagemap(w, 2).pfn, 0x17e65a);
});

Deno.test("kpageflags: a real entry of that page (not KSM, THP or zero)", () => {
  const v = new DataView(
    Deno.readFileSync(new URL("kpageflags-1.bin", dir)).buffer,
  ).getBigUint64(0, true);
  eq(v, 0x4838n);
  for (const bit of [KPF_KSM, KPF_THP, KPF_ZERO_PAGE]) {
    eq((v >> BigInt(bit)) & 1n, 0n);
  }
  eq((v >> 11n) & 1n, 1n); // KPF_MMAP
});
