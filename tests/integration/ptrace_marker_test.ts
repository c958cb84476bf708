/**
 * The ptrace marker on real processes (tests/ptrace/regions.c): exact
 * VMA counts read back from smaps, whole VMAs only, shared memory
 * skipped, contents intact; PR_SET_MEMORY_MERGE; and the targets it must
 * skip (seccomp filter, another tracer) or lose (exit during a hold),
 * which must all keep running or exit normally.
 */
import {
  deepStrictEqual as assertEquals,
  ok as assert,
  rejects,
  throws,
} from "node:assert/strict";
import { createPtraceMarker } from "../../src/ptrace/marker.ts";
import {
  injectSyscall,
  PtraceSession,
  TargetGone,
} from "../../src/ptrace/session.ts";
import { checkTarget } from "../../src/ptrace/target.ts";
import { ProcessSkipped } from "../../src/engine/marker.ts";
import { readProcessKsm } from "../../src/ksm/process.ts";
import {
  buildTarget,
  haveGcc,
  mergeableAt,
  startTarget,
  type Target,
} from "../ptrace/targets.ts";
import { procState, waitUntil } from "../helpers/wait.ts";
import { skipIf } from "../helpers/skip.ts";

const skip = {
  "not x86-64": Deno.build.arch !== "x86_64",
  "not root": Deno.uid() !== 0,
  "no gcc": !haveGcc(),
};
const hasKsm = (() => {
  try {
    Deno.statSync("/sys/kernel/mm/ksm/run");
    return true;
  } catch {
    return false;
  }
})();

interface Regions {
  priv: { start: bigint; end: bigint }[];
  shared: { start: bigint; end: bigint };
  sleeper: number;
}

function regionsOf(t: Target): Regions {
  const bytes = BigInt(t.ready[6]);
  const at = (i: number) => {
    const s = BigInt(t.ready[i]);
    return { start: s, end: s + bytes };
  };
  return {
    priv: [at(2), at(3), at(4)],
    shared: at(5),
    sleeper: Number(t.ready[7].split("=")[1]),
  };
}

async function sum(t: Target): Promise<string> {
  await t.send("sum");
  return (await t.line())!;
}

Deno.test({
  ...skipIf(
    "ptrace marker: merge, again, unmerge with exact counts from smaps",
    { ...skip, "no KSM": !hasKsm },
  ),
  async fn() {
    const t = await startTarget("regions");
    const m = createPtraceMarker();
    try {
      const r = regionsOf(t);
      const sum0 = await sum(t);
      const bytes = Number(r.priv[0].end - r.priv[0].start);
      // A range inside the first VMA widens to the whole VMA.
      const ranges = [
        { start: r.priv[0].start + 4096n, end: r.priv[0].start + 8192n },
        r.priv[1],
        r.priv[2],
        r.shared,
      ];
      const a = await m.markProcess(t.pid, ranges, "merge");
      assertEquals(
        { ...a, holdMs: null },
        {
          vmasChanged: 3,
          bytesChanged: 3 * bytes,
          vmasUnchanged: 0,
          vmasSkipped: 1, // the shared mapping: KSM cannot take it
          holdMs: null,
          thpChanged: [], // no range asked for MADV_NOHUGEPAGE
          thpUnsupported: 0,
        },
      );
      assert(a.holdMs !== null && a.holdMs >= 0);
      for (const p of r.priv) assertEquals(mergeableAt(t.pid, p.start), true);
      assertEquals(mergeableAt(t.pid, r.shared.start), false);

      const b = await m.markProcess(t.pid, ranges, "merge");
      assertEquals(b.vmasChanged, 0);
      assertEquals(b.vmasUnchanged, 3);
      assertEquals(b.vmasSkipped, 1);

      const c = await m.markProcess(t.pid, r.priv, "unmerge");
      assertEquals(c.vmasChanged, 3);
      assertEquals(c.bytesChanged, 3 * bytes);
      for (const p of r.priv) assertEquals(mergeableAt(t.pid, p.start), false);
      assertEquals(await sum(t), sum0);
      assertEquals(
        Deno.readTextFileSync(`/proc/${t.pid}/status`).match(
          /TracerPid:\s*(\d+)/,
        )?.[1],
        "0",
      );
    } finally {
      m.close();
      await t.kill();
    }
  },
});

