/**
 * Scan benchmark: spawns workers with a known amount of memory and
 * measures, in the same run,
 *   (a) the raw rate of only reading the same present pages with a plain
 *       process_vm_readv loop (1 MiB batches),
 *   (b) the scan's rate (pages_present * page size / elapsed),
 *   (c) their ratio,
 *   (d) the tool's memory per scanned page: the peak RSS increase of a
 *       fresh scanning subprocess (VmHWM after - VmRSS before the scan)
 *       for a scan of all workers minus that for a scan of half of them,
 *       divided by the difference in pages (the marginal cost of a page;
 *       fixed costs such as Deno itself, JIT code and the read buffers
 *       cancel out), and, for reference, the plain increase per page,
 * for strategies hash/equalv and checksums fast/xxh64 with the user
 * back-end and, with --backend kernel (needs /dev/mergemem), hash/xxh64
 * with the kernel back-end (PAGEINFO: xxh64 in place, no copy). Each
 * figure is the median of --runs runs (raw read and full scan); the
 * per-phase wall times of the median scan are printed too.
 *
 *   deno run --allow-all bench/scan_bench.ts [--workers 4] [--mib 256]
 *     [--runs 3] [--backend user|kernel|user,kernel]
 *     [--only hash/xxh64,...] [--json FILE] [--fork] [--light]
 *     [--memory [--sample N] [--max-memory MIB]] [--trials T --sample N]
 *
 * With --fork every worker forks after filling its memory, so every page
 * is fork-shared (parent and child), read through /proc/PID/mem by the
 * scan and by the raw read alike.
 *
 * With --trials T --sample N it measures the accuracy of sampled scans
 * instead: one exact scan, then T sampled scans (slices 0..T-1 of N), and
 * for each estimated figure, in total, per process and per mapping, the
 * fraction of trials whose error lay within the reported bound. --light
 * (either mode) leaves out the one heavy content (the 20% duplicated
 * within): 40% unique, 50% common, 10% zero.
 *
 * With --memory it measures only memory, with the default scan (user
 * back-end, hash/xxh64): --runs scans of all workers and as many of the
 * first worker alone, each in a fresh process; bytes per scanned page =
 * (median peak-RSS increase of the scans of all - that of the scans of
 * one) / (their difference in pages), so that fixed costs (Deno, JIT
 * code, buffers, V8's young generation once grown)
 * cancel out; with the spread (min and max over the runs), and the peak
 * RSS of the whole tool for both. --sample N measures sampled scans,
 * --max-memory MIB exact scans with that budget (a huge one: one pass);
 * the default budget's passes are printed, and the median scan's seconds
 * and rate (for comparing one pass, K passes and a sampled scan).
 *
 * @module
 */
import { parseArgs } from "node:util";
import { errnoCode } from "../src/errors.ts";
import { scan } from "../src/scan/mod.ts";
import {
  addPages,
  newBatch,
  readBatchSync,
  readMem,
  resetBatch,
} from "../src/pages/vmread.ts";
import { readSmaps } from "../src/pages/maps.ts";
import { startWorker, type Worker } from "../tests/helpers/workers.ts";
import { createKernelBackend } from "../src/kmod/backend.ts";

const PS = 4096;

async function child(): Promise<void> {
  const opts = JSON.parse(Deno.args[1]);
  if (opts.backend === "kernel") {
    opts.backend = createKernelBackend();
    delete opts.checksum;
  } else delete opts.backend;
  const hwm = () => {
    const s = Deno.readTextFileSync("/proc/self/status");
    return {
      rss: Number(/VmRSS:\s+(\d+)/.exec(s)![1]) * 1024,
      hwm: Number(/VmHWM:\s+(\d+)/.exec(s)![1]) * 1024,
    };
  };
  // Reset the high-water mark so it measures the scan alone.
  Deno.writeTextFileSync("/proc/self/clear_refs", "5");
  const before = hwm();
  const profile = {};
  const r = await scan({ ...opts, profile });
  const after = hwm();
  console.log(JSON.stringify({
    elapsed: r.elapsed_seconds,
    present: r.totals.pages_present,
    saveable: r.totals.saveable_pages,
    rss_increase: after.hwm - before.rss,
    peak_rss: after.hwm,
    passes: r.passes ?? 1,
    profile,
  }));
}

