/**
 * The counting rules of docs/accounting.md (accountContent), as tables of
 * input pages -> per-mapping figures.
 */
import { deepStrictEqual as eq } from "node:assert/strict";
import {
  accountContent,
  newContentCounts,
} from "../../src/dedup/accounting.ts";

/** A page of one content: [mapping, page, frame]. */
type Page = [number, number, number];

/** Accounts one content; returns [duplicate, saveable, shared] per mapping. */
function run(pages: Page[], zero = false, mappings = 3) {
  const mapping = Uint32Array.from(pages.map((p) => p[0]));
  const page = Uint32Array.from(pages.map((p) => p[1]));
  const frame = Float64Array.from(pages.map((p) => p[2]));
  const rows = Uint32Array.from(pages.keys()).sort((a, b) =>
    frame[a] - frame[b] || a - b
  );
  const c = newContentCounts(mappings);
  accountContent({ mapping, page, frame }, rows, 0, rows.length, zero, c);
  return [...Array(mappings).keys()].map((
    m,
  ) => [c.duplicate[m], c.saveable[m], c.sharedAlready[m]]);
}

const CASES: {
  name: string;
  pages: Page[];
  zero?: boolean;
  want: number[][];
}[] = [
  {
    name: "two copies in two processes: the second is saveable",
    pages: [[0, 0, 10], [1, 0, 11]],
    want: [[1, 0, 0], [1, 1, 0], [0, 0, 0]],
  },
  {
    name: "fork: parent and child share one frame, nothing to save",
    pages: [[0, 0, 10], [1, 0, 10]],
    want: [[0, 0, 1], [0, 0, 1], [0, 0, 0]],
  },
  {
    name: "fork plus an unrelated copy: only the copy is saveable",
    pages: [[0, 0, 10], [1, 0, 10], [2, 5, 11]],
    want: [[1, 0, 1], [1, 0, 1], [1, 1, 0]],
  },
  {
    name:
      "THP: a huge page's small pages are frames; the child shares 2 of 4 and copied 2",
    pages: [
      [0, 0, 512],
      [0, 1, 513],
      [0, 2, 514],
      [0, 3, 515],
      [1, 0, 512],
      [1, 1, 513],
      [1, 2, 900],
      [1, 3, 901],
    ],
    want: [[4, 3, 2], [4, 2, 2], [0, 0, 0]],
  },
  {
    name: "zero-filled content: saveable, never duplicate",
    pages: [[0, 0, 10], [1, 0, 11], [1, 1, 12]],
    zero: true,
    want: [[0, 0, 0], [0, 2, 0], [0, 0, 0]],
  },
  {
    name: "the shared zero page is one frame of zero content",
    pages: [[0, 0, 1], [1, 0, 1], [2, 0, 1]],
    zero: true,
    want: [[0, 0, 1], [0, 0, 1], [0, 0, 1]],
  },
  {
    name: "no PFNs: frame 0 pages of one content are one stand-in frame",
    pages: [[0, 0, 0], [0, 1, 0], [1, 0, 7]],
    want: [[2, 0, 0], [1, 1, 0], [0, 0, 0]],
  },
  {
    name: "the keeper is the first page in scan order, not the lowest frame",
    pages: [[1, 0, 5], [0, 3, 9]],
    want: [[1, 0, 0], [1, 1, 0], [0, 0, 0]],
  },
  {
    name: "one frame mapped twice in one mapping (KSM page) and a copy",
    pages: [[0, 0, 20], [0, 1, 20], [0, 2, 21]],
    want: [[3, 1, 2], [0, 0, 0], [0, 0, 0]],
  },
];

for (const c of CASES) {
  Deno.test(`accounting: ${c.name}`, () => {
    eq(run(c.pages, c.zero), c.want);
  });
}
