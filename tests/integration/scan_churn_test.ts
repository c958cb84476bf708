/**
 * Processes that vanish during a scan (issue 7, "processes that vanish"):
 * a server whose children exit (or exec) at random moments and linger
 * unreaped as zombies for a while, as apache2's and php-fpm's do, scanned
 * 200 times back to back together with workers of exactly known memory.
 * No scan may fail; every vanished process is skipped with its reason;
 * the survivors' figures stay exact. Run as root.
 */
import { deepStrictEqual as eq, ok } from "node:assert/strict";
import { createKernelBackend } from "../../src/kmod/backend.ts";
import { scan } from "../../src/scan/mod.ts";
import type { ProcessResult } from "../../src/scan/mod.ts";
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
import { startChurnServer } from "../helpers/churn.ts";

const SPEC = STANDARD_SPEC;
const P = D + U + C + Z + R;
const row = (dup: number, shared: number, save: number) => ({
  present: P,
  zero: Z + R,
  dup,
  shared,
  save,
});
// The survivors' region counts, W1 W2 W3 parent child (as scan_test.ts).
const EXPECTED = [
  row(D + C, R, D - 1 + Z),
  row(D + C, R, D + C + Z),
  row(D + C, R, D + C + Z),
  row(D + C, P, D + C + Z),
  row(D + C, P, 0),
];

/**
 * At least `scans` back-to-back scans (with the kernel back-end when
 * `kernel`) of the workers and the churning server; throws on any failure.
 */
export async function churn(scans: number, kernel: boolean): Promise<void> {
  const workers: Worker[] = [];
  for (let i = 0; i < 3; i++) workers.push(await startWorker(SPEC));
  workers.push(await startWorker({ ...SPEC, fork: true }));
  const survivors = [...workers.map((w) => w.pid), workers[3].child];
  const addr = workers[0].addr;
  const server = await startChurnServer(8, 1024);
  const comm = server.comm;
  let skipped = 0, zombies = 0;
  const reasons = new Set<string>();
  try {
    // At least `scans` scans, and on until one of them met a process that
    // vanished (up to 4 times as many): how often a child dies mid-scan
    // depends on the machine's speed, and a run that never met one tested
    // nothing.
    for (let i = 0; i < scans || (skipped === 0 && i < 4 * scans); i++) {
      // The server's children are found by comm, the workers by pid.
      const backend = kernel ? createKernelBackend() : undefined;
      let r;
      try {
        r = await scan({
          selection: { pids: survivors, comms: [comm] },
          backend,
          checksum: kernel || i % 2 ? "xxh64" : "fast",
        });
      } finally {
        backend?.dispose?.();
      }
      for (const p of r.processes) {
        if (p.skipped) {
          skipped++;
          reasons.add(p.skipped.reason);
          if (/exited|zombie|empty/.test(p.skipped.message)) zombies++;
        }
      }
      const got = survivors.map((pid) => {
        const p = r.processes.find((x) => x.pid === pid) as ProcessResult;
        eq(p.skipped, null, `scan ${i}: survivor ${pid} skipped`);
        const m = p.mappings.find((x) => x.start === addr)!;
        return {
          present: m.pages_present,
          zero: m.pages_zero,
          dup: m.pages_duplicate,
          shared: m.pages_shared_already,
          save: m.saveable_pages,
        };
      });
      eq(got, EXPECTED, `scan ${i}`);
    }
  } finally {
    await server.stop();
    for (const w of workers) await w.stop();
  }
  // The churn really happened under the scans, and only as "gone".
  ok(skipped > 0, "no process vanished mid-scan: the test did not test");
  eq([...reasons], ["ESRCH"]);
  console.log(`${skipped} skips, ${zombies} of them zombies`);
}

if (import.meta.main) {
  // The guest test (t_29_scan_churn.sh): deno run -A THIS SCANS kernel
  await churn(Number(Deno.args[0] ?? 200), Deno.args[1] === "kernel");
} else {
  Deno.test("scan: 200 scans while a server's children exit, exec and linger as zombies", async () => {
    await churn(200, false);
  });
}
