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

// By hash: tables of every bucket regime (one bucket; buckets of a few
// rows, insertion-sorted; big groups of one hash, quicksorted by PFN;
// big buckets of mixed hashes), against a plain comparison sort.
const HASH_SORTS: {
  rows: number;
  groups: number[];
  hashBits: number;
  pfns?: number;
}[] = [
  { rows: 0, groups: [], hashBits: 32 },
  { rows: 12, groups: [3], hashBits: 32 },
  { rows: 17, groups: [5, 5], hashBits: 32 },
  { rows: 5000, groups: [800, 40, 8, 8, 4], hashBits: 32 },
  // Few distinct high words: buckets of mixed hashes over 16 rows.
  { rows: 5000, groups: [300, 20], hashBits: 3 },
  // A group big enough for the radix sort on PFNs of over 16 bits.
  { rows: 9000, groups: [5000, 300], hashBits: 32, pfns: 1 << 20 },
  // One PFN for every row (the shared zero page).
  { rows: 3000, groups: [2000], hashBits: 32, pfns: 1 },
];

Deno.test("table: sortOrder by hash matches (hashHi, hashLo, pfn, row)", () => {
  let seed = 7;
  const rnd = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0);
  for (const { rows, groups, hashBits, pfns = 50 } of HASH_SORTS) {
    const t = newTable(rows);
    t.length = rows;
    const hi = () => hashBits === 32 ? rnd() : (rnd() >>> (32 - hashBits));
    let r = 0;
    for (const size of groups) {
      const h = hi(), l = rnd();
      for (let k = 0; k < size; k++, r++) {
        t.hashHi[r] = h;
        t.hashLo[r] = l;
      }
    }
    for (; r < rows; r++) (t.hashHi[r] = hi(), t.hashLo[r] = rnd());
    // PFNs repeat (fork-shared pages) so that the row breaks ties too.
    for (let i = 0; i < rows; i++) setPfn(t, i, rnd() % pfns);
    // Rows in scan order, not grouped.
    for (let i = rows - 1; i > 0; i--) {
      const j = rnd() % (i + 1);
      for (const c of [t.hashHi, t.hashLo, t.pfn]) {
        [c[i], c[j]] = [c[j], c[i]];
      }
    }
    const want = [...Array(rows).keys()].sort((a, b) =>
      t.hashHi[a] - t.hashHi[b] || t.hashLo[a] - t.hashLo[b] ||
      t.pfn[a] - t.pfn[b] || a - b
    );
    const got = [...sortOrder(t, "hash", new Uint32Array(rows))];
    eq({ rows, groups, hashBits, same: got.join() === want.join() }, {
      rows,
      groups,
      hashBits,
      same: true,
    });
  }
});
