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

const ignore = Deno.build.arch !== "x86_64" || Deno.uid() !== 0 || !haveGcc();
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
    name:
      `ptrace: ${sig} to the injecting process: detached, exit 130, target intact`,
    ignore,
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

Deno.test({
  name:
    "ptrace: SIGKILL to the injecting process never leaves the target stopped or traced",
  ignore,
  async fn() {
    let bad = 0;
    const tries = 5;
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
        let alive = true;
        try {
          const s = tracerOf(t.pid);
          assertEquals(s.tracer, "0");
          assert(s.state !== "t" && s.state !== "T", `state ${s.state}`);
        } catch (err) {
          if (!(err instanceof Deno.errors.NotFound)) throw err;
          alive = false; // it died of the injected registers
        }
        if (alive) {
          await t.send("check").catch(() => {});
          const report = await t.line();
          if (!report?.startsWith("ok ")) bad++;
        } else bad++;
      } finally {
        await t.kill();
      }
    }
    console.log(
      `SIGKILL: ${bad} of ${tries} targets left in a bad state (measured; see bench/README.md)`,
    );
  },
});
