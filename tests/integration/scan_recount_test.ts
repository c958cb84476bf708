/**
 * The merge plan's recount (src/merge/plan.ts) and the scan count with one
 * rule set: recounting every mapping of a scan's pages gives the scan's
 * own figures, and recounting a subset counts it as if scanned alone.
 * Run as root.
 */
import { deepStrictEqual as eq } from "node:assert/strict";
import { recount } from "../../src/merge/plan.ts";
import { scan, type ScanPages } from "../../src/scan/mod.ts";
import { startWorker, type Worker } from "../helpers/workers.ts";

const SPEC = {
  dup: 8,
  unique: 5,
  common: 6,
  zero: 4,
  zeroRead: 3,
  untouched: 7,
};

Deno.test("recount of all mappings == the scan; of one worker == that worker alone", async () => {
  const ws: Worker[] = [];
  for (let i = 0; i < 2; i++) ws.push(await startWorker(SPEC));
  ws.push(await startWorker({ ...SPEC, fork: true }));
  try {
    const pids = [...ws.map((w) => w.pid), ws[2].child];
    for (const confirm of [true, false]) {
      let pages: ScanPages | undefined;
      const r = await scan({
        selection: { pids },
        checksum: "xxh64",
        confirm,
        onPages: (p) => pages = p,
      });
      const all = recount(
        pages!,
        new Uint8Array(pages!.mappings.length).fill(1),
      );
      pages!.mappings.forEach((m, g) => {
        const p = r.processes.find((x) => x.pid === m.pid)!;
        const mr = p.mappings.find((x) => parseInt(x.start, 16) === m.start)!;
        eq(
          [all.duplicate[g], all.saveable[g], all.sharedAlready[g]],
          [mr.pages_duplicate, mr.saveable_pages, mr.pages_shared_already],
          `${m.pid} ${mr.start} confirm ${confirm}`,
        );
      });
      // The second worker's region alone: the dup pages on 8 frames of one
      // content (7 saveable); zero content on 4 zeroed frames and the zero
      // page, which pages left out map too (the other workers): a pinned
      // frame, never freed, so the 4 zeroed frames save 3; common pages
      // unique; nothing shared but the zero-page reads (3 pages, 1 frame).
      const chosen = new Uint8Array(pages!.mappings.length);
      const g = pages!.mappings.findIndex((m) =>
        m.pid === ws[1].pid && m.start === parseInt(ws[1].addr, 16)
      );
      chosen[g] = 1;
      const one = recount(pages!, chosen);
      eq([one.duplicate[g], one.saveable[g], one.sharedAlready[g]], [
        8,
        7 + 3,
        3,
      ]);
    }
  } finally {
    for (const w of ws) await w.stop();
  }
});
