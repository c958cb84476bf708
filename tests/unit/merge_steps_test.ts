/**
 * merge() (src/merge/merge.ts) end to end without root and without the
 * host's KSM: a fake marker (MergeOptions.marker) records what it is asked
 * to mark, a fake KSM sysfs directory (MergeOptions.ksmDir) with a fake
 * ksmd that completes one full scan every few ms while run=1, and a
 * temporary run directory for the lock and the journal. The processes are
 * this test's own workers (tests/helpers/worker.c), so the scan reads
 * only memory of its own children; it also runs as an unprivileged user
 * (PFNs are then hidden and achieved is measured on the global counters).
 * Only the trust-domain case needs root, for a worker of another uid.
 *
 * What is checked: the marker gets exactly the VMAs the plan of the
 * chosen domain holds (compared with planMerge() on the same processes),
 * a ProcessSkipped from the marker makes that pid skipped with its
 * reason, the fake KSM settings are the burst's during it and restored
 * after it, the report's counts, dry runs, other errors and the closing
 * of the marker.
 */
import {
  deepStrictEqual as assertEquals,
  ok as assert,
  rejects,
} from "node:assert/strict";
import { skipIf } from "../helpers/skip.ts";
import {
  merge,
  MERGE_SCHEMA,
  type MergeReport,
} from "../../src/merge/merge.ts";
import { planMerge } from "../../src/merge/plan.ts";
import {
  type MarkAdvice,
  type Marker,
  type MarkOutcome,
  ProcessSkipped,
  type VmaRange,
} from "../../src/engine/marker.ts";
import { STALL_SCANS } from "../../src/ksm/burst.ts";
import { readJournal } from "../../src/ksm/journal.ts";
import { createUserBackend } from "../../src/scan/user_backend.ts";
import { getChecksum } from "../../src/hash/mod.ts";
import {
  ErrorKind,
  ErrorReason,
  type MergememError,
} from "../../src/errors.ts";
import { isMergememError } from "../helpers/assert.ts";
import { haveGcc } from "../helpers/gcc.ts";
import { startWorker, type Worker } from "../helpers/workers.ts";

/** The fake KSM's settings before a merge. */
const SETTINGS: Record<string, string> = {
  run: "0",
  pages_to_scan: "123",
  sleep_millisecs: "37",
  smart_scan: "1",
  advisor_mode: "none",
  max_page_sharing: "256",
  merge_across_nodes: "1",
  use_zero_pages: "0",
};

/** Its counters (read-only files). */
const COUNTERS: Record<string, string> = {
  full_scans: "0",
  pages_shared: "0",
  pages_sharing: "0",
  ksm_zero_pages: "0",
  general_profit: "0",
};

/** A fake KSM sysfs directory and a fake ksmd driving its counters. */
interface FakeKsm {
  dir: string;
  /** Full scans the fake ksmd completed. */
  scans(): number;
  /** The settings the fake ksmd saw while it ran (run=1), deduplicated. */
  seenRunning: Set<string>;
  settings(): Record<string, string>;
  stop(): void;
}

/** Writes a read-only counter (by rename: the file is mode 0444). */
function writeCounter(dir: string, name: string, value: string): void {
  const tmp = `${dir}/.${name}.tmp`;
  Deno.writeTextFileSync(tmp, value + "\n", { mode: 0o444 });
  Deno.renameSync(tmp, `${dir}/${name}`);
}

