/**
 * presentFrames() and distinctUnion() on real workers with exactly known memory
 * (tests/helpers/worker.c). Run as root (PFNs need CAP_SYS_ADMIN).
 */
import { deepStrictEqual as eq } from "node:assert/strict";
import {
  distinctUnion,
  presentFrames,
  ZeroPageFilter,
} from "../../src/pages/frames.ts";
import { systemPageSize } from "../../src/pages/pagesize.ts";
import {
  C,
  D,
  R,
  STANDARD_SPEC,
  startWorker,
  T,
  U,
  Z,
} from "../helpers/workers.ts";
import { procState, waitUntil } from "../helpers/wait.ts";

const SPEC = STANDARD_SPEC;
const PAGES = D + U + C + Z + R + T;

function region(addr: string) {
  const start = BigInt(addr);
  return [{ start, end: start + BigInt(PAGES * systemPageSize()) }];
}

Deno.test("presentFrames: written pages are frames, zero-page reads are not; fork shares all", async () => {
  const a = await startWorker(SPEC);
  const f = await startWorker({ ...SPEC, fork: true });
  const zero = new ZeroPageFilter();
  try {
    const fa = presentFrames(a.pid, region(a.addr), zero)!;
    const fp = presentFrames(f.pid, region(f.addr), zero)!;
    const fq = presentFrames(f.child, region(f.addr), zero)!;
    // Every written page (zeroed ones too) is its own frame; the R pages
    // only read sit on the shared zero page and are left out.
    eq(fa.length, D + U + C + Z);
    eq(fp.length, D + U + C + Z);
    // The child shares every frame with its parent (COW, never written).
    eq([...fq], [...fp]);
    eq(new Set([...fa, ...fp]).size, 2 * (D + U + C + Z));
    // distinctUnion: ascending and distinct, as the unions of
    // src/merge/achieved.ts need; the child adds no frame.
    const u = distinctUnion([fa, fp, fq]);
    eq(u.length, 2 * (D + U + C + Z));
    eq(u.every((x, i) => i === 0 || x > u[i - 1]), true);
    eq([...distinctUnion([fa])], [...fa].sort((x, y) => x - y));
  } finally {
    zero.close();
    await a.stop();
    await f.stop();
  }
});

Deno.test("presentFrames: a process that is gone gives undefined", async () => {
  const a = await startWorker(SPEC);
  const r = region(a.addr);
  await a.stop();
  eq(presentFrames(a.pid, r, new ZeroPageFilter()), undefined);
});

Deno.test("presentFrames: a zombie (exited, not reaped) gives undefined", async () => {
  // sh forks a short sleep and execs a long one (killed at the end) that
  // never reaps it.
  const p = new Deno.Command("sh", {
    args: ["-c", "sleep 0.1 & exec sleep 3600"],
  }).spawn();
  try {
    let kid = 0;
    await waitUntil(() => {
      const k = Deno.readTextFileSync(`/proc/${p.pid}/task/${p.pid}/children`)
        .trim();
      if (k && procState(Number(k)) === "Z") kid = Number(k);
      return kid > 0;
    }, `the child of pid ${p.pid} (sh, then sleep) is a zombie`);
    eq(
      presentFrames(
        kid,
        [{ start: 0x1000, end: 0x2000 }],
        new ZeroPageFilter(),
      ),
      undefined,
    );
  } finally {
    p.kill("SIGKILL");
    await p.status;
  }
});
