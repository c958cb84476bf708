/**
 * Merge benchmark (run as root where the module is loaded, i.e. in the test
 * VM: tests/vm/guest/t_40_merge_bench.sh):
 *
 *   deno run -A bench/merge_bench.ts [--workers 4] [--mib 32] [--after 60]
 *
 * Compares, on the same workers (--workers processes with --mib MiB each of
 * content identical across them and distinct within one), in one run:
 *
 * - "mergemem": workers do not opt in; mergemem merge (scan through the
 *   module, mark, ksmd burst, settings restored to run=0);
 * - "ksm-default": workers opt in themselves from the start (MADV_MERGEABLE),
 *   ksmd runs with its default settings (pages_to_scan=100, 20 ms);
 * - "ksm-max": the same with pages_to_scan=10000, sleep_millisecs=0.
 *
 * For each: seconds until 95% of the achievable saving ((workers − 1) ×
 * pages) shows in pages_sharing, ksmd CPU seconds (utime + stime of the ksmd
 * thread) until then, mergemem's own CPU seconds, and ksmd CPU during the
 * --after seconds that follow (the ongoing cost of each way).
 *
 * @module
 */
import { cpuSeconds, ksmdPid } from "./ksmd.ts";
import { parseArgs } from "node:util";
import { startWorker, type Worker } from "../tests/helpers/workers.ts";
import { merge } from "../src/merge/merge.ts";

const { values } = parseArgs({
  options: {
    workers: { type: "string", default: "4" },
    mib: { type: "string", default: "32" },
    after: { type: "string", default: "60" },
    json: { type: "string" },
  },
});
const W = Number(values.workers);
const PAGES = Number(values.mib) * 256;
const AFTER = Number(values.after);
const KSM = "/sys/kernel/mm/ksm";

const ksm = (n: string) => Deno.readTextFileSync(`${KSM}/${n}`).trim();
const setKsm = (n: string, v: string) =>
  Deno.writeTextFileSync(`${KSM}/${n}`, v);
const now = (t0: number) =>
  Number(((performance.now() - t0) / 1000).toFixed(3));
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Unmerges everything and puts KSM back to its defaults. */
async function resetKsm() {
  setKsm("run", "2");
  while (Number(ksm("pages_sharing")) > 0) await sleep(50);
  setKsm("run", "0");
  setKsm("pages_to_scan", "100");
  setKsm("sleep_millisecs", "20");
}

interface Row {
  config: string;
  seconds_to_95: number | null;
  ksmd_cpu_to_95: number;
  tool_cpu: number;
  ksmd_cpu_after: number;
  achieved_pages: number;
  achievable_pages: number;
  /** mergemem only: seconds from the clock's start to each phase. */
  phases?: Record<string, number>;
  /** mergemem only: from the merge report. */
  scans?: number;
  ksmd_full_scans?: number;
  burst_seconds?: number;
}

async function measure(
  config: string,
  start: (ws: Worker[], t0: number) => Promise<Partial<Row> | void>,
  optin: boolean,
): Promise<Row> {
  await resetKsm();
  const ws: Worker[] = [];
  for (let i = 0; i < W; i++) {
    ws.push(await startWorker({ common: PAGES, seed: 77, optin }));
  }
  const achievable = (W - 1) * PAGES;
  const goal = Math.ceil(0.95 * achievable);
  const ksmd = ksmdPid();
  const sharing0 = Number(ksm("pages_sharing"));
  const cpu0 = cpuSeconds(ksmd);
  const self0 = cpuSeconds("self");
  const t0 = performance.now();
  let t95: number | null = null;
  let cpu95 = 0;
  const poll = setInterval(() => {
    if (t95 === null && Number(ksm("pages_sharing")) - sharing0 >= goal) {
      t95 = (performance.now() - t0) / 1000;
      cpu95 = cpuSeconds(ksmd) - cpu0;
    }
  }, 20);
  let extra: Partial<Row> | void = undefined;
  try {
    extra = await start(ws, t0);
    const deadline = performance.now() + 600_000;
    while (t95 === null && performance.now() < deadline) await sleep(20);
  } finally {
    clearInterval(poll);
  }
  const tool = cpuSeconds("self") - self0;
  const cpuA = cpuSeconds(ksmd);
  await sleep(AFTER * 1000);
  const after = cpuSeconds(ksmd) - cpuA;
  const achieved = Number(ksm("pages_sharing")) - sharing0;
  for (const w of ws) await w.stop();
  const row: Row = {
    config,
    seconds_to_95: t95,
    ksmd_cpu_to_95: cpu95,
    tool_cpu: config.startsWith("mergemem") ? tool : 0,
    ksmd_cpu_after: after,
    achieved_pages: achieved,
    achievable_pages: achievable,
    ...extra,
  };
  console.log(JSON.stringify(row));
  return row;
}

const rows: Row[] = [];
{
  rows.push(
    await measure("mergemem", async (ws, t0) => {
      // Phase starts (s since t0): "scan N" (first progress of scan N),
      // "mark", "ksmd", "done".
      const phases: Record<string, number> = {};
      const at = (k: string) => {
        phases[k] ??= now(t0);
      };
      at("start");
      const r = await merge({
        pids: ws.map((w) => w.pid),
        timeoutSeconds: 600,
        onProgress: (p) => {
          if (p.phase === "scan") {
            at("scan");
            phases["scan last"] = now(t0);
          } else at(p.phase);
        },
      });
      at("done");
      return {
        phases,
        scans: 1,
        ksmd_full_scans: r.ksmd_full_scans,
        burst_seconds: Number(r.seconds.toFixed(3)),
      };
    }, false),
  );
}
rows.push(
  await measure("ksm-default", () => {
    setKsm("run", "1");
    return Promise.resolve();
  }, true),
);
rows.push(
  await measure("ksm-max", () => {
    setKsm("pages_to_scan", "10000");
    setKsm("sleep_millisecs", "0");
    setKsm("run", "1");
    return Promise.resolve();
  }, true),
);
await resetKsm();

const base = rows[0];
const fmt = (n: number | null, d = 2) => n === null ? "-" : n.toFixed(d);
console.log(
  `\n${W} workers × ${values.mib} MiB, kernel ${Deno.osRelease()}, ${AFTER} s after\n`,
);
console.log(
  "| config | s to 95% | ksmd CPU s to 95% | tool CPU s | ksmd CPU s in the next " +
    AFTER +
    " s | time ratio vs mergemem |",
);
console.log("| --- | --- | --- | --- | --- | --- |");
for (const r of rows) {
  const ratio = r.seconds_to_95 !== null && base.seconds_to_95
    ? (r.seconds_to_95 / base.seconds_to_95).toFixed(1)
    : "-";
  console.log(
    `| ${r.config} | ${fmt(r.seconds_to_95)} | ${fmt(r.ksmd_cpu_to_95)} | ${
      fmt(r.tool_cpu)
    } | ${fmt(r.ksmd_cpu_after)} | ${ratio} |`,
  );
}
console.log(
  `\nmergemem phases: ${
    JSON.stringify(base.phases)
  }, scans ${base.scans}, ksmd full scans ${base.ksmd_full_scans}, burst ${base.burst_seconds} s`,
);
if (values.json) {
  Deno.writeTextFileSync(values.json, JSON.stringify(rows, null, 2) + "\n");
}