function fakeKsm(): FakeKsm {
  const dir = Deno.makeTempDirSync({ prefix: "merge_steps_ksm_" });
  for (const [k, v] of Object.entries(SETTINGS)) {
    Deno.writeTextFileSync(`${dir}/${k}`, v + "\n", { mode: 0o644 });
  }
  for (const [k, v] of Object.entries(COUNTERS)) writeCounter(dir, k, v);
  const settings = () => {
    const out: Record<string, string> = {};
    for (const k of Object.keys(SETTINGS)) {
      out[k] = Deno.readTextFileSync(`${dir}/${k}`).trim();
    }
    return out;
  };
  let scans = 0;
  const seenRunning = new Set<string>();
  // One full scan per 5 ms while run=1, as ksmd's full_scans counter.
  const t = setInterval(() => {
    const now = settings();
    if (now.run !== "1") return;
    seenRunning.add(JSON.stringify(now));
    scans++;
    writeCounter(dir, "full_scans", String(scans));
  }, 5);
  return {
    dir,
    scans: () => scans,
    seenRunning,
    settings,
    stop: () => clearInterval(t),
  };
}

/** One call of the fake marker. */
interface MarkCall {
  pid: number;
  vmas: VmaRange[];
  advice: MarkAdvice;
}

/**
 * A marker that marks nothing: it records its calls and reports every
 * VMA newly marked; it throws `throws(pid)` when that returns an error.
 */
class FakeMarker implements Marker {
  readonly engine = "ptrace" as const;
  calls: MarkCall[] = [];
  closed = 0;
  constructor(private throws: (pid: number) => unknown = () => undefined) {}
  markProcess(
    pid: number,
    vmas: VmaRange[],
    advice: MarkAdvice,
  ): Promise<MarkOutcome> {
    this.calls.push({ pid, vmas, advice });
    const err = this.throws(pid);
    if (err !== undefined) return Promise.reject(err);
    return Promise.resolve({
      vmasChanged: vmas.length,
      bytesChanged: vmas.reduce((a, v) => a + Number(v.end - v.start), 0),
      vmasUnchanged: 0,
      vmasSkipped: 0,
      holdMs: 0.25,
      thpChanged: [],
      thpUnsupported: 0,
    });
  }
  close(): void {
    this.closed++;
  }
}

/** Pages of identical content per worker: well above --min-saving. */
const DUP = 64;
const REGION = 0x100000000n;

/**
 * The planned VMAs of `pids` by an independent planMerge(), of the
 * `markable` ones among them (default all).
 */
async function expectedPlan(pids: number[], markable?: Set<number>) {
  const backend = createUserBackend({ checksum: getChecksum("xxh64") });
  try {
    const plan = await planMerge({ pids, backend, markable });
    const ranges = new Map(
      plan.processes.map((p) => [
        p.pid,
        p.vmas.map((v) => ({ start: BigInt(v.start), end: BigInt(v.end) })),
      ]),
    );
    return { plan, ranges };
  } finally {
    backend.dispose?.();
  }
}

/** Runs `fn` with two workers, a fake KSM and a run directory. */
async function withSetup(
  fn: (w: Worker[], ksm: FakeKsm, runDir: string) => Promise<void>,
): Promise<void> {
  const workers: Worker[] = [];
  const ksm = fakeKsm();
  const runDir = Deno.makeTempDirSync({ prefix: "merge_steps_run_" });
  try {
    for (let i = 0; i < 2; i++) {
      workers.push(await startWorker({ dup: DUP, unique: 8, common: 4 }));
    }
    workers.sort((a, b) => a.pid - b.pid);
    await fn(workers, ksm, runDir);
  } finally {
    ksm.stop();
    for (const w of workers) await w.stop();
    Deno.removeSync(ksm.dir, { recursive: true });
    Deno.removeSync(runDir, { recursive: true });
  }
}

const noSignals = () => new AbortController().signal;