/**
 * Reads the present candidate pages of `pids` as plainly as possible:
 * exclusive pages with process_vm_readv in 1 MiB batches, the others
 * (fork-shared) through /proc/PID/mem in runs of up to 1 MiB, since a
 * process_vm_readv pin would unshare them (docs/accounting.md).
 */
function rawRead(pids: number[]): { bytes: number; seconds: number } {
  const b = newBatch(256, PS);
  const ok = new Uint8Array(256);
  let bytes = 0;
  const t0 = performance.now();
  for (const pid of pids) {
    const f = Deno.openSync(`/proc/${pid}/pagemap`);
    const mem = Deno.openSync(`/proc/${pid}/mem`);
    for (const m of readSmaps(pid)) {
      if (!m.ksmEligible || !m.kb.Rss) continue;
      const n = (m.end - m.start) / PS;
      const pm = new Uint32Array(2 * n);
      f.seekSync((m.start / PS) * 8, Deno.SeekMode.Start);
      f.readSync(new Uint8Array(pm.buffer));
      resetBatch(b);
      let runStart = -1, runLen = 0;
      const flushRun = () => {
        if (runLen > 0) {
          try {
            readMem(
              mem,
              m.start + runStart * PS,
              b.bytes.subarray(0, runLen * PS),
            );
          } catch (err) {
            // Unmapped since pagemap was read: timed all the same. Losing
            // the worker is not.
            const code = errnoCode(err);
            if (code && ["ENOENT", "ESRCH", "EACCES", "EPERM"].includes(code)) {
              throw err;
            }
          }
          bytes += runLen * PS;
        }
        runLen = 0;
      };
      for (let k = 0; k < n; k++) {
        const hi = pm[2 * k + 1];
        if (!(hi & 0x80000000) || (hi & 0x20000000)) continue;
        if (!(hi & 0x01000000)) {
          if (runLen === 0 || runStart + runLen !== k || runLen === 256) {
            flushRun();
            runStart = k;
          }
          runLen++;
          continue;
        }
        if (addPages(b, m.start + k * PS, 1) === 0) {
          readBatchSync(pid, b, ok);
          bytes += b.pages * PS;
          resetBatch(b);
          addPages(b, m.start + k * PS, 1);
        }
      }
      if (b.pages) {
        readBatchSync(pid, b, ok);
        bytes += b.pages * PS;
        resetBatch(b);
      }
      flushRun();
    }
    mem.close();
    f.close();
  }
  return { bytes, seconds: (performance.now() - t0) / 1000 };
}

/** Runs one scan in a fresh process (the --child mode); returns its JSON. */
async function runChild(opts: unknown) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-all",
      import.meta.filename!,
      "--child",
      JSON.stringify(opts),
    ],
  }).output();
  if (!out.success) throw new Error(new TextDecoder().decode(out.stderr));
  return JSON.parse(new TextDecoder().decode(out.stdout));
}

/** The --memory mode (see the module documentation). */
async function memory(
  workers: Worker[],
  runs: number,
  json?: string,
  extra: Record<string, unknown> = {},
) {
  const all = [], one = [];
  for (let i = 0; i < runs; i++) {
    all.push(
      await runChild({
        selection: { pids: workers.map((w) => w.pid) },
        ...extra,
      }),
    );
    one.push(
      await runChild({ selection: { pids: [workers[0].pid] }, ...extra }),
    );
  }
  const med = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  const pages = all[0].present - one[0].present;
  const incAll = all.map((r) => r.rss_increase);
  const incOne = med(one.map((r) => r.rss_increase));
  const per = (x: number) => +((x - incOne) / pages).toFixed(1);
  const gib = (r: { present: number }) =>
    +(r.present * PS / 2 ** 30).toFixed(2);
  const mib = (xs: { peak_rss: number }[]) =>
    +(med(xs.map((r) => r.peak_rss)) / 2 ** 20).toFixed(1);
  const row = {
    scanned_gib: gib(all[0]),
    baseline_gib: gib(one[0]),
    bytes_per_page: per(med(incAll)),
    bytes_per_page_min: per(Math.min(...incAll)),
    bytes_per_page_max: per(Math.max(...incAll)),
    peak_rss_mib: mib(all),
    baseline_peak_rss_mib: mib(one),
    peak_rss_mib_max: +(Math.max(...all.map((r) => r.peak_rss)) / 2 ** 20)
      .toFixed(1),
    passes: all[0].passes,
    // Speed beside memory: passes and the heavy-content pass read every
    // page again; compare rows of one run, not across runs.
    seconds: med(all.map((r) => r.elapsed)),
    scan_gb_s: +(all[0].present * PS / med(all.map((r) => r.elapsed)) / 1e9)
      .toFixed(2),
    ...extra,
    runs,
    kernel: Deno.osRelease(),
  };
  console.log(JSON.stringify(row));
  if (json) {
    Deno.writeTextFileSync(json, JSON.stringify(row) + "\n", { append: true });
  }
}

