/**
 * Processes that vanish during a scan (issue 7, "processes that vanish"):
 * a server whose children exit (or exec) at random moments and linger
 * unreaped as zombies for a while, as apache2's and php-fpm's do, scanned
 * 60 times (30 in the VMs) back to back together with workers of exactly known memory;
 * every scan also meets processes killed after it selected them.
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
import { type ChurnServer, startChurnServer } from "../helpers/churn.ts";
import { hasExited, waitUntil } from "../helpers/wait.ts";

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

/** Held children the server keeps: each scan kills those not yet read. */
const HELD = 2;

/**
 * At least `scans` back-to-back scans (with the kernel back-end when
 * `kernel`) of the workers and the churning server, and on until
 * `minVanished` selected processes were killed under a scan; throws on any
 * failure.
 *
 * The server's random churn makes processes exit, exec and linger as
 * zombies at whatever moments the machine's speed gives. That alone may
 * never hit the window between selection and reading (it did not on a
 * slower machine), so each scan also kills the server's held children that
 * it selected but has not read yet, from its progress callback, and waits
 * until they are zombies: the scan then meets a vanished process every
 * time, whatever the speed.
 */
export async function churn(
  scans: number,
  kernel: boolean,
  minVanished = 10,
): Promise<void> {
  const workers: Worker[] = [];
  for (let i = 0; i < 3; i++) workers.push(await startWorker(SPEC));
  workers.push(await startWorker({ ...SPEC, fork: true }));
  const survivors = [...workers.map((w) => w.pid), workers[3].child];
  const addr = workers[0].addr;
  const server = await startChurnServer(8, 1024, HELD);
  const comm = server.comm;
  let skipped = 0, zombies = 0, vanished = 0, i = 0;
  const reasons = new Set<string>();
  try {
    for (; i < scans || vanished < minVanished; i++) {
      if (i >= 4 * scans) {
        throw new Error(
          `after ${i} scans only ${vanished} of ${minVanished} killed ` +
            `processes were met by a scan: the server's held children ` +
            `were never selected and unread at a progress callback`,
        );
      }
      // Both held children run (the server replaces killed ones within
      // 250 ms), so that the selection finds them.
      await waitUntil(
        () => server.held().length >= HELD,
        "the churn server has started its held children",
      );
      // The server's children are found by comm, the workers by pid.
      const backend = kernel ? createKernelBackend() : undefined;
      const killed: number[] = [];
      let r;
      try {
        r = await scan({
          selection: { pids: survivors, comms: [comm] },
          backend,
          checksum: kernel || i % 2 ? "xxh64" : "fast",
          onProgress: async ({ pid }) => {
            if (killed.length > 0) return;
            // The scan reads processes in pid order: a larger pid is
            // still to come.
            for (const h of server.held()) {
              if (h > pid) killed.push(await killToZombie(server, h));
            }
          },
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
        if (killed.includes(p.pid)) {
          ok(p.skipped, `scan ${i}: ${p.pid} was killed before it was read`);
          vanished++;
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
  // Processes vanished under the scans, and only as "gone".
  ok(vanished >= minVanished);
  eq([...reasons], ["ESRCH"]);
  console.log(
    `${i} scans, ${skipped} skips (${vanished} killed under a scan), ` +
      `${zombies} of them zombies`,
  );
}

/**
 * Kills a held child of the server and waits until it is a zombie (its
 * memory gone), so that the scan that comes to it finds it vanished.
 */
async function killToZombie(server: ChurnServer, pid: number): Promise<number> {
  server.takeHeld(pid);
  Deno.kill(pid, "SIGKILL");
  await waitUntil(
    () => hasExited(pid),
    `held child ${pid} has exited after SIGKILL`,
  );
  return pid;
}

if (import.meta.main) {
  // The guest test (t_29_scan_churn.sh): deno run -A THIS SCANS kernel
  await churn(Number(Deno.args[0] ?? 60), Deno.args[1] === "kernel");
} else {
  Deno.test("scan: 60 scans while a server's children exit, exec and linger as zombies", async () => {
    await churn(60, false);
  });
}