Deno.test({
  ...skipIf(
    "merge marks exactly the planned VMAs, skips a ProcessSkipped pid, bursts the fake ksmd and restores its settings",
    { "no gcc": !haveGcc() },
  ),
  async fn() {
    await withSetup(async ([a, b], ksm, runDir) => {
      const marker = new FakeMarker((pid) =>
        pid === b.pid ? new ProcessSkipped(pid, "seccomp filter") : undefined
      );
      const phases = new Set<string>();
      const r: MergeReport = await merge({
        pids: [a.pid, b.pid],
        marker,
        ksmDir: ksm.dir,
        runDir,
        burstPagesToScan: 4321,
        timeoutSeconds: 30,
        signal: noSignals(),
        onProgress: (p) => phases.add(p.phase),
      });
      const want = await expectedPlan([a.pid, b.pid]);

      // The marker: both planned processes, in pid order, each with
      // exactly its planned VMAs, one of which is the worker's region.
      assertEquals(
        marker.calls.map((c) => c.pid),
        want.plan.processes.map((p) => p.pid),
      );
      assertEquals(marker.calls.map((c) => c.pid), [a.pid, b.pid]);
      for (const c of marker.calls) {
        assertEquals(c.advice, "merge");
        assertEquals(c.vmas, want.ranges.get(c.pid));
        assert(
          c.vmas.some((v) => v.start === REGION),
          `pid ${c.pid}: the duplicate region is planned`,
        );
      }
      assertEquals(marker.closed, 1);

      // The skipped pid, with the marker's reason; no row for it.
      assertEquals(r.skipped, [{ pid: b.pid, reason: "seccomp filter" }]);
      assertEquals(r.processes.map((p) => p.pid), [a.pid]);
      const row = r.processes[0];
      const vmasA = want.ranges.get(a.pid)!;
      assertEquals(row.uid, Deno.uid());
      assertEquals(row.vmas_chosen, vmasA.length);
      assertEquals(row.vmas_marked, vmasA.length);
      assertEquals(
        row.bytes_marked,
        vmasA.reduce((s, v) => s + Number(v.end - v.start), 0),
      );
      assertEquals(row.vmas_already_mergeable, 0);
      assertEquals(row.vmas_skipped, 0);
      assertEquals(row.hold_ms_max, 0.25);
      const planA = want.plan.processes.find((p) => p.pid === a.pid)!;
      assertEquals(
        row.predicted_saveable_pages,
        planA.vmas.reduce((s, v) => s + v.saveable_pages, 0),
      );
      assert(row.duplicate_pages >= DUP, `${row.duplicate_pages}`);

      // The report's counts: the whole plan's prediction (the skipped pid
      // was planned too), the trust domain, the engine.
      assertEquals(r.schema, MERGE_SCHEMA);
      assertEquals(r.dry_run, false);
      assertEquals(r.engine, "ptrace");
      assertEquals(r.engine_reason, "given");
      assertEquals(r.scan_backend, "user");
      assertEquals(r.min_saving_pages, 16);
      assertEquals(r.pages_scanned, want.plan.pagesScanned);
      assertEquals(
        r.predicted_saveable_pages,
        want.plan.predictedSaveablePages,
      );
      // Two workers' identical pages: all but one frame can go.
      assert(
        r.predicted_saveable_pages >= 2 * DUP - 1,
        `${r.predicted_saveable_pages}`,
      );
      assertEquals(
        r.predicted_saveable_bytes,
        r.predicted_saveable_pages * r.page_size,
      );
      assertEquals(r.trust_domain, {
        level: "namespace",
        cross_user: false,
        policy: "single-domain",
        domain: `uid ${Deno.uid()}`,
        uids: [Deno.uid()],
        uids_selected: [Deno.uid()],
        domains_selected: [`uid ${Deno.uid()}`],
        skipped_by_policy: [],
      });
      assertEquals([...phases].sort(), ["ksmd", "mark", "scan"]);

      // The burst: ksmd ran at the burst's settings, nothing was freed
      // (the fake marker marks nothing), so it stalled after STALL_SCANS
      // full scans; every setting is back, and the journal is gone.
      assertEquals(r.ksmd_end, "stalled");
      assert(r.ksmd_full_scans >= STALL_SCANS, `${r.ksmd_full_scans}`);
      assert(ksm.scans() >= r.ksmd_full_scans);
      assertEquals([...ksm.seenRunning].map((s) => JSON.parse(s)), [{
        ...SETTINGS,
        run: "1",
        pages_to_scan: "4321",
        sleep_millisecs: "0",
        smart_scan: "0",
      }]);
      assertEquals(ksm.settings(), SETTINGS);
      assertEquals(r.ksm_settings_before, SETTINGS);
      assertEquals(r.ksm_settings_after, SETTINGS);
      assertEquals(r.ksm_settings_restore_mismatch, {});
      assertEquals(readJournal(runDir), undefined);
      assertEquals(r.achieved_pages, 0);
      assertEquals(
        r.achieved_method,
        Deno.uid() === 0 ? "selection-frames" : "global-counters",
      );
      if (Deno.uid() !== 0) {
        assert(r.warnings.some((w) => w.includes("CAP_SYS_ADMIN")));
      }
    });
  },
});

