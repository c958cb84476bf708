/** The page table's columns widen when a value needs it. */
import { deepStrictEqual as eq } from "node:assert/strict";
import { newTable, reserve, setMapIdx, setPfn } from "../../src/dedup/table.ts";

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
