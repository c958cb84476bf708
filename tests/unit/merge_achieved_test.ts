/** src/merge/achieved.ts: frames freed by a selection, over survivors. */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { framesFreed, unionSize } from "../../src/merge/achieved.ts";

const sets = (o: Record<number, number[]>) =>
  new Map(Object.entries(o).map(([p, f]) => [Number(p), new Set(f)]));

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
    name: "new pages faulted in meanwhile count against the saving",
    before: { 1: [10] },
    after: { 1: [10, 11, 12] },
    want: { before: 1, after: 3, freed: -2 },
  },
];

for (const c of cases) {
  Deno.test(`framesFreed: ${c.name}`, () => {
    assertEquals(
      framesFreed(sets(c.before), sets(c.after), new Set(c.pinned)),
      c.want,
    );
  });
}

Deno.test("unionSize ignores pids without a set", () => {
  assertEquals(unionSize(sets({ 1: [1, 2], 2: [2, 3] }), [1, 2, 7]), 3);
});
