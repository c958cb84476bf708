import { deepStrictEqual as eq, rejects } from "node:assert/strict";
import { analyze } from "../../src/dedup/analyze.ts";
import { newTable, sortOrder } from "../../src/dedup/table.ts";
import { PAGE_EXCLUSIVE } from "../../src/pages/flags.ts";
import { MergememError } from "../../src/errors.ts";
import type { ScanResult } from "../../src/scan/result.ts";
import { scan, type ScanPages } from "../../src/scan/scan.ts";
import { startWorker, type Worker } from "../helpers/workers.ts";

// Every kind of page, a forked child sharing frames COW, and contents
// shared across the workers.
const SPEC = { dup: 48, unique: 32, common: 40, zero: 8, zeroRead: 8 };

/** Per-mapping counts and totals of a result, without timings. */
function counts(r: ScanResult) {
  return {
    totals: { ...r.totals },
    processes: r.processes.map((p) => ({
      pid: p.pid,
      skipped: p.skipped,
      totals: p.totals,
      mappings: p.mappings,
    })),
  };
}

/** The content classes as a partition: content label → first row's key. */
function partition(p: ScanPages): string[] {
  const keyOf = (i: number) =>
    `${p.mappings[p.mapping[i]].pid}:${p.mappings[p.mapping[i]].start}:${
      p.page[i]
    }`;
  const rows = [...Array(p.count).keys()].sort((a, b) =>
    keyOf(a) < keyOf(b) ? -1 : keyOf(a) > keyOf(b) ? 1 : 0
  );
  const first = new Map<number, string>();
  return rows.map((i) => {
    const c = p.content[i];
    if (c === 0) return `${keyOf(i)}=zero/${p.frame[i]}`;
    if (!first.has(c)) first.set(c, keyOf(i));
    return `${keyOf(i)}=${first.get(c)}/${p.frame[i]}`;
  });
}

Deno.test("scan: trusting xxh64 (the default) == confirming (--verify) on real workers", async () => {
  const ws: Worker[] = [];
  try {
    for (let i = 0; i < 3; i++) ws.push(await startWorker(SPEC));
    ws.push(await startWorker({ ...SPEC, fork: true }));
    const pids = ws.flatMap((w) => w.child ? [w.pid, w.child] : [w.pid]);
    for (const checksum of ["xxh64", undefined]) {
      let pa: ScanPages | undefined, pb: ScanPages | undefined;
      const a = await scan({
        selection: { pids },
        checksum,
        confirm: true,
        onPages: (p) => pa = p,
      });
      const b = await scan({
        selection: { pids },
        checksum,
        onPages: (p) => pb = p,
      });
      eq(b.checksum, "xxh64");
      eq(a.confirmed, undefined);
      eq(b.confirmed, false);
      eq(counts(b), counts(a));
      eq(a.totals.pages_duplicate > 0, true);
      eq(partition(pb!), partition(pa!));
    }
  } finally {
    for (const w of ws) await w.stop();
  }
});

Deno.test("scan: other checksums always confirm; confirm false needs xxh64", async () => {
  const r = await scan({ selection: { pids: [Deno.pid] }, checksum: "fast" });
  eq(r.confirmed, undefined);
  for (
    const opts of [
      { checksum: "fast" },
      { checksum: "const" },
      { checksum: "crc32" },
      { strategy: "equalv" as const },
    ]
  ) {
    await rejects(
      scan({ selection: { pids: [Deno.pid] }, confirm: false, ...opts }),
      MergememError,
    );
  }
});

Deno.test("dedup: confirm false trusts the hash, reads nothing", () => {
  // Two pages given one hash at an address that cannot be read: trusted,
  // they are one content on two frames (a collision would count as a
  // duplicate: the documented cost of confirm: false); nothing is read.
  const t = newTable(3);
  t.length = 3;
  for (let i = 0; i < 3; i++) {
    t.mapIdx[i] = 0;
    t.pageIdx[i] = i;
    t.pfn[i] = 10 + i;
    t.hashLo[i] = i < 2 ? 7 : 9;
    t.hashHi[i] = 7;
    t.flags[i] = PAGE_EXCLUSIVE;
  }
  const order = sortOrder(t, "hash", new Uint32Array(t.length));
  const c = analyze(t, [{ pid: 0x3ffffff0, start: 0x1000 }], {
    pageSize: 4096,
    pfns: true,
    order,
    confirm: false,
    labelAll: true,
  });
  eq([c.present[0], c.duplicate[0], c.saveable[0]], [3, 2, 1]);
  const labels = [...t.hashLo.subarray(0, 3)];
  eq(labels[0] === labels[1] && labels[1] !== labels[2], true);
});
