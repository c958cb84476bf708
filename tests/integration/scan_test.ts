/**
 * Integration tests of the scan library against real worker processes
 * with exactly known memory (tests/helpers/worker.c). Run as root.
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { scan } from "../../src/scan/mod.ts";
import type { ProcessResult, ScanResult } from "../../src/scan/mod.ts";
import {
  C,
  D,
  R,
  STANDARD_SPEC,
  startWorker,
  U,
  type Worker,
  Z,
} from "../helpers/workers.ts";
import { denoRunAs, testUser, type User } from "../helpers/run_as.ts";
import { hasExited, waitUntil } from "../helpers/wait.ts";

const SPEC = STANDARD_SPEC;

/** Three plain workers and one that forks (parent P, child Q), in pid order. */
async function startSet(
  user?: User,
): Promise<{ all: Worker[]; pids: number[] }> {
  const all: Worker[] = [];
  for (let i = 0; i < 3; i++) all.push(await startWorker({ ...SPEC, user }));
  all.push(await startWorker({ ...SPEC, fork: true, user }));
  const f = all[3];
  return { all, pids: [...all.map((w) => w.pid), f.child] };
}

/** The region mapping's counts of each process, in pid order. */
function regions(r: ScanResult, pids: number[], addr: string) {
  return pids.map((pid) => {
    const p = r.processes.find((x) => x.pid === pid) as ProcessResult;
    const m = p.mappings.find((x) => x.start === addr)!;
    return {
      present: m.pages_present,
      zero: m.pages_zero,
      dup: m.pages_duplicate,
      shared: m.pages_shared_already,
      est: m.pages_shared_already_estimate,
      save: m.saveable_pages,
    };
  });
}

const P = D + U + C + Z + R; // present pages per region

function row(
  dup: number,
  shared: number | null,
  est: number,
  save: number,
) {
  return { present: P, zero: Z + R, dup, shared, est, save };
}

// Expected region counts, W1 W2 W3 P Q (see docs/accounting.md for why).
const ROOT_HASH = [
  row(D + C, R, R, D - 1 + Z),
  row(D + C, R, R, D + C + Z),
  row(D + C, R, R, D + C + Z),
  row(D + C, P, P, D + C + Z),
  row(D + C, P, P, 0),
];
const ROOT_EQUALV = [
  row(D + C, R, R, 0),
  row(D + C, R, R, D + C + Z),
  row(D + C, R, R, D + C + Z),
  row(D + C, P, P, D + C + Z),
  row(D + C, P, P, 0),
];

async function withWorkers(
  user: User | undefined,
  fn: (pids: number[], addr: string) => Promise<void>,
) {
  const { all, pids } = await startSet(user);
  try {
    await fn(pids, all[0].addr);
  } finally {
    for (const w of all) await w.stop();
  }
}

Deno.test("root: exact counts, hash strategy, any checksum", async () => {
  await withWorkers(undefined, async (pids, addr) => {
    for (
      const checksum of ["fast", "const", "crc32", "xxh64", "addrot", "scl"]
    ) {
      const r = await scan({ selection: { pids }, checksum });
      assertEquals(r.pfns_available, true);
      assertEquals(r.checksum, checksum);
      assertEquals(r.totals.processes, 5);
      assertEquals(regions(r, pids, addr), ROOT_HASH, checksum);
    }
  });
});

Deno.test("root: exact counts in small pagemap chunks, each decoded while the previous one is hashed", async () => {
  await withWorkers(undefined, async (pids, addr) => {
    for (const checksum of ["xxh64", "fast"]) {
      const r = await scan({ selection: { pids }, checksum, pagemapBatch: 7 });
      assertEquals(regions(r, pids, addr), ROOT_HASH, checksum);
    }
    const r = await scan({
      selection: { pids },
      strategy: "equalv",
      pagemapBatch: 7,
    });
    assertEquals(regions(r, pids, addr), ROOT_EQUALV);
  });
});

Deno.test("root: exact counts, equalv strategy", async () => {
  await withWorkers(undefined, async (pids, addr) => {
    const r = await scan({ selection: { pids }, strategy: "equalv" });
    assertEquals(r.strategy, "equalv");
    assertEquals(regions(r, pids, addr), ROOT_EQUALV);
  });
});

Deno.test("root: totals are the sums of the processes and mappings", async () => {
  await withWorkers(undefined, async (pids) => {
    const r = await scan({ selection: { pids } });
    let save = 0, dup = 0, present = 0;
    for (const p of r.processes) {
      let ms = 0;
      for (const m of p.mappings) ms += m.saveable_pages;
      assertEquals(ms, p.totals.saveable_pages);
      save += p.totals.saveable_pages;
      dup += p.totals.pages_duplicate;
      present += p.totals.pages_present;
    }
    assertEquals(save, r.totals.saveable_pages);
    assertEquals(dup, r.totals.pages_duplicate);
    assertEquals(present, r.totals.pages_present);
    assertEquals(
      r.totals.saveable_bytes,
      r.totals.saveable_pages * r.page_size,
    );
  });
});

