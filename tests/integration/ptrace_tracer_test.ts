/**
 * The ptrace engine's tracer process (src/ptrace/tracer.ts) against real
 * targets: the torture target (tests/ptrace/torture.c), whose main thread
 * the engine holds in read() on a pipe (its stdin), and whose own check
 * fails if that read ever returned early, a queued signal was lost or
 * memory changed.
 *
 * - SIGKILL to mergemem's main process while the tracer holds a target
 *   (the library call, killed with its whole process group as `timeout
 *   -s KILL` does; and `mergemem merge --engine ptrace`, its main pid
 *   killed): the tracer finishes the hold, detaches and exits; every
 *   target's read() is still blocked, it is not traced, its check passes.
 * - SIGINT/SIGTERM to main: main has the tracer stop and waits for it, so
 *   the target is detached when main exits 130.
 * - SIGKILL to the tracer itself: main's marking fails with a message;
 *   the kernel detached the target.
 *
 * Nothing here asserts a duration: every wait is for a state, bounded
 * only against a hang.
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
import { hasExited, procState, waitUntil } from "../helpers/wait.ts";
import { TRACER_NAME } from "../../src/ptrace/tracer.ts";

const ignore = Deno.build.arch !== "x86_64" || Deno.uid() !== 0 || !haveGcc();
const injector = new URL("../ptrace/injector.ts", import.meta.url).pathname;
const mainTs = new URL("../../main.ts", import.meta.url).pathname;

/** The target's "0x...-0x..." ranges, the injector's arguments. */
function ranges(t: Target): string[] {
  return tortureRegions(t.ready).map((r) =>
    `0x${r.start.toString(16)}-0x${r.end.toString(16)}`
  );
}

/** TracerPid and state of a process (undefined once it is gone). */
function traced(pid: number): { tracer: number; state: string } | undefined {
  try {
    const s = Deno.readTextFileSync(`/proc/${pid}/status`);
    return {
      tracer: Number(/TracerPid:\s*(\d+)/.exec(s)![1]),
      state: /State:\s*(\S)/.exec(s)![1],
    };
  } catch {
    return undefined;
  }
}

/**
 * Spins until one of `pids` is held by a tracer (a hold in progress) or
 * `done()` says the run is over; true when a hold was seen. A busy loop
 * on purpose: a hold lasts about a millisecond.
 */
function waitForHold(pids: number[], done: () => boolean): boolean {
  const end = Date.now() + 120_000;
  while (Date.now() < end && !done()) {
    if (pids.some((p) => (traced(p)?.tracer ?? 0) !== 0)) return true;
  }
  return false;
}

/** The child pids of pid (every thread's children). */
function childrenOf(pid: number): number[] {
  const out: number[] = [];
  try {
    for (const t of Deno.readDirSync(`/proc/${pid}/task`)) {
      const text = Deno.readTextFileSync(
        `/proc/${pid}/task/${t.name}/children`,
      );
      out.push(...text.split(" ").filter(Boolean).map(Number));
    }
  } catch { /* gone */ }
  return out;
}

/** The process name (comm) of pid, or undefined. */
function comm(pid: number): string | undefined {
  try {
    return Deno.readTextFileSync(`/proc/${pid}/comm`).trim();
  } catch {
    return undefined;
  }
}

/**
 * What must hold for a target once the tracer is gone: not traced, not
 * stopped, its main thread still blocked in read() (/proc/PID/syscall
 * starts with the number of read, 0), and its own check passes (the read
 * returns the "check" line, not an early end of file; memory intact).
 */
async function assertUntouched(t: Target, what: string): Promise<void> {
  const s = traced(t.pid);
  assert(s, `${what}: the target is gone`);
  assertEquals(s.tracer, 0, `${what}: still traced`);
  assert(s.state !== "t" && s.state !== "T", `${what}: state ${s.state}`);
  await waitUntil(
    () => Deno.readTextFileSync(`/proc/${t.pid}/syscall`).startsWith("0 "),
    `${what}: the target's main thread is blocked in read() again`,
  );
  await t.send("check");
  const report = await t.line();
  assert(report?.startsWith("ok "), `${what}: the target said ${report}`);
  assertEquals((await t.status).code, 0);
}

/** Starts the injector with --tracer; resolves to it and its tracer pid. */
async function startInjector(
  t: Target,
  opts: { ownGroup?: boolean } = {},
) {
  const args = ["run", "-A", injector, "--tracer", String(t.pid), ...ranges(t)];
  // setsid(1): a process group of its own (as `timeout` makes one), so
  // that the test can kill the whole group.
  const p = opts.ownGroup
    ? new Deno.Command("setsid", {
      args: [Deno.execPath(), ...args],
      stdout: "piped",
      stderr: "piped",
    }).spawn()
    : new Deno.Command(Deno.execPath(), {
      args,
      stdout: "piped",
      stderr: "piped",
    }).spawn();
  const stderr = new Response(p.stderr).text();
  const r = p.stdout.pipeThrough(new TextDecoderStream()).getReader();
  const { value } = await r.read();
  r.releaseLock();
  const m = /^started (\d+)/.exec(value ?? "");
  if (!m) {
    await end(p);
    throw new Error(`the injector said ${value}; stderr: ${await stderr}`);
  }
  const tracer = Number(m[1]);
  return {
    p,
    stderr,
    tracer,
    /** After a failed assertion: neither may outlive the test. */
    async stop() {
      await end(p);
      if (!hasExited(tracer)) {
        try {
          Deno.kill(tracer, "SIGKILL");
        } catch { /* gone meanwhile */ }
      }
      await stderr.catch(() => {});
    },
  };
}

