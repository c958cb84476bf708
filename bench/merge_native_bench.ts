/**
 * Native-speed merge benchmark with the ptrace engine (no module, no VM):
 * run as root on an x86-64 host with KSM.
 *
 *   deno run -A bench/merge_native_bench.ts [--workers 4] [--mib 32] \
 *     [--after 60] [--configs mergemem,ksm-default,ksm-max] [--json FILE]
 *
 * Compares, on fresh workers each time (--workers processes with --mib MiB
 * each of content identical across them and distinct within one,
 * tests/helpers/worker.c), in one run:
 *
 * - "mergemem": workers do not opt in; merge() with engine "ptrace": scan
 *   (user back-end), mark (the workers call madvise themselves, injected),
 *   ksmd burst, settings restored (run=0);
 * - "ksm-default": workers opt in themselves from the start, ksmd runs with
 *   its default settings (pages_to_scan 100, sleep_millisecs 20);
 * - "ksm-max": the same with pages_to_scan 10000, sleep_millisecs 0.
 *
 * `--configs` runs a subset (ksm-default needs about 2 minutes per GiB of
 * workers: leave it out at big sizes). For each: seconds from the start
 * until 95% of the achievable saving, measured on the workers themselves (the sum of their ksm_merging_pages
 * reaching 95% of workers × pages, so other KSM users on the host do not
 * count), ksmd's CPU seconds until then, the tool's own CPU seconds, and
 * ksmd's CPU seconds in the --after seconds that follow (the ongoing cost).
 *
 * The host's KSM is shared: each configuration runs under the KSM lock
 * (src/ksm/lock.ts), starts from run=0, and every setting it changed is
 * restored afterwards. It never writes run=2 (that would unmerge every
 * other KSM user on the host). Other mergeable memory on the host is
 * scanned by ksmd too and slows every configuration alike: its size is
 * printed.
 *
 * @module
 */
import { cpuSeconds, ksmdPid } from "./ksmd.ts";
import { parseArgs } from "node:util";
import { startWorker, type Worker } from "../tests/helpers/workers.ts";
import { merge } from "../src/merge/merge.ts";
import { mergingPages } from "../src/ksm/process.ts";
import { withKsmLock } from "../src/ksm/lock.ts";

const { values } = parseArgs({
  options: {
    workers: { type: "string", default: "4" },
    mib: { type: "string", default: "32" },
    after: { type: "string", default: "60" },
    configs: { type: "string", default: "mergemem,ksm-default,ksm-max" },
    json: { type: "string" },
  },
});
const CONFIGS = new Set(values.configs.split(","));
for (const c of CONFIGS) {
  if (!["mergemem", "ksm-default", "ksm-max"].includes(c)) {
    console.error(`--configs: unknown configuration ${c}`);
    Deno.exit(2);
  }
}
if (!CONFIGS.has("mergemem")) {
  console.error("--configs: mergemem is the baseline of the ratios");
  Deno.exit(2);
}
const W = Number(values.workers);
const PAGES = Number(values.mib) * 256;
const AFTER = Number(values.after);
const KSM = "/sys/kernel/mm/ksm";
const KNOBS = ["pages_to_scan", "sleep_millisecs", "run"]; // restore order

const ksm = (n: string) => Deno.readTextFileSync(`${KSM}/${n}`).trim();
const setKsm = (n: string, v: string) =>
  Deno.writeTextFileSync(`${KSM}/${n}`, v);
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

interface Row {
  config: string;
  seconds_to_95: number | null;
  ksmd_cpu_to_95: number;
  tool_cpu: number;
  ksmd_cpu_after: number;
  merging_pages: number;
  goal_pages: number;
  other_mergeable_pages: number;
  /** mergemem only. */
  hold_ms_max?: number;
  burst_seconds?: number;
  achieved_pages?: number;
  predicted_pages?: number;
}

