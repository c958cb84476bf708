/**
 * src/merge/achieved.ts: frames freed by a selection, over survivors; and
 * beyond the chosen VMAs, in huge pages a merge split (on real workers:
 * run as root, PFNs need CAP_SYS_ADMIN).
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import {
  freedNeighbours,
  freedSince,
  hugePageNeighbours,
  ZeroPageFilter,
} from "../../src/merge/achieved.ts";
import { presentFrames } from "../../src/pages/frames.ts";
import { KPF_THP, KPF_ZERO_PAGE } from "../../src/pages/pagemap.ts";
import { systemPageSize } from "../../src/pages/pagesize.ts";
import { STANDARD_SPEC, startWorker } from "../helpers/workers.ts";
import { tempDir } from "../helpers/temp.ts";

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

Deno.test("hugePageNeighbours: keeps the pages whose frame kpageflags calls THP, not the huge zero page", () => {
  // A kpageflags fixture: one 64-bit word of flags per PFN.
  const flags = new BigUint64Array(16);
  flags[3] = 1n << BigInt(KPF_THP);
  flags[5] = (1n << BigInt(KPF_THP)) | (1n << BigInt(KPF_ZERO_PAGE));
  flags[9] = 1n << BigInt(KPF_THP);
  const path = `${tempDir()}/kpageflags`;
  Deno.writeFileSync(path, new Uint8Array(flags.buffer));
  const n = {
    pid: [1, 1, 2, 2, 3],
    address: [0x1000, 0x2000, 0x1000, 0x3000, 0x5000],
    frame: [9, 4, 3, 5, 3],
  };
  assertEquals(hugePageNeighbours(n, path), {
    pid: [1, 2, 3],
    address: [0x1000, 0x1000, 0x5000],
    frame: [9, 3, 3],
  });
  assertEquals(hugePageNeighbours(n, `${path}.missing`), {
    pid: [],
    address: [],
    frame: [],
  });
});

Deno.test("freedNeighbours: a frame counts as freed only when no page of the selection maps it", async () => {
  const w = await startWorker(STANDARD_SPEC);
  const zero = new ZeroPageFilter();
  try {
    const ps = systemPageSize();
    const start = BigInt(w.addr);
    // The worker's first pages are written: present, in address order.
    const f = presentFrames(
      w.pid,
      [{ start, end: start + 2n * BigInt(ps) }],
      zero,
    )!;
    assertEquals(f.length, 2);
    const at = (k: number) => Number(start) + k * ps;
    const none = new Map<number, Float64Array>();
    // Still mapped where the plan saw them.
    assertEquals(
      freedNeighbours({
        pid: [w.pid, w.pid],
        address: [at(0), at(1)],
        frame: [f[0], f[1]],
      }, none),
      0,
    );
    // The page maps another frame now: its old frame is freed, once even
    // when two pages mapped it.
    const old = f[0] + f[1] + 1;
    const moved = {
      pid: [w.pid, w.pid],
      address: [at(0), at(1)],
      frame: [old, old],
    };
    assertEquals(freedNeighbours(moved, none), 1);
    // ... unless a chosen page maps it now.
    assertEquals(
      freedNeighbours(moved, new Map([[w.pid, Float64Array.of(old)]])),
      0,
    );
    // A process that is gone keeps its frames (an exit is not a merge).
    await w.stop();
    assertEquals(
      freedNeighbours({ pid: [w.pid], address: [at(0)], frame: [old] }, none),
      0,
    );
  } finally {
    zero.close();
    await w.stop();
  }
});
