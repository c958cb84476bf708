/**
 * When a burst stops (src/ksm/burst.ts), against a fixture KSM directory
 * whose full_scans a fake ksmd advances while run=1: progress() is the
 * only measure, a burst that still frees memory is not "stalled", smart
 * scan is off during the burst and restored, the journal exists exactly
 * while settings are changed, and an expensive progress() is sampled
 * sparingly.
 */
import {
  deepStrictEqual as assertEquals,
  ok as assert,
} from "node:assert/strict";
import {
  PROGRESS_COST_FACTOR,
  runBurst,
  STALL_SCANS,
} from "../../src/ksm/burst.ts";
import { readJournal } from "../../src/ksm/journal.ts";
import { tempDir } from "../helpers/temp.ts";

const ORIG: Record<string, string> = {
  run: "0",
  pages_to_scan: "123",
  sleep_millisecs: "37",
  smart_scan: "1",
  advisor_mode: "none",
  full_scans: "0",
  pages_sharing: "0",
};

/** A fixture KSM dir and a fake ksmd: one full scan per 10 ms at run=1. */
function fakeKsm(): { dir: string; scans(): number; stop(): void } {
  const dir = tempDir({ prefix: "ksm_fake_" });
  for (const [k, v] of Object.entries(ORIG)) {
    Deno.writeTextFileSync(`${dir}/${k}`, v + "\n");
  }
  Deno.chmodSync(`${dir}/full_scans`, 0o444);
  Deno.chmodSync(`${dir}/pages_sharing`, 0o444);
  let scans = 0;
  const t = setInterval(() => {
    if (Deno.readTextFileSync(`${dir}/run`).trim() !== "1") return;
    scans++;
    Deno.writeTextFileSync(`${dir}/full_scans`, `${scans}\n`);
  }, 10);
  return { dir, scans: () => scans, stop: () => clearInterval(t) };
}

function settings(dir: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const k of ["run", "pages_to_scan", "sleep_millisecs", "smart_scan"]) {
    out[k] = Deno.readTextFileSync(`${dir}/${k}`).trim();
  }
  return out;
}

Deno.test("a burst that still frees memory every 2 scans is not stalled", async () => {
  const ksm = fakeKsm();
  const runDir = tempDir();
  try {
    // Like smart scan or THP splits: progress comes in steps, with full
    // scans in between that free nothing; the last step at scan 30.
    const progress = () => Math.min(15, Math.floor(ksm.scans() / 2));
    let lastRiseScan = 0, last = -1;
    const r = await runBurst({
      dir: ksm.dir,
      runDir,
      progress,
      target: 1000,
      timeoutMs: 30000,
      onProgress: (p) => {
        if (p > last) lastRiseScan = ksm.scans();
        last = p;
      },
    });
    assertEquals(r.ended, "stalled");
    assertEquals(r.progress, 15);
    assert(lastRiseScan >= 30, `last rise at scan ${lastRiseScan}`);
    // Stopped only after STALL_SCANS further scans brought nothing.
    assert(r.fullScans >= lastRiseScan + STALL_SCANS, `${r.fullScans}`);
    assertEquals(r.smartScanOff, true);
    assertEquals(r.restoreMismatch, {});
    assertEquals(settings(ksm.dir), {
      run: "0",
      pages_to_scan: "123",
      sleep_millisecs: "37",
      smart_scan: "1",
    });
  } finally {
    ksm.stop();
  }
});

Deno.test("a burst that frees nothing stalls after STALL_SCANS scans", async () => {
  const ksm = fakeKsm();
  const runDir = tempDir();
  try {
    const r = await runBurst({
      dir: ksm.dir,
      runDir,
      progress: () => 0,
      timeoutMs: 30000,
    });
    assertEquals(r.ended, "stalled");
    assert(r.fullScans >= STALL_SCANS, `${r.fullScans}`);
    assertEquals(settings(ksm.dir).run, "0");
  } finally {
    ksm.stop();
  }
});

Deno.test("during a burst: smart scan off, burst rate, journal; after: none", async () => {
  const ksm = fakeKsm();
  const runDir = tempDir();
  try {
    const seen: Record<string, string>[] = [];
    let journal: Record<string, string> | undefined;
    const r = await runBurst({
      dir: ksm.dir,
      runDir,
      progress: () => ksm.scans(),
      target: 20,
      timeoutMs: 30000,
      lockHolder: "rule test",
      onProgress: () => {
        seen.push(settings(ksm.dir));
        journal ??= readJournal(runDir)?.settings;
      },
    });
    assertEquals(r.ended, "target");
    assertEquals(seen[0], {
      run: "1",
      pages_to_scan: "10000",
      sleep_millisecs: "0",
      smart_scan: "0",
    });
    assertEquals(journal, {
      run: "0",
      pages_to_scan: "123",
      sleep_millisecs: "37",
      smart_scan: "1",
      advisor_mode: "none",
    });
    assertEquals(readJournal(runDir), undefined);
    assertEquals(settings(ksm.dir).smart_scan, "1");
  } finally {
    ksm.stop();
  }
});