/**
 * The --trials mode: one exact scan of every worker, then sampled scans of
 * slices 0..trials-1 of --sample N; for each estimated figure, in total,
 * per process and per mapping (with a non-zero exact or estimated value),
 * the fraction of (trial, figure) pairs whose error lies within the
 * reported bound.
 */
async function trials(
  pids: number[],
  n: number,
  count: number,
  json?: string,
) {
  const exact = await scan({ selection: { pids } });
  const figs = [
    "pages_duplicate",
    "pages_shared_already",
    "saveable_pages",
  ] as const;
  type Counts = { [k: string]: number | null | undefined };
  const tally: Record<string, { within: number; of: number; worst: number }> =
    {};
  const add = (level: string, e: Counts, s: Counts) => {
    for (const f of figs) {
      const truth = e[f] as number | null, est = s[f] as number | null;
      const bound = s[`${f}_error_bound`] as number | null;
      if (truth === null || est === null || bound === null) continue;
      if (level !== "total" && truth === 0 && est === 0) continue;
      const t = tally[`${level}:${f}`] ??= { within: 0, of: 0, worst: 0 };
      t.of++;
      if (Math.abs(est - truth) <= bound) t.within++;
      t.worst = Math.max(t.worst, Math.abs(est - truth) / Math.max(1, bound));
    }
  };
  const rel: number[] = [];
  for (let i = 0; i < Math.min(count, n); i++) {
    const r = await scan({ selection: { pids }, sample: n, sampleSlice: i });
    add(
      "total",
      exact.totals as unknown as Counts,
      r.totals as unknown as Counts,
    );
    rel.push(
      (r.totals.saveable_pages - exact.totals.saveable_pages) /
        Math.max(1, exact.totals.saveable_pages),
    );
    r.processes.forEach((p, pi) => {
      const e = exact.processes[pi];
      if (p.skipped || e.skipped || e.pid !== p.pid) return;
      add(
        "process",
        e.totals as unknown as Counts,
        p.totals as unknown as Counts,
      );
      p.mappings.forEach((m, mi) =>
        add(
          "mapping",
          e.mappings[mi] as unknown as Counts,
          m as unknown as Counts,
        )
      );
    });
  }
  const rows = Object.entries(tally).map(([k, t]) => ({
    figure: k,
    within: t.within,
    of: t.of,
    fraction: +(t.within / t.of).toFixed(3),
    worst_error_in_bounds: +t.worst.toFixed(2),
  }));
  console.table(rows);
  const summary = {
    sample: n,
    trials: Math.min(count, n),
    exact_pages_present: exact.totals.pages_present,
    exact_saveable_pages: exact.totals.saveable_pages,
    saveable_relative_error_max: +Math.max(...rel.map(Math.abs)).toFixed(4),
    rows,
    kernel: Deno.osRelease(),
  };
  console.log(JSON.stringify(summary));
  if (json) {
    Deno.writeTextFileSync(json, JSON.stringify(summary) + "\n", {
      append: true,
    });
  }
}

