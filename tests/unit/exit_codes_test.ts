/**
 * src/cli/exit_codes.ts is the one place the exit codes are written:
 * README.md's table says the same, and every --help's "Exit codes:" line
 * is made from it.
 */
import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import {
  EXIT_CODE_DOCS,
  ExitCode,
  exitCodesHelp,
} from "../../src/cli/exit_codes.ts";
import { COMMANDS, usage } from "../../src/cli/main.ts";

/** The rows of README.md's "Exit codes" table: [code, meaning]. */
function readmeTable(): [number, string][] {
  const readme = Deno.readTextFileSync(
    new URL("../../README.md", import.meta.url),
  );
  const start = readme.indexOf("\n## Exit codes\n");
  ok(start >= 0, "README.md has an 'Exit codes' section");
  const end = readme.indexOf("\n## ", start + 1);
  const rows: [number, string][] = [];
  for (const line of readme.slice(start, end).split("\n")) {
    const m = /^\|\s*(\d+)\s*\|\s*(.*?)\s*\|$/.exec(line);
    if (m) rows.push([Number(m[1]), m[2]]);
  }
  return rows;
}

Deno.test("README.md's exit code table is src/cli/exit_codes.ts's", () => {
  assertEquals(
    readmeTable(),
    Object.entries(ExitCode).map(([name, code]) => [
      code,
      EXIT_CODE_DOCS[name as keyof typeof ExitCode].meaning,
    ]),
  );
});

/** The "Exit codes:" paragraph of a help text, its lines. */
function exitCodeLines(help: string): string[] {
  const m = /\n(Exit codes: [\s\S]*?)(\n\n|\nSee |\n?$)/.exec(help);
  ok(m, "the help has an 'Exit codes:' paragraph");
  return m[1].split("\n");
}

/** The "Exit codes:" paragraph of a help text, as one line. */
function exitCodesOf(help: string): string {
  return exitCodeLines(help).join(" ").slice("Exit codes: ".length);
}

Deno.test("every --help's exit codes are made from exit_codes.ts", () => {
  const helps: [string, string][] = [
    ["mergemem", usage()],
    ...Object.entries(COMMANDS).map(([n, c]): [string, string] => [n, c.HELP]),
  ];
  const shorts = new Map(
    Object.entries(ExitCode).map(([name, code]) => [
      code,
      EXIT_CODE_DOCS[name as keyof typeof ExitCode].short,
    ]),
  );
  for (const [name, help] of helps) {
    const codes = [...exitCodesOf(help).matchAll(/(?:^|, )(\d+) ([^,(.]+)/g)];
    ok(codes.length > 0, name);
    for (const [, code, short] of codes) {
      assertEquals(short.trim(), shorts.get(Number(code) as never), name);
    }
    const nums = codes.map((c) => Number(c[1]));
    assertEquals(nums, [...nums].sort((a, b) => a - b), `${name}: in order`);
    for (const l of exitCodeLines(help)) ok(l.length <= 76, `${name}: ${l}`);
  }
  // The main help lists every code.
  assertEquals(
    [...exitCodesOf(usage()).matchAll(/(?:^|, )(\d+) /g)].map((m) =>
      Number(m[1])
    ),
    Object.values(ExitCode),
  );
});

Deno.test("exitCodesHelp: short meanings, notes, wrapped at 76 columns", () => {
  assertEquals(
    exitCodesHelp([ExitCode.Ok, [ExitCode.Failed, "ENOMEM"]]),
    "Exit codes: 0 ok, 10 failed (ENOMEM).",
  );
  const long = exitCodesHelp(
    Object.values(ExitCode).map((c) => [c, "a note of some length"]),
  );
  for (const l of long.split("\n")) ok(l.length <= 76, l);
  // A code is never parted from its short meaning.
  for (const l of long.split("\n")) {
    ok(!/(^|\s)\d+$/.test(l), `a line ends in a bare code: ${l}`);
  }
});