/** VmFlags of the VMA of pid that starts at `start`. */
function vmFlagsAt(pid: number, start: bigint): string[] {
  const text = Deno.readTextFileSync(`/proc/${pid}/smaps`);
  let hit = false;
  for (const line of text.split("\n")) {
    const h = /^([0-9a-f]+)-/.exec(line);
    if (h) hit = BigInt(`0x${h[1]}`) === start;
    else if (hit && line.startsWith("VmFlags:")) {
      return line.slice(8).trim().split(/\s+/);
    }
  }
  return [];
}

Deno.test({
  ...skipIf(
    "ptrace marker: MADV_NOHUGEPAGE before marking, MADV_HUGEPAGE given back after unmarking, 'restore' left to the module",
    { ...skip, "no KSM": !hasKsm },
  ),
  async fn() {
    const t = await startTarget("regions");
    const m = createPtraceMarker();
    try {
      const [a, b] = regionsOf(t).priv;
      const merged = await m.markProcess(t.pid, [
        { ...a, thp: "nohugepage" },
        { ...b, thp: "nohugepage" },
      ], "merge");
      assertEquals(merged.vmasChanged, 2);
      assertEquals(
        merged.thpChanged.map((c) => [c.start, c.hadHugepage]),
        [[a.start, false], [b.start, false]].sort((x, y) =>
          x[0] < y[0] ? -1 : 1
        ), // in address order
      );
      for (const r of [a, b]) {
        const f = vmFlagsAt(t.pid, r.start);
        assert(f.includes("nh") && f.includes("mg"), f.join(" "));
      }
      const again = await m.markProcess(
        t.pid,
        [{ ...a, thp: "nohugepage" }],
        "merge",
      );
      assertEquals(again.thpChanged, []); // nh already: nothing to record
      // b as if it had had MADV_HUGEPAGE: given back by madvise; a had
      // neither flag, which no madvise() restores.
      const un = await m.markProcess(t.pid, [
        { ...a, thp: "restore" },
        { ...b, thp: "restore-hugepage" },
      ], "unmerge");
      assertEquals(un.vmasChanged, 2);
      assertEquals(un.thpUnsupported, 1);
      assertEquals(un.thpChanged.map((c) => c.start), [b.start]);
      const fa = vmFlagsAt(t.pid, a.start), fb = vmFlagsAt(t.pid, b.start);
      assert(fa.includes("nh") && !fa.includes("mg"), fa.join(" "));
      assert(fb.includes("hg") && !fb.includes("nh"), fb.join(" "));
    } finally {
      m.close();
      await t.kill();
    }
  },
});

Deno.test({
  ...skipIf("ptrace marker: whole process with PR_SET_MEMORY_MERGE", {
    ...skip,
    "no KSM": !hasKsm,
    "no PR_SET_MEMORY_MERGE (Linux 6.4+)":
      !("ksm_merge_any" in (readProcessKsm(Deno.pid)?.stat ?? {})),
  }),
  async fn() {
    const t = await startTarget("regions");
    const m = createPtraceMarker();
    try {
      const r = regionsOf(t);
      const a = await m.markWholeProcess!(t.pid, true);
      assertEquals(readProcessKsm(t.pid)?.stat.ksm_merge_any, "yes");
      assert(a.vmasChanged >= 3, `changed ${a.vmasChanged}`);
      for (const p of r.priv) assertEquals(mergeableAt(t.pid, p.start), true);
      const b = await m.markWholeProcess!(t.pid, false);
      assertEquals(readProcessKsm(t.pid)?.stat.ksm_merge_any, "no");
      assertEquals(b.vmasChanged, a.vmasChanged);
      for (const p of r.priv) assertEquals(mergeableAt(t.pid, p.start), false);
    } finally {
      m.close();
      await t.kill();
    }
  },
});

Deno.test({
  ...skipIf(
    "ptrace marker: a seccomp-filtered target is skipped and survives",
    skip,
  ),
  async fn() {
    const t = await startTarget("regions", ["seccomp"]);
    const m = createPtraceMarker();
    try {
      const r = regionsOf(t);
      const sum0 = await sum(t);
      await rejects(
        () => m.markProcess(t.pid, r.priv, "merge"),
        (e: unknown) =>
          e instanceof ProcessSkipped && e.reason === "seccomp filter",
      );
      for (const p of r.priv) assertEquals(mergeableAt(t.pid, p.start), false);
      assertEquals(await sum(t), sum0);
    } finally {
      m.close();
      await t.kill();
    }
  },
});

