/**
 * Exact counts under transparent huge pages (issue 7, "exact counts under
 * THP"): a worker whose 2 huge pages are fork-shared and partly rewritten
 * by the child (scan_thp_worker.c). The figures follow docs/accounting.md,
 * frame by frame: a huge page's small pages are distinct frames, shared by
 * parent and child until one of them writes. The same test runs in the VMs
 * (tests/vm/guest/t_26_scan_thp.sh) with THP=always and the kernel
 * back-end. Run as root.
 */
import { deepStrictEqual as eq, ok } from "node:assert/strict";
import { createKernelBackend } from "../../src/kmod/backend.ts";
import { readEntries } from "../../src/pages/pagemap.ts";
import { pfnOf } from "../../src/pages/pagemap.ts";
import { systemPageSize } from "../../src/pages/pagesize.ts";
import { scan } from "../../src/scan/mod.ts";
import { compileC } from "../helpers/gcc.ts";
import type { HashBackend, ProcessResult } from "../../src/scan/mod.ts";

/** Pages rewritten by the child (from page 200 of the first huge page). */
const W = 76;

interface ThpWorker {
  addr: string;
  parent: number;
  child: number;
  hugeKb: number;
  stop(): Promise<void>;
}

async function startThpWorker(): Promise<ThpWorker> {
  const bin = compileC(new URL("./scan_thp_worker.c", import.meta.url));
  const proc = new Deno.Command(bin, {
    args: [String(W)],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const reader = proc.stdout.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("THP worker exited before READY");
    text += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  const m = /^READY ([0-9a-f]+) (\d+) (-?\d+)/.exec(text)!;
  const writer = proc.stdin.getWriter();
  return {
    addr: "0x" + m[1],
    parent: proc.pid,
    child: Number(m[2]),
    hugeKb: Number(m[3]),
    async stop() {
      await writer.close().catch(() => {});
      await proc.stdout.cancel().catch(() => {});
      await proc.status;
    },
  };
}

/** The figures docs/accounting.md gives for the region (parent, child). */
function expected(ps: number) {
  const per = (2 << 20) / ps; // small pages per huge page
  const present = 2 * per, zero = per / 2, dup = per / 4;
  const shared = present - W;
  return [
    // D: per/4 pages on as many frames, one content: per/4 - 1 saveable;
    // the zero-filled half of B likewise: per/2 - 1. All kept frames and
    // all saveable ones are the parent's (it comes first).
    { present, zero, dup, shared, save: dup - 1 + zero - 1 },
    // The child's frames are its W rewritten pages, of unique content.
    { present, zero, dup, shared, save: 0 },
  ];
}

/** The region's PFNs in each process (pagemap; 0 when not present). */
function pfnsOf(pids: number[], addr: string, pages: number): number[][] {
  const ps = systemPageSize();
  return pids.map((pid) => {
    const f = Deno.openSync(`/proc/${pid}/pagemap`);
    const buf = new Uint32Array(2 * pages);
    eq(readEntries(f, Number(BigInt(addr)) / ps, pages, buf), pages);
    f.close();
    const out: number[] = [];
    for (let i = 0; i < pages; i++) out.push(pfnOf(buf[2 * i], buf[2 * i + 1]));
    return out;
  });
}

/** pages_shared_already of the region by PFN, counted independently. */
function sharedByPfn(lists: number[][]): number[] {
  const seen = new Map<number, number>();
  for (const l of lists) for (const p of l) seen.set(p, (seen.get(p) ?? 0) + 1);
  return lists.map((l) => l.filter((p) => p !== 0 && seen.get(p)! > 1).length);
}

/** AnonHugePages (kB) of each process. */
function hugeKb(pids: number[]): number[] {
  return pids.map((pid) =>
    Number(
      /AnonHugePages:\s+(\d+)/.exec(
        Deno.readTextFileSync(`/proc/${pid}/smaps_rollup`),
      )![1],
    )
  );
}

async function scanRegion(
  w: ThpWorker,
  backend?: HashBackend,
  checksum?: string,
) {
  const pids = [w.parent, w.child];
  const r = await scan({ selection: { pids }, backend, checksum });
  return pids.map((pid) => {
    const p = r.processes.find((x) => x.pid === pid) as ProcessResult;
    eq(p.skipped, null);
    const m = p.mappings.find((x) => x.start === w.addr)!;
    return {
      present: m.pages_present,
      zero: m.pages_zero,
      dup: m.pages_duplicate,
      shared: m.pages_shared_already,
      save: m.saveable_pages,
    };
  });
}

/** Runs the THP checks with each back-end that is available here. */
export async function checkThp(backends: string[]): Promise<void> {
  const w = await startThpWorker();
  try {
    // The worker asked for huge pages: a kernel that gives none (THP
    // "never", or no memory to spare) would not test anything.
    ok(w.hugeKb >= 4096, `no huge pages: AnonHugePages ${w.hugeKb} kB`);
    const ps = systemPageSize();
    const want = expected(ps);
    const pages = (4 << 20) / ps;
    const pids = [w.parent, w.child];
    const pfns = pfnsOf(pids, w.addr, pages);
    const huge = hugeKb(pids);
    eq(sharedByPfn(pfns), want.map((x) => x.shared), "pagemap");
    for (const b of backends) {
      for (const cs of b === "kernel" ? ["xxh64"] : ["fast", "xxh64"]) {
        const backend = b === "kernel" ? createKernelBackend() : undefined;
        try {
          eq(await scanRegion(w, backend, cs), want, `${b} ${cs}`);
        } finally {
          backend?.dispose?.();
        }
        // Reading did not disturb the targets: no page was copied (a pin
        // of a fork-shared THP page unshares it), no huge page was split.
        eq(pfnsOf(pids, w.addr, pages), pfns, `PFNs after ${b} ${cs}`);
        eq(hugeKb(pids), huge, `AnonHugePages after ${b} ${cs}`);
      }
    }
  } finally {
    await w.stop();
  }
}

if (import.meta.main) {
  // The guest test (t_26_scan_thp.sh): deno run -A THIS user kernel
  await checkThp(Deno.args);
  console.log("THP counts exact:", Deno.args.join(" "));
} else {
  Deno.test("scan: exact counts over fork-shared, partly written huge pages", async () => {
    await checkThp(["user"]);
  });
}