Deno.test({
  ...skipIf(
    "merge --dry-run plans but marks nothing and leaves the fake ksmd off",
    { "no gcc": !haveGcc() },
  ),
  async fn() {
    await withSetup(async ([a, b], ksm, runDir) => {
      const marker = new FakeMarker();
      const r = await merge({
        pids: [a.pid, b.pid],
        marker,
        ksmDir: ksm.dir,
        runDir,
        dryRun: true,
        signal: noSignals(),
      });
      assertEquals(marker.calls, []);
      assertEquals(marker.closed, 1);
      assertEquals(r.dry_run, true);
      assertEquals(r.ksmd_end, "not-run");
      assertEquals(r.ksmd_full_scans, 0);
      assertEquals(r.processes.map((p) => p.pid), [a.pid, b.pid]);
      assert(r.processes.every((p) => p.vmas_marked === 0));
      assertEquals(r.skipped, []);
      assertEquals(ksm.scans(), 0);
      assertEquals(ksm.settings(), SETTINGS);
      assertEquals(r.ksm_settings_before, SETTINGS);
      assertEquals(r.ksm_settings_after, SETTINGS);
      assert(r.predicted_saveable_pages >= 2 * DUP - 1);
    });
  },
});

Deno.test({
  ...skipIf(
    "merge: a gone pid is skipped; errno errors are skipped with their reason; another error ends the merge with the marker closed",
    { "no gcc": !haveGcc() },
  ),
  async fn() {
    await withSetup(async ([a, b], ksm, runDir) => {
      // A pid that does not exist: "gone". EPERM and ESRCH from marking:
      // "permission denied (EPERM)" and "exited while marking"; nothing
      // left marked, so no burst.
      const gone = 0x3ffffff0;
      const errno = (code: string) => Object.assign(new Error(code), { code });
      const marker = new FakeMarker((pid) =>
        errno(pid === a.pid ? "EPERM" : "ESRCH")
      );
      const r = await merge({
        pids: [gone, a.pid, b.pid],
        marker,
        ksmDir: ksm.dir,
        runDir,
        signal: noSignals(),
      });
      assertEquals(r.skipped, [
        { pid: gone, reason: "gone" },
        { pid: a.pid, reason: "permission denied (EPERM)" },
        { pid: b.pid, reason: "exited while marking" },
      ]);
      assertEquals(r.processes, []);
      assertEquals(r.ksmd_end, "not-run");
      assertEquals(ksm.scans(), 0);
      assertEquals(marker.closed, 1);

      // An error that is not about one process ends the merge: rethrown
      // as it is, after the marker was closed; KSM untouched, and the
      // lock released (the next merge runs).
      const boom = new FakeMarker(() => new TypeError("boom"));
      await rejects(
        () =>
          merge({
            pids: [a.pid],
            marker: boom,
            ksmDir: ksm.dir,
            runDir,
            signal: noSignals(),
          }),
        (e: unknown) => e instanceof TypeError && e.message === "boom",
      );
      assertEquals(boom.closed, 1);
      assertEquals(ksm.settings(), SETTINGS);
      assertEquals(readJournal(runDir), undefined);
      const again = new FakeMarker();
      const r2 = await merge({
        pids: [a.pid],
        marker: again,
        ksmDir: ksm.dir,
        runDir,
        dryRun: true,
        lockTimeoutSeconds: 0,
        signal: noSignals(),
      });
      assertEquals(r2.processes.map((p) => p.pid), [a.pid]);
    });
  },
});

