/** Pure parts of merge/unmerge: the VMA choice and meminfo. */
import {
  deepStrictEqual as assertEquals,
  ok as assert,
} from "node:assert/strict";
import {
  mergeableStarts,
  recount,
  recountFrom,
  worthMarking,
} from "../../src/merge/plan.ts";
import { parseMergeableMappings } from "../../src/ksm/process.ts";
import { listPids } from "../../src/proc/info.ts";
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
    const p = pages(c.rows, c.chosen.length);
    const r = recount(p, Uint8Array.from(c.chosen));
    assertEquals([...r.saveable], c.saveable);
    assertEquals([...r.pinned], c.pinned);
    // From the counts of every mapping, as choosePlan has them.
    const whole = recount(p, new Uint8Array(c.chosen.length).fill(1));
    const f = recountFrom(p, Uint8Array.from(c.chosen), whole);
    assertEquals([...f.saveable], c.saveable);
    assertEquals([...f.pinned], c.pinned);
  });
}

Deno.test("recountFrom == recount on pseudo-random pages and choices", () => {
  let seed = 7;
  const rnd = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  for (let t = 0; t < 200; t++) {
    const mappings = 1 + rnd(20), labels = 1 + rnd(t % 2 ? 50 : 2000);
    const rows: [number, number, number, number][] = [];
    for (let i = 1 + rnd(3000); i > 0; i--) {
      const l = rnd(labels), f = rnd(5) === 0 ? 0 : 1 + rnd(4000);
      // One frame, one content; but every fourth set breaks that (a frame
      // that changed content during the scan).
      rows.push([rnd(mappings), rnd(1000), t % 4 && f ? l * 8 + f % 7 : f, l]);
    }
    const p = pages(rows, mappings);
    const chosen = new Uint8Array(mappings);
    for (let g = 0; g < mappings; g++) chosen[g] = rnd(t % 5 ? 8 : 2) ? 1 : 0;
    const want = recount(p, chosen);
    const whole = recount(p, new Uint8Array(mappings).fill(1));
    const got = recountFrom(p, chosen, whole);
    assertEquals([...got.duplicate], [...want.duplicate]);
    assertEquals([...got.saveable], [...want.saveable]);
    assertEquals([...got.sharedAlready], [...want.sharedAlready]);
    const sorted = (x: Set<number>) => [...x].sort((a, b) => a - b);
    assertEquals(sorted(got.pinned), sorted(want.pinned));
  }
});

/** One smaps entry as 6.x writes it. */
function smapsEntry(range: string, path: string, flags: string): string {
  const kb = [
    "Size",
    "KernelPageSize",
    "MMUPageSize",
    "Rss",
    "Pss",
    "Pss_Dirty",
    "Shared_Clean",
    "Shared_Dirty",
    "Private_Clean",
    "Private_Dirty",
    "Referenced",
    "Anonymous",
    "KSM",
    "LazyFree",
    "AnonHugePages",
    "ShmemPmdMapped",
    "FilePmdMapped",
    "Shared_Hugetlb",
    "Private_Hugetlb",
    "Swap",
    "SwapPss",
    "Locked",
  ].map((f) => `${(f + ":").padEnd(16)}${"8".padStart(10)} kB\n`).join("");
  return `${range} rw-p 00000000 00:00 0${path}\n${kb}` +
    `THPeligible:           0\nVmFlags: ${flags} \n`;
}

Deno.test("mergeableStarts: the mappings flagged mg, as parseSmaps finds them", () => {
  const text =
    smapsEntry("100000000-102000000", "", "rd wr mr mw me ac sd mg") +
    smapsEntry("7f0000000000-7f0000021000", "", "rd wr mr mw me ac sd") +
    smapsEntry(
      "7f0000021000-7f0000022000",
      "                 [heap]",
      "mg rd wr",
    ) +
    smapsEntry("7f0000022000-7f0000023000", "   /tmp/mgx", "rd wr mgx") +
    smapsEntry(
      "7ffc00000000-7ffc00021000",
      "   [stack]",
      "rd wr mr mw me gd ac mg",
    );
  const want = new Set(parseMergeableMappings(text).map((m) => m.startHex));
  assertEquals(want.size, 3);
  assertEquals(mergeableStarts(text), want);
  assertEquals(mergeableStarts(""), new Set());
  // And on every smaps of this host that can be read.
  let compared = 0;
  for (const pid of listPids()) {
    let smaps: string;
    try {
      smaps = Deno.readTextFileSync(`/proc/${pid}/smaps`);
    } catch {
      continue;
    }
    if (smaps === "") continue;
    assertEquals(
      mergeableStarts(smaps),
      new Set(parseMergeableMappings(smaps).map((m) => m.startHex)),
    );
    compared++;
  }
  assert(compared > 0);
});
