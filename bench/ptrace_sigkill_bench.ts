/**
 * How often SIGKILL to an injecting mergemem leaves its target in a bad
 * state (run as root on x86-64):
 *
 *   deno run -A bench/ptrace_sigkill_bench.ts [--tries 1000] [--max-delay 20]
 *
 * Each try starts a fresh torture target (tests/ptrace/torture.c) and an
 * injector (tests/ptrace/injector.ts, its own deno process, marking the
 * target's four VMAs mergeable and unmergeable in turn without pause),
 * waits for its first round, then a random 0..--max-delay ms, and kills
 * the injector with SIGKILL. The kernel then detaches the target. The try
 * is bad when the target is left stopped or traced, has died, or fails its
 * own check (wrong results of its blocked calls, a short nanosleep, a lost
 * signal, changed memory). This is the worst case: the injector is inside
 * a hold nearly all the time, while a real merge holds each target for
 * well under a millisecond per VMA.
 *
 * @module
 */
import { parseArgs } from "node:util";
import { startTarget, tortureRegions } from "../tests/ptrace/targets.ts";

const { values } = parseArgs({
  options: {
    tries: { type: "string", default: "1000" },
    "max-delay": { type: "string", default: "20" },
  },
});
const TRIES = Number(values.tries);
const MAX_DELAY = Number(values["max-delay"]);
const injector = new URL("../tests/ptrace/injector.ts", import.meta.url)
  .pathname;
const counts: Record<string, number> = {
  ok: 0,
  stopped_or_traced: 0,
  died: 0,
  check_failed: 0,
  injector_failed: 0,
};
const failures: string[] = [];
const t0 = performance.now();

for (let i = 0; i < TRIES; i++) {
  const t = await startTarget("torture");
  try {
    const ranges = tortureRegions(t.ready).map((r) =>
      `0x${r.start.toString(16)}-0x${r.end.toString(16)}`
    );
    const p = new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", injector, String(t.pid), ...ranges],
      stdout: "piped",
      stderr: "piped",
    }).spawn();
    const err = new Response(p.stderr).text();
    const r = p.stdout.getReader();
    await r.read(); // "started"
    r.releaseLock();
    await new Promise((res) => setTimeout(res, Math.random() * MAX_DELAY));
    try {
      p.kill("SIGKILL");
    } catch {
      // It ended by itself: an engine error, not a kill.
      counts.injector_failed++;
      failures.push(`try ${i}: injector failed: ${(await err).trim()}`);
    }
    await p.status;
    await err;
    await p.stdout.cancel().catch(() => {});
    await new Promise((res) => setTimeout(res, 10));
    let status: string;
    try {
      status = Deno.readTextFileSync(`/proc/${t.pid}/status`);
    } catch {
      status = "";
    }
    const state = /State:\s*(\S)/.exec(status)?.[1];
    const tracer = /TracerPid:\s*(\d+)/.exec(status)?.[1];
    if (!status || state === "Z" || state === "X") {
      counts.died++;
      failures.push(`try ${i}: died (${(await t.status).signal ?? "exit"})`);
      continue;
    }
    if (state === "t" || state === "T" || tracer !== "0") {
      counts.stopped_or_traced++;
      failures.push(`try ${i}: state ${state}, TracerPid ${tracer}`);
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
  }
  if ((i + 1) % 100 === 0) {
    console.error(`${i + 1} tries: ${JSON.stringify(counts)}`);
  }
}
console.log(JSON.stringify({ tries: TRIES, ...counts }));
console.log(
  `${TRIES - counts.ok} of ${TRIES} targets left in a bad state ` +
    `(${((performance.now() - t0) / 1000).toFixed(0)} s)`,
);
for (const f of failures.slice(0, 20)) console.log(f);
