/** tests/helpers/skip.ts: a skipped test's name says why. */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { skipIf } from "../helpers/skip.ts";

Deno.test("skipIf names the reasons that hold, and only when one does", () => {
  assertEquals(skipIf("t", { "not root": false, "no gcc": false }), {
    name: "t",
    ignore: false,
  });
  assertEquals(
    skipIf("t", { "not root": true, "no gcc": false, "no KSM": true }),
    { name: "t [skipped: not root, no KSM]", ignore: true },
  );
});
