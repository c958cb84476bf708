/**
 * What merge() does between the end of its scan and marking, step by step,
 * and one progress measure of the ksmd burst (src/merge/merge.ts), timed
 * natively. Run as root:
 *
 *   deno run -A bench/merge_plan_bench.ts [--workers 4] [--mib 32] [--runs 7]
 *
 * Starts --workers workers with --mib MiB each of content shared across
 * them (tests/helpers/worker.c, seed 77), scans them once per run, and
 * prints the median and the first (cold) milliseconds of each step:
 * "scan tail (+smaps)" from the scan's last progress callback to
 * scanForPlan's return (the scan's own analysis and the smaps read of
 * the mergeable mappings); then choosePlan, the selection's tenancy and
 * trust domains, chooseDomain, ksmHolders (every process on the host:
 * ksm_stat, and smaps where ksm_stat cannot decide), readSelectionFrames
 * (before), their sum ("scan end to marking"), one burst progress sample
 * (achievedNow: readSelectionFrames + freedSince, after a first one as in
 * the burst), the smaps read alone, and merge({ dryRun: true }) from its
 * scan's last progress callback to its return. No page is marked and KSM
 * is not touched (a dry run takes no lock and starts no burst).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { startWorker, type Worker } from "../tests/helpers/workers.ts";
import { choosePlan, scanForPlan } from "../src/merge/plan.ts";
import {
  chooseDomain,
  DEFAULT_TRUST_LEVEL,
  domainOf,
} from "../src/merge/trust.ts";
import { TenancyReader } from "../src/proc/tenant.ts";
import { ksmHolders } from "../src/ksm/holders.ts";
import {
  freedSince,
  readSelectionFrames,
  ZeroPageFilter,
} from "../src/merge/achieved.ts";
import { createUserBackend } from "../src/scan/user_backend.ts";
import { resolveBackend } from "../src/compose/engines.ts";
import { getChecksum } from "../src/hash/mod.ts";
import { readUid } from "../src/proc/info.ts";
import { readMergeableMappings } from "../src/ksm/process.ts";
import { merge } from "../src/merge/merge.ts";

const { values } = parseArgs({
  options: {
    workers: { type: "string", default: "4" },
    mib: { type: "string", default: "32" },
    runs: { type: "string", default: "7" },
  },
});
const W = Number(values.workers), RUNS = Number(values.runs);
const workers: Worker[] = [];
const times = new Map<string, number[]>();
const time = <T>(name: string, f: () => T): T => {
  const t = performance.now();
  const out = f();
  const ms = performance.now() - t;
  times.set(name, [...(times.get(name) ?? []), ms]);
  return out;
};
const timeAsync = async <T>(name: string, f: () => Promise<T>) => {
  const t = performance.now();
  const out = await f();
  times.set(name, [...(times.get(name) ?? []), performance.now() - t]);
  return out;
};
try {
  for (let i = 0; i < W; i++) {
    workers.push(
      await startWorker({ common: Number(values.mib) * 256, seed: 77 }),
    );
  }
  const pids = workers.map((w) => w.pid);
  const uids = new Map(pids.map((p) => [p, readUid(p)!]));
  const { backend } = resolveBackend(
    "auto",
    () => createUserBackend({ checksum: getChecksum("xxh64") }),
  );
  for (let run = 0; run < RUNS; run++) {
    let last = 0;
    const s = await timeAsync("scan", () =>
      scanForPlan({
        pids,
        backend,
        onProgress: () => last = performance.now(),
      }));
    times.set("scan tail (+smaps)", [
      ...(times.get("scan tail (+smaps)") ?? []),
      performance.now() - last,
    ]);
    const t0 = performance.now();
    const plan = time("choosePlan", () => choosePlan(s, { minSaving: 16 }));
    const tenancy = new TenancyReader();
    const domains = time(
      "tenancy+domainOf",
      () =>
        new Map(
          [...uids].map(([pid, uid]) => [
            pid,
            domainOf(uid, tenancy.read(pid), {
              level: DEFAULT_TRUST_LEVEL,
              crossUser: false,
            }),
          ]),
        ),
    );
    await timeAsync(
      "chooseDomain",
      () =>
        chooseDomain(domains, "refuse", () => {
          throw new Error("one domain");
        }),
    );
    time("ksmHolders", () => ksmHolders(new Set([Deno.pid])));
    const zero = new ZeroPageFilter();
    const ranges = new Map(
      plan.processes.map((p) => [
        p.pid,
        p.vmas.map((v) => ({ start: BigInt(v.start), end: BigInt(v.end) })),
      ]),
    );
    const before = time(
      "readSelectionFrames",
      () => readSelectionFrames(ranges, zero),
    );
    times.set("scan end to marking", [
      ...(times.get("scan end to marking") ?? []),
      performance.now() - t0,
    ]);
    // As merge.ts measures burst progress: the first sample also unites
    // the frames before; the burst's later samples are timed.
    const freed = freedSince(before, plan.pinnedFrames);
    freed(readSelectionFrames(ranges, zero));
    const f = time(
      "achievedNow",
      () => freed(readSelectionFrames(ranges, zero)),
    );
    zero.close();
    time("smaps (mergeable)", () => pids.map((p) => readMergeableMappings(p)));
    let lastScan = 0;
    await merge({
      pids,
      engine: "ptrace",
      dryRun: true,
      onProgress: (p) => {
        if (p.phase === "scan") lastScan = performance.now();
      },
    });
    times.set("merge dry: scan end..", [
      ...(times.get("merge dry: scan end..") ?? []),
      performance.now() - lastScan,
    ]);
    if (run === 0) {
      console.log(
        `${W} workers x ${values.mib} MiB: predicted ${plan.predictedSaveablePages}, frames ${f.before}`,
      );
    }
  }
  backend.dispose?.();
  const median = (a: number[]) => [...a].sort((x, y) => x - y)[a.length >> 1];
  for (const [name, a] of times) {
    console.log(
      `${name.padEnd(22)} median ${median(a).toFixed(2).padStart(8)} ms  ` +
        `first ${a[0].toFixed(1).padStart(6)}  ` +
        `(${a.map((x) => x.toFixed(1)).join(" ")})`,
    );
  }
} finally {
  for (const w of workers) await w.stop();
}