async function measure(
  config: string,
  optin: boolean,
  start: (ws: Worker[]) => Promise<Partial<Row> | void>,
): Promise<Row> {
  return await withKsmLock(
    { lockHolder: "bench/merge_native_bench.ts" },
    async () => {
      const saved = Object.fromEntries(KNOBS.map((k) => [k, ksm(k)]));
      setKsm("run", "0");
      const ws: Worker[] = [];
      try {
        for (let i = 0; i < W; i++) {
          ws.push(await startWorker({ common: PAGES, seed: 77, optin }));
        }
        const others = Number(ksm("pages_shared")) +
          Number(ksm("pages_unshared")) + Number(ksm("pages_volatile"));
        const goal = Math.ceil(0.95 * W * PAGES);
        const merged = () => ws.reduce((a, w) => a + mergingPages(w.pid), 0);
        const ksmd = ksmdPid();
        const cpu0 = cpuSeconds(ksmd);
        const self0 = cpuSeconds("self");
        const t0 = performance.now();
        let t95: number | null = null;
        let cpu95 = 0;
        const poll = setInterval(() => {
          if (t95 === null && merged() >= goal) {
            t95 = (performance.now() - t0) / 1000;
            cpu95 = cpuSeconds(ksmd) - cpu0;
          }
        }, 20);
        let extra: Partial<Row> | void = undefined;
        try {
          extra = await start(ws);
          const deadline = performance.now() + 600_000;
          while (t95 === null && performance.now() < deadline) await sleep(20);
        } finally {
          clearInterval(poll);
        }
        const tool = cpuSeconds("self") - self0;
        const cpuA = cpuSeconds(ksmd);
        await sleep(AFTER * 1000);
        const row: Row = {
          config,
          seconds_to_95: t95,
          ksmd_cpu_to_95: cpu95,
          tool_cpu: config === "mergemem" ? tool : 0,
          ksmd_cpu_after: cpuSeconds(ksmd) - cpuA,
          merging_pages: merged(),
          goal_pages: goal,
          other_mergeable_pages: others,
          ...extra,
        };
        console.log(JSON.stringify(row));
        return row;
      } finally {
        for (const w of ws) await w.stop();
        for (const k of KNOBS) {
          if (ksm(k) !== saved[k]) setKsm(k, saved[k]);
        }
      }
    },
  );
}

const rows: Row[] = [];
rows.push(
  await measure("mergemem", false, async (ws) => {
    const r = await merge({
      pids: ws.map((w) => w.pid),
      engine: "ptrace",
      timeoutSeconds: 600,
    });
    return {
      hold_ms_max: Math.max(...r.processes.map((p) => p.hold_ms_max ?? 0)),
      burst_seconds: Number(r.seconds.toFixed(3)),
      achieved_pages: r.achieved_pages,
      predicted_pages: r.predicted_saveable_pages,
    };
  }),
);
/** Workers opted in from their start, ksmd left running at these settings. */
const plainKsm = (pages: string, sleepMs: string) => () => {
  setKsm("pages_to_scan", pages);
  setKsm("sleep_millisecs", sleepMs);
  setKsm("run", "1");
  return Promise.resolve();
};
if (CONFIGS.has("ksm-default")) {
  rows.push(await measure("ksm-default", true, plainKsm("100", "20")));
}
if (CONFIGS.has("ksm-max")) {
  rows.push(await measure("ksm-max", true, plainKsm("10000", "0")));
}

const base = rows[0];
const fmt = (n: number | null | undefined, d = 2) =>
  n === null || n === undefined ? "-" : n.toFixed(d);
console.log(
  `\n${W} workers × ${values.mib} MiB, kernel ${Deno.osRelease()}, ${AFTER} s after, ` +
    `other mergeable pages on the host ~${base.other_mergeable_pages}\n`,
);
console.log(
  `| config | s to 95% | ksmd CPU s to 95% | tool CPU s | ksmd CPU s in the next ${AFTER} s | time vs mergemem |`,
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
  `\nmergemem: longest hold ${fmt(base.hold_ms_max)} ms, burst ${
    fmt(base.burst_seconds)
  } s, achieved ${base.achieved_pages} of ${base.predicted_pages} predicted pages`,
);
if (values.json) {
  Deno.writeTextFileSync(values.json, JSON.stringify(rows, null, 2) + "\n");
}