Deno.test("an expensive progress() is sampled at most every 5x its cost", async () => {
  const ksm = fakeKsm();
  const runDir = tempDir();
  try {
    const COST_MS = 30;
    const t0 = performance.now();
    const r = await runBurst({
      dir: ksm.dir,
      runDir,
      // Costs COST_MS, rises all the time, reaches the target at 1.5 s.
      progress: () => {
        const start = performance.now();
        while (performance.now() - start < COST_MS) { /* busy */ }
        return Math.floor((performance.now() - t0) / 100);
      },
      target: 15,
      timeoutMs: 30000,
    });
    assertEquals(r.ended, "target");
    // Consecutive samples start at least COST_MS * (1 + factor) apart.
    const minGap = COST_MS * (1 + PROGRESS_COST_FACTOR);
    const bound = 1 + Math.floor(r.seconds * 1000 / minGap);
    assert(
      r.progressSamples <= bound,
      `${r.progressSamples} samples in ${r.seconds} s (bound ${bound})`,
    );
    assert(r.progressSamples >= 2, `${r.progressSamples}`);
  } finally {
    ksm.stop();
  }
});

Deno.test("a cheap hint that reaches the target makes the burst notice it at once", async () => {
  // progress() costs 200 ms, so the burst samples it only every
  // PROGRESS_COST_FACTOR costs; the selection reaches its target as soon as
  // the first sample is taken. Without the hint the second sample waits
  // for its regular time; with it, it comes one cost after the first, when
  // the hint says the target may be reached. Counted in samples and in the
  // burst's own spacing rule, not in wall time: a slow or loaded machine
  // only stretches both runs.
  const COST_MS = 200;
  const run = async (withHint: boolean) => {
    const ksm = fakeKsm();
    try {
      const starts: number[] = [], ends: number[] = [];
      const r = await runBurst({
        dir: ksm.dir,
        runDir: tempDir(),
        progress: () => {
          const start = performance.now();
          while (performance.now() - start < COST_MS) { /* busy */ }
          starts.push(start);
          ends.push(performance.now());
          return starts.length > 1 ? 100 : 0;
        },
        hint: withHint ? () => (starts.length >= 1 ? 100 : 0) : undefined,
        target: 100,
        timeoutMs: 120000,
      });
      assertEquals(r.ended, "target");
      assertEquals(starts.length, 2, "the second sample ends the burst");
      return { gap: starts[1] - ends[0], cost: ends[0] - starts[0] };
    } finally {
      ksm.stop();
    }
  };
  const without = await run(false);
  assert(
    without.gap >= PROGRESS_COST_FACTOR * without.cost,
    `without a hint the second sample came ${without.gap} ms after the ` +
      `first, before ${PROGRESS_COST_FACTOR} × its cost ${without.cost} ms`,
  );
  const withHint = await run(true);
  assert(
    withHint.gap < PROGRESS_COST_FACTOR * withHint.cost,
    `with the hint the second sample still waited ${withHint.gap} ms ` +
      `(${PROGRESS_COST_FACTOR} × its cost ${withHint.cost} ms)`,
  );
});

Deno.test("a burst whose marked processes have all exited ends as gone, not at the timeout", async () => {
  // No process left: ksmd may have nothing to scan, so full_scans would
  // not advance and the stall rule could never fire.
  const ksm = fakeKsm();
  try {
    // Progress rises with every sample for 100 ms (by one: far from the
    // target, however late a slow machine runs the timer); then the last
    // process exits, and ksmd, with no process left to scan, completes no
    // more full scans.
    let alive = true;
    let rises = 0;
    setTimeout(() => {
      alive = false;
      ksm.stop();
    }, 100);
    const r = await runBurst({
      dir: ksm.dir,
      runDir: tempDir(),
      progress: () => alive ? ++rises : rises,
      anyLeft: () => alive,
      target: 100,
      timeoutMs: 5000,
    });
    assertEquals(r.ended, "gone");
    assertEquals(settings(ksm.dir), {
      run: "0",
      pages_to_scan: "123",
      sleep_millisecs: "37",
      smart_scan: "1",
    });
  } finally {
    ksm.stop();
  }
});
