/**
 * The ptrace engine's torture: 1001 holds of tests/ptrace/torture.c, each
 * on the next of its eight threads (blocked in read, epoll_wait, futex,
 * nanosleep, an SA_RESTART handler's read, a busy loop, the feeder, and
 * main in read on stdin), each running madvise over its four regions,
 * MERGEABLE and UNMERGEABLE in turn. The target then checks by itself
 * that every call returned what it should, nanosleep slept its full
 * time, no queued signal was lost or doubled, and memory is intact.
 */
import {
  deepStrictEqual as assertEquals,
  ok as assert,
} from "node:assert/strict";
import { PtraceSession } from "../../src/ptrace/session.ts";
import { NR_MADVISE } from "../../src/ptrace/sys.ts";
import { MADV_MERGEABLE, MADV_UNMERGEABLE } from "../../src/ptrace/marker.ts";
import {
  haveGcc,
  mergeableAt,
  startTarget,
  tortureRegions,
  tortureTids,
} from "../ptrace/targets.ts";
import { skipIf } from "../helpers/skip.ts";

const skip = {
  "not x86-64": Deno.build.arch !== "x86_64",
  "not root": Deno.uid() !== 0,
  "no gcc": !haveGcc(),
};

Deno.test({
  ...skipIf(
    "ptrace torture: 1001 injections into every kind of blocked thread",
    skip,
  ),
  async fn() {
    const t = await startTarget("torture");
    try {
      const tids = [...tortureTids(t.ready).values()];
      assertEquals(tids.length, 8);
      const regions = tortureRegions(t.ready);
      assertEquals(regions.length, 4);
      let deferred = 0;
      const paths = { inPlace: 0, vdso: 0 };
      let maxHold = 0;
      const N = 1001;
      for (let i = 0; i < N; i++) {
        const advice = BigInt(i % 2 === 0 ? MADV_MERGEABLE : MADV_UNMERGEABLE);
        // Every thread, both ways of injecting (vDSO-only on odd pairs).
        // The engine's own time limits (a stop within 5 s, a call within
        // 10 s) are what mergemem needs in production, not what is tested
        // here: generous ones, so that a slow or loaded machine (a TCG
        // guest) cannot fail an injection that is only late.
        const s = PtraceSession.open(t.pid, {
          tid: tids[i % tids.length],
          inPlace: (i >> 1) % 2 === 0,
          stopTimeoutMs: 120_000,
          callTimeoutMs: 120_000,
        });
        try {
          for (const r of regions) {
            assertEquals(
              s.call(NR_MADVISE, [r.start, r.end - r.start, advice]),
              0n,
            );
          }
          deferred += s.signalsDeferred;
          paths[s.inPlace ? "inPlace" : "vdso"]++;
        } finally {
          maxHold = Math.max(maxHold, s.close());
        }
        // Let the target run a little between holds, as marking does.
        if (i % 10 === 0) await new Promise((r) => setTimeout(r, 1));
      }
      // The last advice was MERGEABLE.
      for (const r of regions) assertEquals(mergeableAt(t.pid, r.start), true);
      await t.send("check");
      const report = await t.line();
      console.log(
        `torture: ${N} holds (${paths.inPlace} swapped in at a restart, ${paths.vdso} through the vDSO), ${deferred} signals deferred, longest hold ${
          maxHold.toFixed(2)
        } ms; target: ${report}`,
      );
      assert(report?.startsWith("ok "), `target reported: ${report}`);
      // Both ways of injecting were exercised: threads blocked in a call
      // (restart) and the busy loop (vDSO) or a thread between calls.
      assert(paths.inPlace > 0 && paths.vdso > 0, JSON.stringify(paths));
      assertEquals((await t.status).code, 0);
    } finally {
      await t.kill();
    }
  },
});
