/**
 * The user back-end's helper thread (src/scan/hash_worker.ts) hashes the
 * same values as the calling thread: a scan of workers large enough to be
 * split between the two gives the figures of a scan without the helper.
 * Run as root.
 */
import { deepStrictEqual as eq } from "node:assert/strict";
import { getChecksum } from "../../src/hash/mod.ts";
import { createUserBackend, scan } from "../../src/scan/mod.ts";
import { startWorker, type Worker } from "../helpers/workers.ts";

Deno.test("user back-end: the helper thread changes no figure", async () => {
  const ws: Worker[] = [];
  const spec = { dup: 3000, unique: 3000, common: 2500, zero: 700 };
  try {
    ws.push(await startWorker(spec));
    ws.push(await startWorker({ ...spec, fork: true }));
    const pids = [ws[0].pid, ws[1].pid, ws[1].child];
    const results = [];
    for (const helpers of [0, 1]) {
      for (const cs of ["xxh64", "fast"]) {
        const backend = createUserBackend({
          checksum: getChecksum(cs),
          helpers,
        });
        try {
          const r = await scan({ selection: { pids }, backend });
          results.push(r.processes.map((p) => p.totals));
        } finally {
          backend.dispose?.();
        }
      }
    }
    eq(results[2], results[0]);
    eq(results[3], results[1]);
    eq(results[0], results[1]);
    // The workers' regions as documented in tests/helpers/worker.c.
    eq(results[0][0].pages_duplicate >= 3000 + 2500, true);
  } finally {
    for (const w of ws) await w.stop();
  }
});