/** Runs a scan as `user` in a subprocess and returns its result. */
async function scanAs(user: User, opts: unknown): Promise<ScanResult> {
  const helper = new URL("../helpers/scan_as.ts", import.meta.url).pathname;
  const out = await denoRunAs(user, helper, [JSON.stringify(opts)]).output();
  const text = new TextDecoder().decode(out.stdout);
  if (!out.success) {
    throw new Error(new TextDecoder().decode(out.stderr) || text);
  }
  return JSON.parse(text);
}

// Without PFNs every non-exclusive page of one content counts as one
// stand-in frame (docs/accounting.md), which P and Q's fork-shared pages
// and every zero-page mapping are.
const USER_HASH = [
  row(D + C, null, R, D - 1 + Z),
  row(D + C, null, R, D + C + Z),
  row(D + C, null, R, D + C + Z),
  row(D + C, null, P, 1 + C),
  row(D + C, null, P, 0),
];
const USER_EQUALV = [
  row(D + C, null, R, 0),
  row(D + C, null, R, D + C + Z),
  row(D + C, null, R, D + C + Z),
  row(D + C, null, P, D + C + Z),
  row(D + C, null, P, 0),
];

Deno.test("unprivileged: exact estimates, pfns_available false", async () => {
  const user = await testUser();
  await withWorkers(user, async (pids, addr) => {
    for (const checksum of ["fast", "const", "crc32"]) {
      const r = await scanAs(user, { selection: { pids }, checksum });
      assertEquals(r.pfns_available, false);
      assertEquals(r.totals.pages_shared_already, null);
      assertEquals(r.totals.processes, 5);
      assertEquals(regions(r, pids, addr), USER_HASH, checksum);
    }
    const e = await scanAs(user, { selection: { pids }, strategy: "equalv" });
    assertEquals(regions(e, pids, addr), USER_EQUALV);
  });
});

Deno.test("unprivileged: another user's process is skipped, not fatal", async () => {
  const user = await testUser();
  const mine = await startWorker({ ...SPEC, user });
  const roots = await startWorker(SPEC);
  try {
    const r = await scanAs(user, {
      selection: { pids: [roots.pid, mine.pid] },
    });
    const skipped = r.processes.find((p) => p.pid === roots.pid)!;
    assertEquals(
      ["EACCES", "EPERM"].includes(skipped.skipped?.reason ?? ""),
      true,
    );
    assertEquals(skipped.totals.pages_present, 0);
    const ok = r.processes.find((p) => p.pid === mine.pid)!;
    assertEquals(ok.skipped, null);
    const m = ok.mappings.find((x) => x.start === mine.addr)!;
    assertEquals(m.pages_present, P);
    assertEquals(r.totals.processes, 1);
    assertEquals(r.totals.processes_skipped, 1);
  } finally {
    await mine.stop();
    await roots.stop();
  }
});

Deno.test("a pid that does not exist is skipped with ESRCH", async () => {
  const w = await startWorker(SPEC);
  try {
    const r = await scan({ selection: { pids: [w.pid, 0x3ffffff0] } });
    const gone = r.processes.find((p) => p.pid === 0x3ffffff0)!;
    assertEquals(gone.skipped?.reason, "ESRCH");
    assertEquals(r.totals.processes, 1);
    assertEquals(r.totals.processes_skipped, 1);
    assertEquals(r.totals.pages_present > 0, true);
  } finally {
    await w.stop();
  }
});

Deno.test("a process that exits mid-scan is skipped, the scan goes on", async () => {
  const a = await startWorker({ ...SPEC, dup: 64 });
  const b = await startWorker(SPEC);
  try {
    let killed = false;
    const r = await scan({
      selection: { pids: [a.pid, b.pid] },
      // Small pagemap batches so progress comes while a is half done.
      pagemapBatch: 16,
      onProgress: async (p) => {
        if (p.pid === a.pid && !killed) {
          killed = true;
          Deno.kill(a.pid, "SIGKILL");
          // Until its memory is gone (a zombie or reaped), however long
          // the kill takes on this machine.
          await waitUntil(
            () => hasExited(a.pid),
            `pid ${a.pid} has exited after SIGKILL`,
          );
        }
      },
    });
    assertEquals(killed, true);
    const pa = r.processes.find((p) => p.pid === a.pid)!;
    assertEquals(pa.skipped?.reason, "ESRCH");
    assertEquals(pa.totals.pages_present, 0);
    const pb = r.processes.find((p) => p.pid === b.pid)!;
    assertEquals(pb.skipped, null);
    const m = pb.mappings.find((x) => x.start === b.addr)!;
    assertEquals(m.pages_present, P);
    // Alone, b's own dup pages are D - 1 saveable, its zero pages Z.
    assertEquals(m.pages_duplicate, D);
    assertEquals(r.totals.processes, 1);
  } finally {
    await a.stop();
    await b.stop();
  }
});
