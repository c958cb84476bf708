import { deepStrictEqual as eq } from "node:assert/strict";
import { parseMaps, parseSmaps } from "../../src/pages/maps.ts";

const dir = new URL("../fixtures/", import.meta.url);
const maps = Deno.readTextFileSync(new URL("maps.txt", dir));
const smaps = Deno.readTextFileSync(new URL("smaps.txt", dir));

Deno.test("maps: every line of a real file parses, as smaps does", () => {
  const a = parseMaps(maps);
  const b = parseSmaps(smaps);
  eq(a.length, maps.trim().split("\n").length);
  eq(a.length, b.length);
  eq(a.map((m) => m.startHex), b.map((m) => m.startHex));
});

Deno.test("maps: paths with spaces, (deleted), pseudo-names, no path", () => {
  const b = parseSmaps(smaps);
  const spaced = b.find((m) => m.path.endsWith("lib with spaces.so"))!;
  eq(spaced.path, "/tmp/mmfx/lib with spaces.so");
  eq(spaced.deleted, false);
  eq(spaced.kind, "shared");
  const gone = b.find((m) => m.path === "/tmp/mmfx/gone.bin")!;
  eq(gone.deleted, true);
  const zero = b.find((m) => m.path === "/dev/zero")!;
  eq([zero.deleted, zero.kind, zero.ksmEligible], [true, "shared", false]);
  eq(b.find((m) => m.path === "[heap]")!.kind, "heap");
  eq(b.find((m) => m.path === "[stack]")!.kind, "stack");
  const vdso = b.find((m) => m.path === "[vdso]")!;
  eq([vdso.kind, vdso.ksmEligible], ["special", false]);
  const anon = b.find((m) => m.path === "" && m.perms === "rw-p")!;
  eq([anon.kind, anon.ksmEligible], ["anon", true]);
  const text = b.find((m) => m.perms === "r-xp" && m.path.includes("python"))!;
  eq([text.kind, text.ksmEligible], ["file", true]);
  eq(text.vmFlags.includes("ex"), true);
  eq(typeof text.kb.Rss, "number");
});

Deno.test("maps: a VmFlag KSM refuses makes a private mapping ineligible", () => {
  const [m] = parseSmaps(
    "7f0000000000-7f0000001000 rw-p 00000000 00:00 0 \nRss:                   4 kB\nVmFlags: rd wr mr mw me io \n",
  );
  eq([m.kind, m.ksmEligible, m.kb.Rss], ["anon", false, 4]);
});