Deno.test("merge of no existing process: NothingScannable, nothing opened", async () => {
  const ksm = fakeKsm();
  try {
    const marker = new FakeMarker();
    await rejects(
      () =>
        merge({
          pids: [0x3ffffff1, 0x3ffffff2],
          marker,
          ksmDir: ksm.dir,
          signal: noSignals(),
        }),
      (e: unknown) =>
        isMergememError(
          e,
          ErrorKind.NothingScannable,
          /^no selected process exists$/,
        ),
    );
    assertEquals(marker.calls, []);
  } finally {
    ksm.stop();
    Deno.removeSync(ksm.dir, { recursive: true });
  }
});

Deno.test("merge without a KSM directory: NoKsm", async () => {
  const dir = Deno.makeTempDirSync();
  try {
    await rejects(
      () =>
        merge({
          pids: [Deno.pid],
          marker: new FakeMarker(),
          ksmDir: `${dir}/none`,
          signal: noSignals(),
        }),
      (e: unknown) => isMergememError(e, ErrorKind.NoKsm),
    );
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});

Deno.test({
  ...skipIf(
    "merge --whole-process with a marker that cannot: Usage, marker closed",
    { "no gcc": !haveGcc() },
  ),
  async fn() {
    await withSetup(async ([a], ksm, runDir) => {
      const marker = new FakeMarker();
      await rejects(
        () =>
          merge({
            pids: [a.pid],
            marker,
            ksmDir: ksm.dir,
            runDir,
            wholeProcess: true,
            signal: noSignals(),
          }),
        (e: unknown) => isMergememError(e, ErrorKind.Usage),
      );
      assertEquals(marker.closed, 1);
      assertEquals(marker.calls, []);
    });
  },
});

Deno.test({
  // A worker of another uid needs root to start (and to be scanned).
  ...skipIf(
    "merge of two uids: the largest domain's planned VMAs alone are marked, the other uid skipped by policy",
    {
      "no gcc": !haveGcc(),
      "not root (a worker of another uid)": Deno.uid() !== 0,
    },
  ),
  async fn() {
    const ksm = fakeKsm();
    const runDir = Deno.makeTempDirSync({ prefix: "merge_steps_run_" });
    const workers: Worker[] = [];
    try {
      // uid 65534 holds more duplicate pages: its domain is the largest.
      const own = await startWorker({ dup: DUP, unique: 8 });
      workers.push(own);
      const nobody: Worker[] = [];
      for (let i = 0; i < 2; i++) {
        const w = await startWorker({
          dup: 2 * DUP,
          unique: 8,
          user: { uid: 65534, gid: 65534 },
        });
        workers.push(w);
        nobody.push(w);
      }
      const pids = workers.map((w) => w.pid);
      const inside = new Set(nobody.map((w) => w.pid));

      await rejects(
        () =>
          merge({
            pids,
            marker: new FakeMarker(),
            ksmDir: ksm.dir,
            runDir,
            signal: noSignals(),
          }),
        (e: unknown) => isMergememError(e, ErrorKind.Refused),
      );

      const marker = new FakeMarker();
      const r = await merge({
        pids,
        marker,
        ksmDir: ksm.dir,
        runDir,
        domainPolicy: "largest",
        signal: noSignals(),
      });
      const want = await expectedPlan(pids, inside);
      const sorted = [...inside].sort((a, b) => a - b);
      assertEquals(marker.calls.map((c) => c.pid), sorted);
      for (const c of marker.calls) {
        assertEquals(c.vmas, want.ranges.get(c.pid));
        assert(c.vmas.some((v) => v.start === REGION));
      }
      assertEquals(r.processes.map((p) => p.pid), sorted);
      assert(r.processes.every((p) => p.uid === 65534));
      assertEquals(r.trust_domain.policy, "largest-domain");
      assertEquals(r.trust_domain.uids, [65534]);
      assertEquals(r.trust_domain.uids_selected, [0, 65534]);
      assertEquals(r.trust_domain.skipped_by_policy, [
        { pid: own.pid, uid: 0, comm: "worker", domain: "uid 0" },
      ]);
      assertEquals(r.skipped, [
        { pid: own.pid, reason: "uid 0: another trust domain" },
      ]);
      assertEquals(
        r.predicted_saveable_pages,
        want.plan.predictedSaveablePages,
      );
      assertEquals(r.ksmd_end, "stalled");
      assertEquals(ksm.settings(), SETTINGS);
    } finally {
      ksm.stop();
      for (const w of workers) await w.stop();
      Deno.removeSync(ksm.dir, { recursive: true });
      Deno.removeSync(runDir, { recursive: true });
    }
  },
});

Deno.test({
  // A worker of another uid needs root to start (and to be scanned).
  ...skipIf(
    "merge while another uid holds mergeable memory: refused and nothing marked; the holder's domain is chosen; --cross-user joins them",
    {
      "no gcc": !haveGcc(),
      "not root (a worker of another uid)": Deno.uid() !== 0,
    },
  ),
  async fn() {
    const ksm = fakeKsm();
    const runDir = Deno.makeTempDirSync({ prefix: "merge_steps_run_" });
    const workers: Worker[] = [];
    try {
      // uid 65534 marked its own memory (MADV_MERGEABLE): it holds KSM.
      const holder = await startWorker({
        dup: DUP,
        unique: 8,
        optin: true,
        user: { uid: 65534, gid: 65534 },
      });
      workers.push(holder);
      const own: Worker[] = [];
      for (let i = 0; i < 2; i++) {
        const w = await startWorker({ dup: 2 * DUP, unique: 8 });
        workers.push(w);
        own.push(w);
      }
      const marker = new FakeMarker();
      await rejects(
        () =>
          merge({
            pids: own.map((w) => w.pid),
            marker,
            ksmDir: ksm.dir,
            runDir,
            signal: noSignals(),
          }),
        (e: unknown) =>
          isMergememError(e, ErrorKind.Refused) &&
          (e as MergememError).detail?.reason === ErrorReason.KsmHeld &&
          (e as Error).message.includes(`uid 65534 (${holder.pid} worker)`) &&
          (e as Error).message.includes("merging uid 0 would let KSM"),
      );
      assertEquals(marker.calls, []);
      assertEquals(ksm.settings(), SETTINGS);

      // A broad selection of both: the holder's domain, though smaller.
      const r = await merge({
        pids: workers.map((w) => w.pid),
        marker,
        ksmDir: ksm.dir,
        runDir,
        domainPolicy: "largest",
        dryRun: true,
        signal: noSignals(),
      });
      assertEquals(r.trust_domain.domain, "uid 65534");
      assertEquals(
        r.trust_domain.skipped_by_policy.map((s) => s.pid).sort(),
        own.map((w) => w.pid).sort(),
      );
      assert(
        r.warnings.some((w) => w.includes("already holds mergeable memory")),
        r.warnings.join("; "),
      );

      // One domain across the uids: allowed, and warned.
      const x = await merge({
        pids: own.map((w) => w.pid),
        marker,
        ksmDir: ksm.dir,
        runDir,
        crossUser: true,
        dryRun: true,
        signal: noSignals(),
      });
      assertEquals(x.trust_domain.domain, "host");
      assertEquals(x.trust_domain.cross_user, true);
    } finally {
      ksm.stop();
      for (const w of workers) await w.stop();
      Deno.removeSync(ksm.dir, { recursive: true });
      Deno.removeSync(runDir, { recursive: true });
    }
  },
});
