/**
 * End to end on the host's own KSM with the ptrace engine (this host has
 * no module): merge() of three workers of known content marks their VMAs
 * from inside them, the burst achieves at least 95% of the prediction,
 * contents stay intact, copy-on-write stays private to the writer, ksmd's
 * settings are restored; unmerge() unmarks them the same way. Then the
 * same with --whole-process (PR_SET_MEMORY_MERGE).
 */
import {
  deepStrictEqual as assertEquals,
  ok as assert,
} from "node:assert/strict";
import { merge } from "../../src/merge/merge.ts";
import { unmerge } from "../../src/merge/unmerge.ts";
import {
  readMergeableMappings,
  readProcessKsm,
} from "../../src/ksm/process.ts";
import { assertIntact } from "../helpers/assert.ts";
import { haveGcc } from "../helpers/gcc.ts";
import { ksmFile, ksmUsable } from "../helpers/ksm_sysfs.ts";
import { startWorker, type Worker } from "../helpers/workers.ts";
import { skipIf } from "../helpers/skip.ts";

const skip = {
  "no usable KSM (needs root and /sys/kernel/mm/ksm)": !ksmUsable(),
  "no gcc": !haveGcc(),
  "not x86-64": Deno.build.arch !== "x86_64",
};
const KNOBS = ["run", "pages_to_scan", "sleep_millisecs", "max_page_sharing"];
const N = 1500;

async function endToEnd(wholeProcess: boolean) {
  const before = KNOBS.map(ksmFile);
  const ws: Worker[] = [];
  try {
    for (let i = 0; i < 3; i++) {
      ws.push(await startWorker({ common: N, seed: 7, uniqueApart: 50 }));
    }
    const pids = ws.map((w) => w.pid);
    const r = await merge({
      pids,
      engine: "ptrace",
      wholeProcess,
      minSaving: 0,
      timeoutSeconds: 60,
    });
    assertEquals(r.engine, "ptrace");
    assertEquals(r.engine_reason, "requested: ptrace");
    assertEquals(r.whole_process, wholeProcess);
    assertEquals(r.skipped, []);
    // Three copies of N identical pages: 2N can go.
    assert(
      r.predicted_saveable_pages >= 2 * N,
      `predicted ${r.predicted_saveable_pages}`,
    );
    assert(
      r.achieved_pages >= 0.95 * r.predicted_saveable_pages,
      `achieved ${r.achieved_pages} of ${r.predicted_saveable_pages}`,
    );
    for (const p of r.processes) {
      assert(p.vmas_marked >= 1, `pid ${p.pid} marked ${p.vmas_marked}`);
      assert(p.hold_ms_max !== null && p.hold_ms_max >= 0);
      assertEquals(
        Deno.readTextFileSync(`/proc/${p.pid}/status`).match(
          /TracerPid:\s*(\d+)/,
        )?.[1],
        "0",
      );
    }
    assertEquals(r.ksm_settings_restore_mismatch, {});
    assertEquals(KNOBS.map(ksmFile), before);
    // Contents intact; a write stays private to its writer.
    await assertIntact(ws);
    const peek = await ws[1].command("peek 9");
    assert((await ws[0].command("write 9")) !== `wrote ${ws[0].checksum}`);
    assertEquals(await ws[1].command("peek 9"), peek);
    await assertIntact(ws.slice(1));

    if (wholeProcess) {
      for (const pid of pids) {
        assertEquals(readProcessKsm(pid)?.stat.ksm_merge_any, "yes");
      }
    }
    const u = await unmerge({ pids, engine: "ptrace", noRefresh: true });
    assertEquals(u.engine, "ptrace");
    // Unmerge also clears a whole-process mark, so nothing is marked again.
    for (const pid of pids) {
      assertEquals(readMergeableMappings(pid), []);
      if (wholeProcess) {
        assertEquals(readProcessKsm(pid)?.stat.ksm_merge_any, "no");
      }
    }
    assertEquals(KNOBS.map(ksmFile), before);
  } finally {
    for (const w of ws) await w.stop();
  }
}

Deno.test({
  ...skipIf(
    "merge --engine ptrace on the host's KSM: >= 95% of the prediction",
    skip,
  ),
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () => endToEnd(false),
});

Deno.test({
  ...skipIf("merge --engine ptrace --whole-process on the host's KSM", {
    ...skip,
    "no PR_SET_MEMORY_MERGE (Linux 6.4+)":
      !("ksm_merge_any" in (readProcessKsm(Deno.pid)?.stat ?? {})),
  }),
  sanitizeResources: false,
  sanitizeOps: false,
  fn: () => endToEnd(true),
});
