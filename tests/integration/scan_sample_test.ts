/**
 * Content slices on real workers (run as root): a scan in K passes (a
 * small maxMemory) gives the one-pass figures exactly, per process and
 * mapping (with every checksum, byte confirmation, equalv, and without
 * PFNs as an unprivileged user); `sample: 1` is the exact scan; over the N slices of a sampled
 * scan the estimates average to the exact figures exactly (each content
 * lies in one slice); and for workers of many equal-weight contents the
 * estimates of every slice lie within their error bounds (the contents
 * and hence their slices are fixed by the seed, so this cannot flake).
 */
import {
  deepStrictEqual as assertEquals,
  ok,
  strictEqual,
} from "node:assert/strict";
import { scan } from "../../src/scan/mod.ts";
import { BOUND_Z } from "../../src/dedup/sample.ts";
import type {
  PageCounts,
  ScanProgress,
  ScanResult,
} from "../../src/scan/mod.ts";
import { STANDARD_SPEC, startWorker, type Worker } from "../helpers/workers.ts";
import { denoRunAs, testUser, type User } from "../helpers/run_as.ts";

const SAMPLED = [
  "pages_duplicate",
  "pages_shared_already",
  "saveable_pages",
] as const;

/** The figures of a result without timing and sampling fields. */
function figures(r: ScanResult) {
  const strip = (c: PageCounts) => {
    const o: Record<string, unknown> = { ...c };
    for (const k of Object.keys(o)) if (k.endsWith("_error_bound")) delete o[k];
    delete o.pages_ksm;
    delete o.pages_thp;
    // smaps' Rss, read at each scan's start, may move by a page (a
    // worker's stack, Deno's own mappings' file pages): not a scan figure.
    delete o.rss_pages;
    delete o.noncandidate_present_pages;
    return o;
  };
  return {
    totals: strip(r.totals),
    processes: r.processes.map((p) => ({
      pid: p.pid,
      skipped: p.skipped,
      totals: strip(p.totals),
      mappings: p.mappings.map(strip),
    })),
  };
}

async function withWorkers(
  specs: Parameters<typeof startWorker>[0][],
  fn: (pids: number[]) => Promise<void>,
): Promise<void> {
  const ws: Worker[] = [];
  try {
    for (const s of specs) ws.push(await startWorker(s));
    const pids = ws.flatMap((w) => w.child ? [w.pid, w.child] : [w.pid]);
    // A forked worker and its child may still break copy-on-write sharing
    // (libc's and the loader's data) right after READY: the comparisons
    // need memory that no longer changes, so wait for two scans in a row
    // to agree.
    let last = JSON.stringify(figures(await scan({ selection: { pids } })));
    for (let i = 0; i < 50; i++) {
      await new Promise((r) => setTimeout(r, 100));
      const now = JSON.stringify(figures(await scan({ selection: { pids } })));
      if (now === last) break;
      last = now;
    }
    await fn(pids);
  } finally {
    for (const w of ws) await w.stop();
  }
}

// Zero-filled pages of every kind (exclusive frames, the kernel's zero
// page, fork-shared frames) in numbers that the scans count instead of
// keeping (src/scan/collect.ts, DroppedRows).
const MIXED = [
  { ...STANDARD_SPEC, common: 300 },
  { ...STANDARD_SPEC, common: 300, fork: true },
  { ...STANDARD_SPEC, common: 200, unique: 50 },
  { common: 50, zero: 200, zeroRead: 300 },
  { common: 50, zero: 20, zeroRead: 30, fork: true },
];

Deno.test("a scan in passes gives the one-pass figures, mapping by mapping", async () => {
  await withWorkers(MIXED, async (pids) => {
    const one = await scan({ selection: { pids } });
    strictEqual(one.passes, undefined);
    // Rows of the workers and of every process's other pages: a budget of
    // a few hundred rows makes several passes.
    let last: ScanProgress | null = null;
    const many = await scan({
      selection: { pids },
      maxMemory: 23 * 400,
      onProgress: (p) => void (last = p),
    });
    ok((many.passes ?? 1) >= 3, `passes: ${many.passes}`);
    // Progress counts the pages read in every pass.
    strictEqual(
      (last as ScanProgress | null)?.pagesDone,
      many.passes! * (many.totals.pages_present + many.totals.pages_vanished),
    );
    assertEquals(figures(many), figures(one));
    assertEquals(many.totals.pages_ksm, one.totals.pages_ksm);
    assertEquals(many.totals.pages_thp, one.totals.pages_thp);
    ok(one.totals.pages_duplicate > 0 && one.totals.pages_shared_already! > 0);
  });
});

Deno.test("passes are exact with every checksum, byte confirmation and equalv", async () => {
  await withWorkers(MIXED, async (pids) => {
    for (
      const o of [
        { checksum: "fast" },
        { checksum: "const" },
        { confirm: true },
        { strategy: "equalv" as const },
      ]
    ) {
      const one = await scan({ selection: { pids }, ...o });
      const many = await scan({
        selection: { pids },
        ...o,
        maxMemory: 23 * 400,
      });
      ok(
        (many.passes ?? 1) >= 3,
        `${JSON.stringify(o)}: passes ${many.passes}`,
      );
      assertEquals(figures(many), figures(one), JSON.stringify(o));
    }
  });
});

