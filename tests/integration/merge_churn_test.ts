/**
 * Processes that vanish during a merge (issue 7, "processes that vanish"):
 * 20 merges of a selection holding a server whose children exit (or exec)
 * at random moments and linger unreaped, plus workers of exactly known
 * memory. No merge may fail; vanished processes are skipped with their
 * reason; the survivors' figures are the same in every run. Each run is
 * undone (unmerge) so that the next starts from the same state.
 *
 * It uses whatever engine `auto` picks: the module where it is loaded (the
 * VMs), the ptrace engine elsewhere (this host). Run as root.
 */
import { deepStrictEqual as eq, ok } from "node:assert/strict";
import { merge } from "../../src/merge/merge.ts";
import { unmerge } from "../../src/merge/unmerge.ts";
import { selectProcesses } from "../../src/proc/select.ts";
import { startWorker, type Worker } from "../helpers/workers.ts";
import { startChurnServer } from "../helpers/churn.ts";
import { ksmUsable } from "../helpers/ksm_sysfs.ts";
import { skipIf } from "../helpers/skip.ts";

const RUNS = 20;
// No zero-filled pages: that content is everywhere, and which process
// "keeps" it would depend on the churn children's pids.
const SPEC = { dup: 64, unique: 16, common: 64 };

Deno.test({
  ...skipIf("merge: 20 merges while a server's children exit and linger", {
    "no usable KSM (needs root and /sys/kernel/mm/ksm)": !ksmUsable(),
    "not x86-64": Deno.build.arch !== "x86_64",
  }),
  async fn() {
    const workers: Worker[] = [];
    for (let i = 0; i < 3; i++) workers.push(await startWorker(SPEC));
    const survivors = workers.map((w) => w.pid);
    const server = await startChurnServer(8, 512);
    const ksm = (k: string) =>
      Deno.readTextFileSync(`/sys/kernel/mm/ksm/${k}`).trim();
    const knobs = ["run", "pages_to_scan", "sleep_millisecs"];
    const before = knobs.map(ksm);
    let first: unknown;
    let skips = 0;
    try {
      for (let i = 0; i < RUNS; i++) {
        const children = selectProcesses({ comms: [server.comm] }).processes
          .map((p) => p.pid);
        const t0 = Date.now();
        const r = await merge({
          pids: [...survivors, ...children],
          minSaving: 0,
          timeoutSeconds: 20,
        });
        console.log(
          `run ${i}: ${
            Date.now() - t0
          } ms, ${r.skipped.length} skipped, predicted ${r.predicted_saveable_pages} achieved ${r.achieved_pages} (${r.engine}, ${r.ksmd_end})`,
        );
        skips += r.skipped.length;
        for (const s of r.skipped) {
          ok(
            /exited|gone|does not exist|zombie/.test(s.reason),
            `run ${i}: skip reason ${s.reason}`,
          );
        }
        const rows = survivors.map((pid) => {
          const p = r.processes.find((x) => x.pid === pid);
          ok(p, `run ${i}: survivor ${pid} missing`);
          ok(p.vmas_marked + p.vmas_already_mergeable >= 1, `run ${i}: marked`);
          return {
            chosen: p.vmas_chosen,
            duplicate: p.duplicate_pages,
            predicted: p.predicted_saveable_pages,
          };
        });
        first ??= rows;
        eq(rows, first, `run ${i}: the survivors' figures changed`);
        eq(knobs.map(ksm), before, `run ${i}: ksmd settings restored`);
        await unmerge({ pids: survivors, force: true });
      }
    } finally {
      await server.stop();
      for (const w of workers) await w.stop();
    }
    console.log(`${skips} processes skipped over ${RUNS} merges`);
  },
});
