/**
 * The THP record (src/ksm/thp_record.ts) and how unmerge turns it into
 * restore actions (withThpRestore in src/merge/unmerge.ts).
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import {
  addThpVmas,
  pruneThpRecords,
  readThpRecord,
  removeThpVmas,
  thpRecordPath,
} from "../../src/ksm/thp_record.ts";
import { withThpRestore } from "../../src/merge/unmerge.ts";
import { parseSmaps } from "../../src/pages/maps.ts";

function withRunDir(fn: (runDir: string) => void): void {
  const runDir = Deno.makeTempDirSync({ prefix: "mergemem-thp-" });
  try {
    fn(runDir);
  } finally {
    Deno.removeSync(runDir, { recursive: true });
  }
}

Deno.test("thp record: add, merge by start, remove, file gone when empty", () => {
  withRunDir((runDir) => {
    const pid = Deno.pid;
    addThpVmas(pid, [{ start: "0x1000", end: "0x3000", had_hugepage: false }], {
      runDir,
    });
    addThpVmas(pid, [
      { start: "0x1000", end: "0x3000", had_hugepage: true },
      { start: "0x9000", end: "0xa000", had_hugepage: false },
    ], { runDir });
    const r = readThpRecord(pid, { runDir })!;
    assertEquals(r.vmas, [
      { start: "0x1000", end: "0x3000", had_hugepage: true },
      { start: "0x9000", end: "0xa000", had_hugepage: false },
    ]);
    removeThpVmas(pid, ["0x1000"], { runDir });
    assertEquals(readThpRecord(pid, { runDir })!.vmas.length, 1);
    removeThpVmas(pid, ["0x9000"], { runDir });
    assertEquals(readThpRecord(pid, { runDir }), undefined);
    let exists = true;
    try {
      Deno.statSync(thpRecordPath(pid, runDir));
    } catch {
      exists = false;
    }
    assertEquals(exists, false);
  });
});

Deno.test("thp record: a reused pid (other start time) is not the owner; prune removes it", () => {
  withRunDir((runDir) => {
    const pid = Deno.pid;
    addThpVmas(pid, [{ start: "0x1000", end: "0x2000", had_hugepage: false }], {
      runDir,
    });
    const path = thpRecordPath(pid, runDir);
    const rec = JSON.parse(Deno.readTextFileSync(path));
    Deno.writeTextFileSync(path, JSON.stringify({ ...rec, start_time: "1" }));
    assertEquals(readThpRecord(pid, { runDir }), undefined);
    assertEquals(pruneThpRecords({ runDir }), 1);
    assertEquals(pruneThpRecords({ runDir }), 0);
  });
});

Deno.test("withThpRestore: matching VMAs restore, stale records still restore, others untouched", () => {
  const rec = {
    schema: "mergemem.thp/1" as const,
    pid: 1,
    start_time: "5",
    vmas: [
      { start: "0x1000", end: "0x3000", had_hugepage: false },
      { start: "0x5000", end: "0x6000", had_hugepage: true },
      { start: "0x8000", end: "0x9000", had_hugepage: false },
    ],
  };
  const out = withThpRestore([
    { start: 0x1000n, end: 0x3000n },
    { start: 0x5000n, end: 0x7000n }, // grew since: not the recorded VMA
    { start: 0xa000n, end: 0xb000n },
  ], rec);
  assertEquals(out, [
    { start: 0x1000n, end: 0x3000n, thp: "restore" },
    { start: 0x5000n, end: 0x7000n },
    { start: 0xa000n, end: 0xb000n },
    { start: 0x5000n, end: 0x6000n, thp: "restore-hugepage" },
    { start: 0x8000n, end: 0x9000n, thp: "restore" },
  ]);
  assertEquals(withThpRestore([{ start: 1n, end: 2n }], undefined), [
    { start: 1n, end: 2n },
  ]);
});

Deno.test("parseSmaps reads THPeligible (null without the line)", () => {
  const text = [
    "00400000-00600000 rw-p 00000000 00:00 0 ",
    "Rss:                 8 kB",
    "THPeligible:    1",
    "VmFlags: rd wr mr mw me ac",
    "7f0000000000-7f0000001000 rw-p 00000000 00:00 0 ",
    "THPeligible:    0",
    "VmFlags: rd wr mr mw me ac nh",
    "7f0000002000-7f0000003000 rw-p 00000000 00:00 0 ",
    "VmFlags: rd wr mr mw me ac",
    "",
  ].join("\n");
  assertEquals(parseSmaps(text).map((m) => m.thpEligible), [true, false, null]);
});
