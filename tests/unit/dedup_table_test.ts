/** The page table's columns widen when a value needs it. */
import { deepStrictEqual as eq } from "node:assert/strict";
import {
  newTable,
  reserve,
  setMapIdx,
  setPfn,
  sortOrder,
} from "../../src/dedup/table.ts";

Deno.test("table: mapIdx widens past 2^16, pfn past 2^32, values kept", () => {
  const t = newTable(4);
  t.length = 3;
  setMapIdx(t, 0, 7);
  setPfn(t, 0, 9);
  eq(t.mapIdx instanceof Uint16Array, true);
  setMapIdx(t, 1, 70000);
  setPfn(t, 1, 2 ** 40);
  eq(t.mapIdx instanceof Uint32Array, true);
  eq(t.pfn instanceof Float64Array, true);
  reserve(t, 5000);
  eq([t.mapIdx[0], t.mapIdx[1], t.pfn[0], t.pfn[1]], [7, 70000, 9, 2 ** 40]);
});

// Rows by PFN: all of them, or only a subset (classify's kpageflags rows).
const PFN_SORTS: { pfns: number[]; rows?: number[]; want: number[] }[] = [
  { pfns: [50, 10, 40, 10, 0], want: [4, 1, 3, 2, 0] },
  { pfns: [50, 10, 40, 10, 0], rows: [0, 2, 3], want: [3, 2, 0] },
  { pfns: [7, 7, 7], rows: [2, 0], want: [0, 2] },
  { pfns: [5], rows: [], want: [] },
];

Deno.test("table: sortOrder by pfn, whole table or given rows", () => {
  for (const { pfns, rows, want } of PFN_SORTS) {
    const t = newTable(pfns.length);
    t.length = pfns.length;
    pfns.forEach((p, i) => setPfn(t, i, p));
    const order = new Uint32Array(pfns.length);
    sortOrder(t, "pfn", order, rows ? Uint32Array.from(rows) : undefined);
    eq([pfns, rows, [...order.subarray(0, want.length)]], [pfns, rows, want]);
  }
});
