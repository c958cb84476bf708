/**
 * SIGINT, SIGTERM and SIGKILL to a process that is injecting into the
 * torture target (tests/ptrace/injector.ts in its own deno process).
 *
 * SIGINT/SIGTERM: the injector finishes the hold it is in, detaches and
 * exits 130; the target then passes its own check. SIGKILL: the kernel
 * detaches the target, which is never left stopped or traced; whether its
 * registers were the injected ones at that instant is measured, not
 * guaranteed (bench/ptrace_sigkill_bench.ts, bench/README.md).
 */
import {
  deepStrictEqual as assertEquals,
  ok as assert,
} from "node:assert/strict";
import {
  haveGcc,
  startTarget,
  type Target,
  tortureRegions,
} from "../ptrace/targets.ts";
import { skipIf } from "../helpers/skip.ts";

const skip = {
  "not x86-64": Deno.build.arch !== "x86_64",
  "not root": Deno.uid() !== 0,
  "no gcc": !haveGcc(),
};
const injectorPath = new URL("../ptrace/injector.ts", import.meta.url).pathname;

function startInjector(t: Target) {
  const ranges = tortureRegions(t.ready).map((r) =>
    `0x${r.start.toString(16)}-0x${r.end.toString(16)}`
  );
  const p = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", injectorPath, String(t.pid), ...ranges],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const started = (async () => {
    const r = p.stdout.pipeThrough(new TextDecoderStream()).getReader();
    const { value } = await r.read();
    r.releaseLock();
    return value ?? "";
  })();
  return { p, started };
}

function tracerOf(pid: number): { tracer: string; state: string } {
  const s = Deno.readTextFileSync(`/proc/${pid}/status`);
  return {
    tracer: /TracerPid:\s*(\d+)/.exec(s)![1],
    state: /State:\s*(\S)/.exec(s)![1],
  };
}

for (const sig of ["SIGINT", "SIGTERM"] as const) {
  Deno.test({
    ...skipIf(
      `ptrace: ${sig} to the injecting process: detached, exit 130, target intact`,
      skip,
    ),
    async fn() {
      const t = await startTarget("torture");
      try {
        for (let i = 0; i < 4; i++) {
          const { p, started } = startInjector(t);
          assertEquals((await started).trim(), "started");
          await new Promise((r) => setTimeout(r, 5 + 10 * i));
          p.kill(sig);
          const [st, err] = await Promise.all([
            p.status,
            new Response(p.stderr).text(),
          ]);
          await p.stdout.cancel().catch(() => {});
          assertEquals(st.code, 130, err);
          assert(err.includes(`interrupted by ${sig}`), err);
          assertEquals(tracerOf(t.pid).tracer, "0");
        }
        await t.send("check");
        const report = await t.line();
        assert(report?.startsWith("ok "), `target reported: ${report}`);
        assertEquals((await t.status).code, 0);
      } finally {
        await t.kill();
      }
    },
  });
}

/**
 * What the torture target's FAIL line names (" what=value(errno N)" each,
 * tests/ptrace/torture.c).
 */
function failures(report: string): string[] {
  return [...report.matchAll(/ (\w+)=-?\d+\(errno \d+\)/g)].map((m) => m[1]);
}

/**
 * The failures the window in which SIGKILL leaves injected registers
 * behind can cause (bench/README.md, "SIGKILL during injection"): the
 * engine holds the main thread in read() on stdin (src/ptrace/target.ts
 * prefers a sleeping thread, the leader first), so that read returns
 * madvise's 0, an end of file ("main_read"), and signals the hold had
 * deferred are lost. Anything else (a crash, changed memory, another
 * thread's wrong result) is not explained by the window: a bug.
 */
const WINDOW_FAILURES = new Set(["main_read", "signals_lost"]);

Deno.test({
  ...skipIf(
    "ptrace: SIGKILL to the injecting process never leaves the target stopped, traced, crashed or changed",
    skip,
  ),
  async fn() {
    const tries = 5;
    const bad: string[] = [];
    for (let i = 0; i < tries; i++) {
      const t = await startTarget("torture");
      try {
        const { p, started } = startInjector(t);
        assertEquals((await started).trim(), "started");
        await new Promise((r) => setTimeout(r, 3 * i));
        p.kill("SIGKILL");
        await p.status;
        await p.stdout.cancel().catch(() => {});
        await p.stderr.cancel().catch(() => {});
        await new Promise((r) => setTimeout(r, 20));
        // Guaranteed by the kernel: detached, and not left stopped.
        try {
          const s = tracerOf(t.pid);
          assertEquals(s.tracer, "0", `try ${i}: still traced`);
          assert(
            s.state !== "t" && s.state !== "T",
            `try ${i}: state ${s.state}`,
          );
        } catch (err) {
          if (!(err instanceof Deno.errors.NotFound)) throw err;
          // Gone already: it ended by itself (below says how).
        }
        // Its own check; a target that ended early has printed its
        // report already (an end of file on stdin runs the check).
        await t.send("check").catch(() => {});
        const report = await t.line();
        const st = await t.status;
        assertEquals(
          st.signal,
          null,
          `try ${i}: the target crashed (${st.signal}); it said ${report}`,
        );
        assert(report !== null, `try ${i}: the target ended without a report`);
        if (report.startsWith("ok ")) continue;
        assert(report.startsWith("FAIL"), `try ${i}: ${report}`);
        const what = failures(report);
        assert(
          what.length > 0 && what.every((w) => WINDOW_FAILURES.has(w)),
          `try ${i}: a failure the SIGKILL window does not explain: ${report}`,
        );
        bad.push(`try ${i}: ${what.join(", ")}`);
      } finally {
        await t.kill();
      }
    }
    // Measured, not guaranteed: how many tries hit the window.
    console.log(
      `SIGKILL: ${bad.length} of ${tries} targets got a wrong result of ` +
        `the held read (the window; bench/README.md)` +
        (bad.length ? `: ${bad.join("; ")}` : ""),
    );
  },
});