async function main(): Promise<void> {
  const a = parseArgs({
    args: Deno.args,
    options: {
      workers: { type: "string" },
      mib: { type: "string" },
      runs: { type: "string" },
      backend: { type: "string" },
      only: { type: "string" },
      json: { type: "string" },
      memory: { type: "boolean" },
      fork: { type: "boolean" },
      sample: { type: "string" },
      "max-memory": { type: "string" },
      trials: { type: "string" },
      light: { type: "boolean" },
    },
  });
  const backends = (a.values.backend ?? "user").split(",");
  for (const b of backends) {
    if (b !== "user" && b !== "kernel") throw new Error(`bad backend ${b}`);
  }
  if (backends.includes("kernel")) {
    try {
      Deno.statSync("/dev/mergemem");
    } catch {
      throw new Error("--backend kernel needs /dev/mergemem (the module)");
    }
  }
  const only = a.values.only?.split(",");
  const runs = Number(a.values.runs ?? 3);
  const nw = Number(a.values.workers ?? 4);
  const pages = (Number(a.values.mib ?? 256) * 1024 * 1024) / PS;
  // Mixed content: 40% unique, 30% common across workers, 20% duplicate
  // within (one content), 10% zero. --light leaves out the one heavy
  // content (see bench/README.md): 40% unique, 50% common, 10% zero.
  const heavy = !a.values.light;
  const spec = {
    unique: Math.round(pages * 0.4),
    common: Math.round(pages * (heavy ? 0.3 : 0.5)),
    dup: heavy ? Math.round(pages * 0.2) : 0,
    zero: Math.round(pages * 0.1),
  };
  const workers: Worker[] = [];
  try {
    for (let i = 0; i < nw; i++) {
      workers.push(await startWorker({ ...spec, fork: a.values.fork }));
    }
    const pids = workers.flatMap((w) => w.child ? [w.pid, w.child] : [w.pid]);
    if (a.values.trials) {
      await trials(
        pids,
        Number(a.values.sample ?? 64),
        Number(a.values.trials),
        a.values.json,
      );
      return;
    }
    if (a.values.memory) {
      await memory(workers, runs, a.values.json, {
        ...(a.values.sample ? { sample: Number(a.values.sample) } : {}),
        ...(a.values["max-memory"]
          ? { maxMemory: Number(a.values["max-memory"]) * 2 ** 20 }
          : {}),
      });
      return;
    }
    const rows = [];
    const phases: Record<string, unknown> = {};
    const median = <T>(xs: T[], key: (x: T) => number): T =>
      [...xs].sort((a, b) => key(a) - key(b))[xs.length >> 1];
    const child = runChild;
    const configs = [
      ["user", "hash", "fast"],
      ["user", "hash", "xxh64"],
      ["user", "equalv", "fast"],
      ["kernel", "hash", "xxh64"],
    ].filter(([b, s, c]) =>
      backends.includes(b) &&
      (!only || only.includes(`${s}/${s === "equalv" ? "none" : c}`))
    );
    for (const [backend, strategy, checksum] of configs) {
      const raws = [], scans = [];
      for (let i = 0; i < runs; i++) {
        raws.push(rawRead(pids));
        scans.push(
          await child({ selection: { pids }, strategy, checksum, backend }),
        );
      }
      const one = await child({
        selection: { pids: pids.slice(0, Math.max(1, pids.length >> 1)) },
        strategy,
        checksum,
        backend,
      });
      const raw = median(raws, (x) => x.bytes / x.seconds);
      const r = median(scans, (x) => x.present / x.elapsed);
      const inc = median(scans, (x) => x.rss_increase).rss_increase;
      const rawGBs = raw.bytes / raw.seconds / 1e9;
      const scanGBs = (r.present * PS) / r.elapsed / 1e9;
      const name = `${backend}:${strategy}/${
        strategy === "equalv" ? "none" : checksum
      }`;
      phases[name] = Object.fromEntries(
        Object.entries(r.profile as Record<string, number>).map((
          [k, v],
        ) => [k, Math.round(v)]),
      );
      rows.push({
        backend,
        strategy,
        checksum: strategy === "equalv" ? "none" : checksum,
        pages: r.present,
        raw_gb_s: +rawGBs.toFixed(2),
        scan_gb_s: +scanGBs.toFixed(2),
        ratio: +(scanGBs / rawGBs).toFixed(2),
        bytes_per_page: +((inc - one.rss_increase) /
          (r.present - one.present)).toFixed(1),
        incl_fixed: +(inc / r.present).toFixed(1),
        saveable_pages: r.saveable,
      });
    }
    console.log("phase wall times (ms) of the median scan:");
    for (const [k, v] of Object.entries(phases)) {
      console.log(k, JSON.stringify(v));
    }
    console.table(rows);
    const summary = JSON.stringify({
      workers: nw,
      mib_each: pages * PS / 2 ** 20,
      kernel: Deno.osRelease(),
      rows,
      phases,
    });
    console.log(summary);
    if (a.values.json) Deno.writeTextFileSync(a.values.json, summary + "\n");
  } finally {
    for (const w of workers) await w.stop();
  }
}

if (Deno.args[0] === "--child") await child();
else await main();