/** Kills a child process if it still runs, and reaps it. */
async function end(p: Deno.ChildProcess): Promise<void> {
  try {
    p.kill("SIGKILL");
  } catch { /* ended already */ }
  await p.status;
  await p.stdout.cancel().catch(() => {});
}

Deno.test({
  name:
    "ptrace tracer: SIGKILL to the marking process's group while a target is held leaves every target untouched",
  ignore,
  async fn() {
    for (let i = 0; i < 3; i++) {
      const t = await startTarget("torture");
      let inj: Awaited<ReturnType<typeof startInjector>> | undefined;
      try {
        inj = await startInjector(t, { ownGroup: true });
        const { p, stderr, tracer } = inj;
        // The tracer left the injector's session and group, and says
        // what it is.
        const stat = Deno.readTextFileSync(`/proc/${tracer}/stat`);
        // After the name: state, ppid, pgrp, session.
        const [, , pgrp, session] = stat.slice(stat.lastIndexOf(")") + 2)
          .split(" ").map(Number);
        assertEquals([pgrp, session], [tracer, tracer]);
        assertEquals(comm(tracer), TRACER_NAME);
        assert(waitForHold([t.pid], () => false), "no hold seen");
        Deno.kill(-p.pid, "SIGKILL");
        assertEquals((await p.status).signal, "SIGKILL");
        await stderr;
        await waitUntil(() => hasExited(tracer), "the tracer has exited");
        await assertUntouched(t, `try ${i}`);
      } finally {
        await inj?.stop();
        await t.kill();
      }
    }
  },
});

Deno.test({
  name:
    "ptrace tracer: SIGKILL to `mergemem merge --engine ptrace` while it marks leaves every target untouched",
  ignore,
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    // A merge holds each target once, briefly: each run is killed at the
    // first hold seen; a run that ends before one is seen is run again on
    // fresh targets (the last run's are marked already).
    let killed = 0;
    let runs = 0;
    for (let run = 0; run < 30 && killed < 2; run++) {
      runs++;
      const ts: Target[] = [];
      try {
        for (let i = 0; i < 3; i++) ts.push(await startTarget("torture"));
        const p = new Deno.Command(Deno.execPath(), {
          args: [
            "run",
            "-A",
            mainTs,
            "merge",
            "--engine",
            "ptrace",
            "--pid",
            ts.map((t) => t.pid).join(","),
            "--min-saving",
            "0",
            "--timeout",
            "1",
          ],
          stdout: "null",
          stderr: "piped",
        }).spawn();
        const stderr = new Response(p.stderr).text();
        let ended = false;
        p.status.then(() => ended = true);
        // Let the status callback run between polls.
        let held = false;
        while (!ended && !held) {
          held = waitForHold(ts.map((t) => t.pid), () => ended);
          await new Promise((r) => setTimeout(r, 0));
        }
        if (!held) {
          await stderr;
          continue;
        }
        const tracer = childrenOf(p.pid).find((c) => comm(c) === TRACER_NAME);
        p.kill("SIGKILL");
        const st = await p.status;
        if (st.signal !== "SIGKILL") continue; // it had just finished
        killed++;
        assert(tracer, "the tracer is a child of mergemem's main process");
        await waitUntil(() => hasExited(tracer), "the tracer has exited");
        await stderr;
        for (const [i, t] of ts.entries()) {
          await assertUntouched(t, `run ${run}, target ${i}`);
        }
      } finally {
        for (const t of ts) await t.kill();
      }
    }
    console.log(
      `merge killed while it held a target: ${killed} of ${runs} runs`,
    );
    assert(killed > 0, "no run was killed while it held a target");
  },
});

for (const sig of ["SIGINT", "SIGTERM"] as const) {
  Deno.test({
    name:
      `ptrace tracer: ${sig} to the marking process: it waits until the tracer has detached, then exits 130`,
    ignore,
    async fn() {
      const t = await startTarget("torture");
      let inj: Awaited<ReturnType<typeof startInjector>> | undefined;
      try {
        inj = await startInjector(t);
        const { p, stderr, tracer } = inj;
        assert(waitForHold([t.pid], () => false), "no hold seen");
        p.kill(sig);
        const st = await p.status;
        const err = await stderr;
        assertEquals(st.code, 130, err);
        assert(err.includes(`interrupted by ${sig}`), err);
        // Main exited only once the tracer had answered: detached now.
        assertEquals(traced(t.pid)?.tracer, 0);
        await waitUntil(() => hasExited(tracer), "the tracer has exited");
        await assertUntouched(t, sig);
      } finally {
        await inj?.stop();
        await t.kill();
      }
    },
  });
}

Deno.test({
  name:
    "ptrace tracer: SIGKILL to the tracer itself fails the marking with a message; the kernel detaches the target",
  ignore,
  async fn() {
    const t = await startTarget("torture");
    let inj: Awaited<ReturnType<typeof startInjector>> | undefined;
    try {
      inj = await startInjector(t);
      const { p, stderr, tracer } = inj;
      Deno.kill(tracer, "SIGKILL");
      const st = await p.status;
      const err = await stderr;
      assertEquals(st.code, 1, err);
      assert(
        err.includes(`the ptrace tracer (pid ${tracer}) was killed by SIGKILL`),
        err,
      );
      await waitUntil(() => procState(tracer) !== "t", "the tracer is gone");
      // The kernel detached it; whether it was in the register window is
      // what bench/ptrace_sigkill_bench.ts --mode both measures.
      const s = traced(t.pid);
      if (s) assertEquals(s.tracer, 0);
    } finally {
      await inj?.stop();
      await t.kill();
    }
  },
});
