/**
 * distinctFrames() on real workers with exactly known memory
 * (tests/helpers/worker.c). Run as root (PFNs need CAP_SYS_ADMIN).
 */
import { deepStrictEqual as eq } from "node:assert/strict";
import {
  distinctFrames,
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

const SPEC = STANDARD_SPEC;
const PAGES = D + U + C + Z + R + T;

function region(addr: string) {
  const start = BigInt(addr);
  return [{ start, end: start + BigInt(PAGES * systemPageSize()) }];
}

Deno.test("distinctFrames: written pages are frames, zero-page reads are not; fork shares all", async () => {
  const a = await startWorker(SPEC);
  const f = await startWorker({ ...SPEC, fork: true });
  const zero = new ZeroPageFilter();
  try {
    const fa = distinctFrames(a.pid, region(a.addr), zero)!;
    const fp = distinctFrames(f.pid, region(f.addr), zero)!;
    const fq = distinctFrames(f.child, region(f.addr), zero)!;
    // Every written page (zeroed ones too) is its own frame; the R pages
    // only read sit on the shared zero page and are left out.
    eq(fa.length, D + U + C + Z);
    eq(fp.length, D + U + C + Z);
    // The child shares every frame with its parent (COW, never written).
    eq([...fq], [...fp]);
    // Ascending and distinct, as the unions of src/merge/achieved.ts need.
    for (const f of [fa, fp]) {
      eq(f.every((x, i) => i === 0 || x > f[i - 1]), true);
    }
    eq(new Set([...fa, ...fp]).size, 2 * (D + U + C + Z));
    eq(distinctUnion([fa, fp, fq]).length, 2 * (D + U + C + Z));
    // presentFrames: the same frames, in address order, unsorted.
    const pa = presentFrames(a.pid, region(a.addr), zero)!;
    eq([...distinctUnion([pa])], [...fa]);
    eq(pa.length, D + U + C + Z);
  } finally {
    zero.close();
    await a.stop();
    await f.stop();
  }
});

Deno.test("distinctFrames: a process that is gone gives undefined", async () => {
  const a = await startWorker(SPEC);
  const r = region(a.addr);
  await a.stop();
  eq(distinctFrames(a.pid, r, new ZeroPageFilter()), undefined);
});

Deno.test("distinctFrames: a zombie (exited, not reaped) gives undefined", async () => {
  // sh forks a short sleep and execs a long one that never reaps it.
  const p = new Deno.Command("sh", {
    args: ["-c", "sleep 0.1 & exec sleep 30"],
  }).spawn();
  try {
    let kid = 0;
    for (let i = 0; i < 100 && !kid; i++) {
      await new Promise((r) => setTimeout(r, 50));
      const k = Deno.readTextFileSync(`/proc/${p.pid}/task/${p.pid}/children`)
        .trim();
      if (k && Deno.readTextFileSync(`/proc/${k}/stat`).includes(") Z ")) {
        kid = Number(k);
      }
    }
    eq(kid > 0, true);
    eq(
      distinctFrames(
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