Deno.test({
  ...skipIf(
    "ptrace marker: an already traced target is skipped and survives",
    skip,
  ),
  async fn() {
    const t = await startTarget("regions");
    const tracer = new Deno.Command(buildTarget("tracer"), {
      args: [String(t.pid)],
      stdin: "piped",
      stdout: "piped",
    }).spawn();
    const m = createPtraceMarker();
    try {
      const out = tracer.stdout.pipeThrough(new TextDecoderStream())
        .getReader();
      const ready = (await out.read()).value ?? "";
      assert(ready.startsWith("ready"), ready);
      out.releaseLock();
      const r = regionsOf(t);
      const sum0 = await sum(t);
      await rejects(
        () => m.markProcess(t.pid, r.priv, "merge"),
        (e: unknown) =>
          e instanceof ProcessSkipped &&
          e.reason === `already traced (by pid ${tracer.pid})`,
      );
      // The same when the other tracer seized only one thread and ours
      // is asked to stop exactly that one: PTRACE_SEIZE fails with EPERM.
      throws(
        () => PtraceSession.open(t.pid, { tid: t.pid }),
        (e: unknown) => e instanceof ProcessSkipped,
      );
      assertEquals(await sum(t), sum0);
    } finally {
      m.close();
      await tracer.stdin.close();
      await tracer.stdout.cancel().catch(() => {});
      await tracer.status;
      await t.kill();
    }
  },
});

Deno.test({
  ...skipIf(
    "injectSyscall: getpid and gettid run in the target's chosen thread",
    skip,
  ),
  async fn() {
    const t = await startTarget("regions");
    try {
      const r = regionsOf(t);
      assertEquals(injectSyscall(t.pid, 39).result, BigInt(t.pid)); // getpid
      const g = injectSyscall(t.pid, 186, [], { tid: r.sleeper }); // gettid
      assertEquals(g.result, BigInt(r.sleeper));
      assert(g.holdMs >= 0);
      assertEquals(injectSyscall(t.pid, 12345).result, -38n); // ENOSYS
      assertEquals(await sum(t), await sum(t)); // still answering
    } finally {
      await t.kill();
    }
  },
});

Deno.test({
  ...skipIf("ptrace session: the target exits during a hold", skip),
  async fn() {
    const t = await startTarget("regions");
    try {
      const r = regionsOf(t);
      const s = PtraceSession.open(t.pid, { tid: r.sleeper });
      assertEquals(s.call(39), BigInt(t.pid)); // getpid
      await t.send("exit 7"); // main exits while the sleeper is held
      // The exit kills the held thread: it leaves its ptrace stop ("t").
      await waitUntil(
        () => procState(t.pid, r.sleeper) !== "t",
        `the held thread ${r.sleeper} is killed by its process's exit`,
      );
      throws(() => s.call(39), (e: unknown) => e instanceof TargetGone);
      s.close(); // nothing left to do
      assertEquals((await t.status).code, 7);
    } finally {
      await t.kill();
    }
  },
});

Deno.test({
  ...skipIf("ptrace marker: 30 targets exiting at random points of marking", {
    ...skip,
    "no KSM": !hasKsm,
  }),
  async fn() {
    const m = createPtraceMarker();
    let gone = 0, marked = 0;
    try {
      for (let i = 0; i < 30; i++) {
        const t = await startTarget("regions");
        const r = regionsOf(t);
        const code = 10 + i;
        setTimeout(() => t.send(`exit ${code}`).catch(() => {}), i % 5);
        try {
          for (let k = 0; k < 20; k++) {
            await m.markProcess(t.pid, r.priv, k % 2 ? "unmerge" : "merge");
          }
          marked++;
        } catch (err) {
          const code = (err as { code?: string }).code;
          assert(code === "ESRCH", `unexpected ${err}`);
          gone++;
        }
        // The target exited with its own code: nothing kept it.
        assertEquals((await t.status).code, code);
        await t.kill();
      }
    } finally {
      m.close();
    }
    console.log(`exiting targets: ${gone} lost during marking, ${marked} done`);
    assertEquals(gone + marked, 30);
  },
});

Deno.test({
  ...skipIf("ptrace: Yama ptrace_scope 3 skips every target", skip),
  fn() {
    const f = Deno.makeTempFileSync();
    try {
      Deno.writeTextFileSync(f, "3\n");
      throws(
        () => checkTarget(Deno.pid, { yamaPath: f }),
        (e: unknown) =>
          e instanceof ProcessSkipped &&
          e.reason === "ptrace disabled (Yama ptrace_scope 3)",
      );
      Deno.writeTextFileSync(f, "1\n");
      assert(checkTarget(Deno.pid, { yamaPath: f }).tid > 0);
    } finally {
      Deno.removeSync(f);
    }
  },
});
