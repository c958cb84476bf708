/** Pure parts of merge/unmerge: the VMA choice and meminfo. */
import {
  deepStrictEqual as assertEquals,
  ok as assert,
} from "node:assert/strict";
import {
  hugeNeighbourPages,
  recount,
  worthMarking,
} from "../../src/merge/plan.ts";
import type { MappingResult } from "../../src/scan/result.ts";
import { parseMeminfo, reserveBytes } from "../../src/merge/unmerge.ts";

function mapping(present: number, duplicate: number): MappingResult {
  return {
    start: "0x1000",
    end: "0x2000",
    perms: "rw-p",
    kind: "anon",
    path: "",
    deleted: false,
    ksm_eligible: true,
    rss_pages: present,
    pages_present: present,
    pages_zero: 0,
    pages_duplicate: duplicate,
    pages_shared_already: 0,
    pages_shared_already_estimate: 0,
    saveable_pages: duplicate,
  };
}

Deno.test("worthMarking: duplicates minus 1/64 of the pages >= minSaving", () => {
  assert(worthMarking(mapping(640, 26), 16, false));
  assert(!worthMarking(mapping(640, 25), 16, false));
  assert(worthMarking(mapping(640, 0), 16, true), "already mergeable");
  assert(!worthMarking(mapping(0, 0), 16, true), "nothing present");
  assert(
    !worthMarking({ ...mapping(640, 600), ksm_eligible: false }, 16, false),
  );
});

Deno.test("parseMeminfo and the unmerge reserve", () => {
  const m = parseMeminfo(
    "MemTotal:       24000000 kB\nMemFree: 1 kB\nMemAvailable:   1000 kB\n",
  );
  assertEquals(m, { total: 24000000 * 1024, available: 1000 * 1024 });
  assertEquals(reserveBytes(1 << 30), 64 << 20);
  assertEquals(reserveBytes(100 * 2 ** 30), Math.floor(100 * 2 ** 30 * 0.02));
});

// recount over pages given as rows: [mapping, page, frame, content].
function pages(rows: [number, number, number, number][], mappings: number) {
  return {
    count: rows.length,
    mappings: Array.from({ length: mappings }, (_, g) => ({
      pid: 100 + g,
      start: 0x1000,
    })),
    mapping: Uint32Array.from(rows.map((r) => r[0])),
    page: Uint32Array.from(rows.map((r) => r[1])),
    frame: Float64Array.from(rows.map((r) => r[2])),
    content: Uint32Array.from(rows.map((r) => r[3])),
  };
}

const recountCases: {
  name: string;
  rows: [number, number, number, number][];
  chosen: number[];
  saveable: number[];
  pinned: number[];
}[] = [
  {
    name: "two workers' private copies: one saveable",
    rows: [[0, 0, 300, 2], [1, 0, 400, 2]],
    chosen: [1, 1],
    saveable: [0, 1],
    pinned: [],
  },
  {
    name: "a frame the parent (left out) still maps is pinned, not saveable",
    // content 1: worker 0 still shares frame 100 with the parent (mapping
    // 2, not chosen); worker 1 wrote its own copy, frame 200.
    rows: [[0, 0, 100, 1], [1, 0, 200, 1], [2, 0, 100, 1]],
    chosen: [1, 1, 0],
    saveable: [0, 0, 0],
    pinned: [100],
  },
  {
    name: "pinned and free frames of one content: the free ones but one",
    rows: [
      [0, 0, 100, 1],
      [1, 0, 200, 1],
      [1, 1, 201, 1],
      [2, 0, 100, 1],
    ],
    chosen: [1, 1, 0],
    saveable: [0, 1, 0],
    pinned: [100],
  },
  {
    name: "fork-shared among chosen workers only: nothing pinned",
    rows: [[0, 0, 100, 1], [1, 0, 100, 1], [1, 1, 200, 1]],
    chosen: [1, 1],
    saveable: [0, 1],
    pinned: [],
  },
];
for (const c of recountCases) {
  Deno.test(`recount: ${c.name}`, () => {
    const r = recount(
      pages(c.rows, c.chosen.length),
      Uint8Array.from(c.chosen),
    );
    assertEquals([...r.saveable], c.saveable);
    assertEquals([...r.pinned], c.pinned);
  });
}

// hugeNeighbourPages: left-out pages in a PMD-sized block of frames (512
// with 4 KiB pages) with a chosen page's frame; mapping g is pid 100 + g,
// start 0x1000.
const neighbourCases: {
  name: string;
  rows: [number, number, number, number][];
  chosen: number[];
  want: { pid: number[]; address: number[]; frame: number[] };
}[] = [
  {
    name: "a parent's page in the chosen worker's huge page block",
    rows: [[0, 3, 1024 + 5, 1], [1, 7, 1024 + 200, 2]],
    chosen: [0, 1],
    want: { pid: [100], address: [0x1000 + 3 * 4096], frame: [1029] },
  },
  {
    name: "a left-out page in another block is not a neighbour",
    rows: [[0, 0, 1023, 1], [1, 0, 1024, 2]],
    chosen: [0, 1],
    want: { pid: [], address: [], frame: [] },
  },
  {
    name: "nothing chosen: no neighbours",
    rows: [[0, 0, 1024, 1], [1, 0, 1025, 2]],
    chosen: [0, 0],
    want: { pid: [], address: [], frame: [] },
  },
  {
    name: "frames 0 (no PFNs: stand-ins) never count",
    rows: [[0, 0, 0, 1], [1, 0, 0, 2]],
    chosen: [0, 1],
    want: { pid: [], address: [], frame: [] },
  },
  {
    name: "a pinned frame (chosen and left out) is a neighbour",
    rows: [[0, 1, 2048, 1], [1, 2, 2048, 1]],
    chosen: [0, 1],
    want: { pid: [100], address: [0x1000 + 4096], frame: [2048] },
  },
];

for (const c of neighbourCases) {
  Deno.test(`hugeNeighbourPages: ${c.name}`, () => {
    assertEquals(
      hugeNeighbourPages(
        pages(c.rows, c.chosen.length),
        Uint8Array.from(c.chosen),
        4096,
      ),
      c.want,
    );
  });
}