Deno.test("sample: 1 is the exact scan, with bounds of 0", async () => {
  await withWorkers(MIXED, async (pids) => {
    const exact = await scan({ selection: { pids } });
    let last: ScanProgress | null = null;
    const s1 = await scan({
      selection: { pids },
      sample: 1,
      onProgress: (p) => void (last = p),
    });
    strictEqual(
      (last as ScanProgress | null)?.pagesDone,
      s1.totals.pages_present + s1.totals.pages_vanished,
    );
    assertEquals(s1.sample, { slices: 1, slice: 0, z: BOUND_Z });
    assertEquals(figures(s1), figures(exact));
    strictEqual(s1.totals.saveable_pages_error_bound, 0);
    strictEqual(s1.totals.pages_duplicate_error_bound, 0);
    strictEqual(s1.totals.pages_shared_already_error_bound, 0);
    strictEqual(s1.totals.saveable_bytes_error_bound, 0);
    for (const p of s1.processes) {
      for (const m of p.mappings) strictEqual(m.saveable_pages_error_bound, 0);
    }
  });
});

Deno.test("over all N slices the estimates average to the exact figures", async () => {
  await withWorkers(MIXED, async (pids) => {
    const N = 4;
    const exact = await scan({ selection: { pids } });
    const slices: ScanResult[] = [];
    for (let i = 0; i < N; i++) {
      slices.push(
        await scan({ selection: { pids }, sample: N, sampleSlice: i }),
      );
    }
    const ex = figures(exact);
    const fs = slices.map(figures);
    for (const s of slices) {
      // Exact figures stay exact in every slice.
      strictEqual(s.totals.pages_present, exact.totals.pages_present);
      strictEqual(s.totals.pages_zero, exact.totals.pages_zero);
      strictEqual(s.totals.pages_scanned, exact.totals.pages_scanned);
      strictEqual(s.totals.pages_ksm, null);
      // Mapping by mapping too (zero-filled pages are counted, not kept).
      s.processes.forEach((p, pi) =>
        p.mappings.forEach((m, mi) => {
          const e = exact.processes[pi].mappings[mi];
          for (
            const k of [
              "pages_present",
              "pages_zero",
              "pages_shared_already_estimate",
            ] as const
          ) strictEqual(m[k], e[k], `pid ${p.pid} mapping ${mi} ${k}`);
        })
      );
    }
    const mean = (get: (f: ReturnType<typeof figures>) => unknown) =>
      fs.reduce((a, f) => a + (get(f) as number), 0) / N;
    for (const k of SAMPLED) {
      strictEqual(mean((f) => f.totals[k]), ex.totals[k], `totals ${k}`);
      ex.processes.forEach((p, pi) => {
        strictEqual(
          mean((f) => f.processes[pi].totals[k]),
          p.totals[k],
          `pid ${p.pid} ${k}`,
        );
        p.mappings.forEach((m, mi) => {
          strictEqual(
            mean((f) => f.processes[pi].mappings[mi][k]),
            m[k],
            `pid ${p.pid} mapping ${mi} ${k}`,
          );
        });
      });
    }
  });
});

Deno.test("estimates of many equal-weight contents and one heavy content lie within their bounds", async () => {
  // 1500 contents, each in 3 workers (duplicate 3, saveable 2 each), plus
  // zero pages (exact) and one content of 1000 pages in each worker (a
  // third of every figure: found by the first pass, counted exactly). The
  // contents are fixed by the seed.
  const spec = { common: 1500, zero: 20, dup: 1000, seed: 7 };
  await withWorkers([spec, spec, spec], async (pids) => {
    const exact = await scan({ selection: { pids } });
    const N = 8;
    for (let i = 0; i < N; i++) {
      const s = await scan({ selection: { pids }, sample: N, sampleSlice: i });
      const t = s.totals;
      for (
        const [est, bound, truth] of [
          [
            t.pages_duplicate,
            t.pages_duplicate_error_bound,
            exact.totals.pages_duplicate,
          ],
          [
            t.saveable_pages,
            t.saveable_pages_error_bound,
            exact.totals.saveable_pages,
          ],
        ] as const
      ) {
        ok(bound! > 0);
        ok(
          Math.abs(est - truth) <= bound!,
          `slice ${i}: ${est} ± ${bound} against ${truth}`,
        );
      }
    }
  });
});

/** Runs a scan as `user` in a subprocess and returns its result. */
async function scanAs(user: User, opts: unknown): Promise<ScanResult> {
  const helper = new URL("../helpers/scan_as.ts", import.meta.url).pathname;
  const out = await denoRunAs(user, helper, [JSON.stringify(opts)]).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(new TextDecoder().decode(out.stderr) || text);
  }
  return JSON.parse(text);
}

Deno.test("unprivileged (stand-in frames): passes and sample: 1 give the exact figures", async () => {
  const user = await testUser();
  await withWorkers(MIXED.map((s) => ({ ...s, user })), async (pids) => {
    const one = await scanAs(user, { selection: { pids } });
    strictEqual(one.pfns_available, false);
    const many = await scanAs(user, {
      selection: { pids },
      maxMemory: 23 * 400,
    });
    ok((many.passes ?? 1) >= 3, `passes: ${many.passes}`);
    assertEquals(figures(many), figures(one));
    const s1 = await scanAs(user, { selection: { pids }, sample: 1 });
    assertEquals(figures(s1), figures(one));
    // Sampled: the exact figures stay exact, mapping by mapping.
    const s4 = await scanAs(user, { selection: { pids }, sample: 4 });
    strictEqual(s4.totals.pages_shared_already_error_bound, null);
    s4.processes.forEach((p, pi) =>
      p.mappings.forEach((m, mi) => {
        const e = one.processes[pi].mappings[mi];
        for (
          const k of [
            "pages_present",
            "pages_zero",
            "pages_shared_already_estimate",
          ] as const
        ) strictEqual(m[k], e[k], `pid ${p.pid} mapping ${mi} ${k}`);
      })
    );
  });
});
