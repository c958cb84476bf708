/** Pure parts of merge/unmerge: maps parsing, trust domains, meminfo. */
import {
  deepStrictEqual as assertEquals,
  ok as assert,
  throws,
} from "node:assert/strict";
import { isCandidate, parseMaps } from "../../src/merge/plan.ts";
import { checkTrustDomain } from "../../src/merge/trust.ts";
import { parseMeminfo, reserveBytes } from "../../src/merge/unmerge.ts";
import { ExitCode, MergememError } from "../../src/errors.ts";

Deno.test("parseMaps and isCandidate", () => {
  const maps = parseMaps(
    `55d0c0000000-55d0c0021000 rw-p 00000000 00:00 0          [heap]
7f0000000000-7f0000400000 rw-p 00000000 00:00 0
7f0000400000-7f0000500000 rw-s 00000000 00:05 1234                      /dev/shm/x
7f0000500000-7f0000600000 r--p 00000000 08:01 99                        /usr/lib/libc.so.6
7f0000600000-7f0000601000 rw-p 00100000 08:01 99                        /usr/lib/libc.so.6
7ffd00000000-7ffd00002000 r-xp 00000000 00:00 0                          [vdso]
ffffffffff600000-ffffffffff601000 --xp 00000000 00:00 0                  [vsyscall]
`,
  );
  assertEquals(maps.length, 7);
  assertEquals(maps[0].path, "[heap]");
  assertEquals(maps[1].end - maps[1].start, 0x400000n);
  assertEquals(maps[6].start, 0xffffffffff600000n);
  assertEquals(maps.map(isCandidate), [
    true,
    true,
    false,
    false,
    true,
    false,
    false,
  ]);
});

Deno.test("one uid passes, two uids are refused without crossUser", () => {
  assertEquals(checkTrustDomain(new Map([[1, 33], [2, 33]]), false), {
    uids: [33],
    warnings: [],
  });
  throws(
    () => checkTrustDomain(new Map([[1, 33], [2, 0]]), false),
    (e: unknown) =>
      e instanceof MergememError && e.exitCode === ExitCode.Refused &&
      /2 uids/.test(e.message),
  );
  const r = checkTrustDomain(new Map([[1, 33], [2, 0]]), true);
  assertEquals(r.uids, [0, 33]);
  assert(r.warnings[0].includes("side channel"));
});

Deno.test("parseMeminfo and the unmerge reserve", () => {
  const m = parseMeminfo(
    "MemTotal:       24000000 kB\nMemFree: 1 kB\nMemAvailable:   1000 kB\n",
  );
  assertEquals(m, { total: 24000000 * 1024, available: 1000 * 1024 });
  assertEquals(reserveBytes(1 << 30), 64 << 20);
  assertEquals(reserveBytes(100 * 2 ** 30), Math.floor(100 * 2 ** 30 * 0.02));
});
