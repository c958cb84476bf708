/** src/cli/format.ts: sizes and the merge/unmerge process table. */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { formatBytes, markedProcessTable } from "../../src/cli/format.ts";

const sizes: [number, string][] = [
  [0, "0 B"],
  [1023, "1023 B"],
  [1024, "1.00 KiB"],
  [1536, "1.50 KiB"],
  [10 * 1024, "10.0 KiB"],
  [1048575, "1.00 MiB"],
  [1048576, "1.00 MiB"],
  [1024 ** 3 - 1, "1.00 GiB"],
  [5 * 1024 ** 4, "5.00 TiB"],
  [2 ** 60, "1048576 TiB"],
  [-2048, "-2.00 KiB"],
  [NaN, "-"],
  [Infinity, "-"],
];
for (const [n, want] of sizes) {
  Deno.test(`formatBytes(${n}) = ${want}`, () => {
    assertEquals(formatBytes(n), want);
  });
}

Deno.test("markedProcessTable: a HOLD column only for the ptrace engine", () => {
  const row = {
    pid: 12,
    comm: "php-fpm8.2",
    vmas: 2,
    bytes: 8192,
    before: 0,
    after: 3,
    holdMs: null,
  };
  assertEquals(
    markedProcessTable([row], "MARKED").split("\n"),
    [
      "PID  COMM        VMAS    MARKED  MERGING BEFORE  MERGING AFTER",
      " 12  php-fpm8.2     2  8.00 KiB               0              3",
    ],
  );
  assertEquals(
    markedProcessTable([{ ...row, holdMs: 1.25 }], "UNMARKED").split("\n")[1]
      .trimEnd().endsWith("1.3 ms"),
    true,
  );
});
