/**
 * scan() options that trade figures for speed: kpageflags: false skips
 * /proc/kpageflags, so pages_ksm and pages_thp become null and nothing
 * else changes. Run as root.
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { scan } from "../../src/scan/mod.ts";
import { startWorker } from "../helpers/workers.ts";

Deno.test("kpageflags: false leaves every other figure unchanged", async () => {
  const a = await startWorker({ dup: 6, unique: 3, zero: 2 });
  const b = await startWorker({ dup: 6, unique: 3, zero: 2 });
  try {
    const pids = [a.pid, b.pid];
    const full = await scan({ selection: { pids } });
    const lean = await scan({ selection: { pids }, kpageflags: false });
    // null only on kernels whose kpageflags KSM bit is broken (6.12).
    if (full.totals.pages_ksm !== null) assertEquals(full.totals.pages_ksm, 0);
    assertEquals(full.totals.pages_thp, 0);
    assertEquals(lean.totals.pages_ksm, null);
    assertEquals(lean.totals.pages_thp, null);
    const strip = (t: typeof full.totals) => ({
      ...t,
      pages_ksm: undefined,
      pages_thp: undefined,
    });
    assertEquals(strip(lean.totals), strip(full.totals));
    assertEquals(
      lean.processes.map((p) => p.mappings),
      full.processes.map((p) => p.mappings),
    );
  } finally {
    await a.stop();
    await b.stop();
  }
});
