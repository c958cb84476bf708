/** src/cli/progress.ts: when the line appears, what it says, clearing. */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { createProgress, progressLine } from "../../src/cli/progress.ts";

const plain = (n: number) => String(n);
const lines: [number, number, string, string][] = [
  [0, 100, "scan", "[------------------------------]   0% 0/100 scan"],
  [50, 100, "", "[###############---------------]  50% 50/100 "],
  [150, 100, "x", "[##############################] 100% 150/100 x"],
  [5, 0, "", "[------------------------------]   0% 5/0 "],
];
for (const [done, total, label, want] of lines) {
  Deno.test(`progressLine(${done}, ${total})`, () => {
    assertEquals(progressLine(done, total, label, plain), want);
  });
}

Deno.test("progress: quiet for the first second, then at most every 100 ms", () => {
  let t = 0;
  const out: string[] = [];
  const p = createProgress({
    unit: "pages",
    pageSize: 4096,
    enabled: true,
    now: () => t,
    write: (s) => out.push(s),
  });
  p.update(1, 4);
  t = 999;
  p.update(2, 4);
  assertEquals(out, []);
  t = 1000;
  p.update(2, 4, "scan");
  t = 1050;
  p.update(3, 4, "scan");
  t = 1100;
  p.update(4, 4, "ksmd");
  p.done();
  assertEquals(out, [
    "\r\x1b[K[###############---------------]  50% 8.00 KiB/16.0 KiB scan",
    "\r\x1b[K[##############################] 100% 16.0 KiB/16.0 KiB ksmd",
    "\r\x1b[K",
  ]);
});

Deno.test("progress: disabled writes nothing, done() clears only a drawn line", () => {
  const out: string[] = [];
  const off = createProgress({
    unit: "items",
    enabled: false,
    now: () => 5000,
    write: (s) => out.push(s),
  });
  off.update(1, 2);
  off.done();
  const quick = createProgress({
    unit: "items",
    enabled: true,
    now: () => 0,
    write: (s) => out.push(s),
  });
  quick.update(1, 2);
  quick.done();
  assertEquals(out, []);
});
