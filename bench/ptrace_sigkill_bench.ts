/**
 * How often SIGKILL during ptrace injection leaves a target in a bad
 * state (run as root on x86-64):
 *
 *   deno run -A bench/ptrace_sigkill_bench.ts [--tries 1000] [--max-delay 20]
 *     [--mode main|both|in-process]
 *
 * Each try starts a fresh torture target (tests/ptrace/torture.c) and an
 * injector (tests/ptrace/injector.ts, its own deno process, marking the
 * target's four VMAs mergeable and unmergeable in turn without pause),
 * waits for its first round, then a random 0..--max-delay ms, and kills:
 *
 * - `main` (default, the realistic case): the injector marks through a
 *   tracer process, as mergemem does (src/ptrace/tracer.ts), and only the
 *   injector, mergemem's main process, is killed; the try waits until
 *   the tracer has finished and exited;
 * - `both`: the same, but the injector and its tracer are killed at the
 *   same instant (a cgroup kill: systemd's final SIGKILL, an OOM kill of
 *   the whole group), which nothing can make safe;
 * - `in-process`: the injector injects itself (createPtraceMarker) and is
 *   killed: the engine before the tracer process, the worst case.
 *
 * The kernel then detaches the target. The try is bad when the target is
 * left stopped or traced, has died, or fails its own check (wrong results
 * of its blocked calls, a short nanosleep, a lost signal, changed
 * memory). `held_at_kill` counts the kills that struck while the target
 * was held (its TracerPid, read just before the kill). The injector is inside a hold nearly all the time, while a
 * real merge holds each target for about a millisecond.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { startTarget, tortureRegions } from "../tests/ptrace/targets.ts";

const MODES = ["main", "both", "in-process"] as const;
type Mode = typeof MODES[number];

const { values } = parseArgs({
  options: {
    tries: { type: "string", default: "1000" },
    "max-delay": { type: "string", default: "20" },
    mode: { type: "string", default: "main" },
  },
});
const TRIES = Number(values.tries);
const MAX_DELAY = Number(values["max-delay"]);
const MODE = values.mode as Mode;
if (!MODES.includes(MODE)) {
  console.error(`--mode: one of ${MODES.join(", ")}`);
  Deno.exit(2);
}
const injector = new URL("../tests/ptrace/injector.ts", import.meta.url)
  .pathname;
const counts: Record<string, number> = {
  ok: 0,
  stopped_or_traced: 0,
  died: 0,
  check_failed: 0,
  injector_failed: 0,
  tracer_slow: 0,
  /** Not an outcome: kills that struck while the target was held. */
  held_at_kill: 0,
};
const failures: string[] = [];
const t0 = performance.now();

/** The TracerPid of pid, 0 when untraced or gone. */
function tracerOf(pid: number): number {
  try {
    const status = Deno.readTextFileSync(`/proc/${pid}/status`);
    return Number(/TracerPid:\s*(\d+)/.exec(status)?.[1] ?? 0);
  } catch {
    return 0;
  }
}

/** Whether pid has exited (gone, or a zombie not yet reaped). */
function exited(pid: number): boolean {
  try {
    const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
    return "ZX".includes(stat[stat.lastIndexOf(")") + 2]);
  } catch {
    return true;
  }
}

/** Waits until pid has exited, up to ms; false if it has not. */
async function waitExit(pid: number, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!exited(pid)) {
    if (Date.now() > end) return false;
    await new Promise((res) => setTimeout(res, 1));
  }
  return true;
}

for (let i = 0; i < TRIES; i++) {
  const t = await startTarget("torture");
  let tracer = 0;
  try {
    const ranges = tortureRegions(t.ready).map((r) =>
      `0x${r.start.toString(16)}-0x${r.end.toString(16)}`
    );
    const p = new Deno.Command(Deno.execPath(), {
      args: [
        "run",
        "-A",
        injector,
        ...(MODE === "in-process" ? [] : ["--tracer"]),
        String(t.pid),
        ...ranges,
      ],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const err = new Response(p.stderr).text();
    const r = p.stdout.pipeThrough(new TextDecoderStream()).getReader();
    const started = (await r.read()).value ?? ""; // "started [TRACER]"
    r.releaseLock();
    tracer = Number(started.trim().split(" ")[1] ?? 0);
    await new Promise((res) => setTimeout(res, Math.random() * MAX_DELAY));
    // Sampled just before the kill: whether it strikes during a hold.
    if (tracerOf(t.pid) !== 0) counts.held_at_kill++;
    try {
      if (MODE === "both") Deno.kill(tracer, "SIGKILL");
      p.kill("SIGKILL");
    } catch {
      // It ended by itself: an engine error, not a kill.
      counts.injector_failed++;
      failures.push(`try ${i}: injector failed: ${(await err).trim()}`);
    }
    await p.status;
    await p.stdout.cancel().catch(() => {});
    if (tracer && !await waitExit(tracer, 60_000)) {
      counts.tracer_slow++;
      failures.push(`try ${i}: the tracer ${tracer} still ran after 60 s`);
    }
    // The tracer held the injector's stderr too: complete once it is gone.
    await err;
    await new Promise((res) => setTimeout(res, 10));
    let status: string;
    try {
      status = Deno.readTextFileSync(`/proc/${t.pid}/status`);
    } catch {
      status = "";
    }
    const state = /State:\s*(\S)/.exec(status)?.[1];
    const tracerPid = /TracerPid:\s*(\d+)/.exec(status)?.[1];
    if (!status || state === "Z" || state === "X") {
      counts.died++;
      failures.push(`try ${i}: died (${(await t.status).signal ?? "exit"})`);
      continue;
    }
    if (state === "t" || state === "T" || tracerPid !== "0") {
      counts.stopped_or_traced++;
      failures.push(`try ${i}: state ${state}, TracerPid ${tracerPid}`);
      continue;
    }
    await t.send("check").catch(() => {});
    const report = await t.line();
    if (report?.startsWith("ok ")) counts.ok++;
    else {
      counts.check_failed++;
      failures.push(
        `try ${i}: ${report ?? `died (${(await t.status).signal})`}`,
      );
    }
  } finally {
    await t.kill();
    if (tracer && !exited(tracer)) {
      try {
        Deno.kill(tracer, "SIGKILL");
      } catch { /* gone meanwhile */ }
    }
  }
  if ((i + 1) % 100 === 0) {
    console.error(`${i + 1} tries: ${JSON.stringify(counts)}`);
  }
}
console.log(JSON.stringify({ mode: MODE, tries: TRIES, ...counts }));
console.log(
  `${TRIES - counts.ok} of ${TRIES} targets left in a bad state ` +
    `(${((performance.now() - t0) / 1000).toFixed(0)} s; ` +
    `${counts.held_at_kill} kills struck while the target was held)`,
);
for (const f of failures.slice(0, 20)) console.log(f);
