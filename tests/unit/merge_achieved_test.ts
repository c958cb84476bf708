/** src/merge/achieved.ts: frames freed by a selection, over survivors. */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { freedSince } from "../../src/merge/achieved.ts";

/** Frame sets as presentFrames gives them: in any order, repeats too. */
const sets = (o: Record<number, number[]>) =>
  new Map(
    Object.entries(o).map(([p, f]) => [Number(p), Float64Array.from(f)]),
  );

const cases: {
  name: string;
  before: Record<number, number[]>;
  after: Record<number, number[]>;
  pinned?: number[];
  want: { before: number; after: number; freed: number };
}[] = [
  {
    name: "two workers with the same 3 pages merge onto 3 KSM frames",
    before: { 1: [10, 11, 12], 2: [20, 21, 22] },
    after: { 1: [90, 91, 92], 2: [90, 91, 92] },
    want: { before: 6, after: 3, freed: 3 },
  },
  {
    name: "fork-shared frames count once before and after",
    before: { 1: [10, 11], 2: [10, 11, 30] },
    after: { 1: [10, 11], 2: [10, 11, 30] },
    want: { before: 3, after: 3, freed: 0 },
  },
  {
    name: "zero-filled pages gone to the zero page (absent after) are freed",
    before: { 1: [10, 11, 12], 2: [20, 21] },
    after: { 1: [10], 2: [20] },
    want: { before: 5, after: 2, freed: 3 },
  },
  {
    name: "a process that exited is left out of both ends",
    before: { 1: [10, 11], 2: [20, 21], 3: [30, 31, 32, 33] },
    after: { 1: [90, 91], 2: [90, 91] },
    want: { before: 4, after: 2, freed: 2 },
  },
  {
    name: "frames a parent left out still maps are not freed",
    before: { 1: [10, 11], 2: [10, 21] },
    after: { 1: [21, 11], 2: [21] },
    pinned: [10],
    want: { before: 3, after: 2, freed: 0 },
  },
  {
    name: "frames in any order, mapped twice by one process (KSM), count once",
    before: { 1: [12, 10, 12, 11], 2: [11, 20] },
    after: { 1: [90, 90, 91, 90], 2: [91, 90] },
    want: { before: 4, after: 2, freed: 2 },
  },
  {
    name: "new pages faulted in meanwhile count against the saving",
    before: { 1: [10] },
    after: { 1: [10, 11, 12] },
    want: { before: 1, after: 3, freed: -2 },
  },
];

for (const c of cases) {
  Deno.test(`freedSince: ${c.name}`, () => {
    assertEquals(
      freedSince(
        sets(c.before),
        Float64Array.from(c.pinned ?? []).sort(),
      )(sets(c.after)),
      c.want,
    );
  });
}

Deno.test("freedSince: repeated measures, and one after a process exited", () => {
  const freed = freedSince(
    sets({ 1: [10, 11, 12], 2: [12, 20, 21], 3: [30, 31] }),
    [31],
  );
  assertEquals(freed(sets({ 1: [10, 11, 12], 2: [12, 20, 21], 3: [30, 31] })), {
    before: 7,
    after: 7,
    freed: 0,
  });
  assertEquals(freed(sets({ 1: [10, 90], 2: [90, 91], 3: [31] })), {
    before: 7,
    after: 4,
    freed: 3,
  });
  // Process 1 is gone: its frames leave both ends (12 stays: 2 maps it),
  // and 90 is new.
  assertEquals(freed(sets({ 2: [90, 12], 3: [30, 31] })), {
    before: 5,
    after: 4,
    freed: 1,
  });
  // Back to the full set of survivors.
  assertEquals(freed(sets({ 1: [10], 2: [10], 3: [] })), {
    before: 7,
    after: 1,
    freed: 5,
  });
});
