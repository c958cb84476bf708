/** src/cli/options.ts: help made from the option declarations. */
import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { optionHelp } from "../../src/cli/options.ts";
import { OPTIONS as MERGE } from "../../src/cli/merge.ts";
import { OPTIONS as UNMERGE } from "../../src/cli/unmerge.ts";
import { OPTIONS as SCAN } from "../../src/cli/scan.ts";
import { OPTIONS as STATUS } from "../../src/cli/status.ts";
import { SELECTOR_OPTIONS } from "../../src/cli/args.ts";
import { COMMANDS, OPTIONS as MAIN } from "../../src/cli/main.ts";

const cases: {
  name: string;
  options: Parameters<typeof optionHelp>[0];
  want: string;
}[] = [
  {
    name: "a boolean and a string with its value name",
    options: {
      force: { type: "boolean", help: "do it" },
      top: { type: "string", arg: "N", help: "rows" },
    },
    want: "  --force           do it\n  --top N           rows",
  },
  {
    name: "a short alias and continuation lines",
    options: { help: { type: "boolean", short: "h", help: "this\nhelp" } },
    want: "  -h, --help        this\n                    help",
  },
  {
    name: "a head too long for the column goes on its own line",
    options: { "lock-timeout-long": { type: "string", arg: "S", help: "x" } },
    want: "  --lock-timeout-long S\n                    x",
  },
];
for (const c of cases) {
  Deno.test(`optionHelp: ${c.name}`, () => {
    assertEquals(optionHelp(c.options), c.want);
  });
}

async function helpOf(cmd: string): Promise<string> {
  const main = new URL("../../main.ts", import.meta.url).pathname;
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", main, cmd, "--help"],
    stdout: "piped",
  }).output();
  return new TextDecoder().decode(r.stdout);
}

/** Every option each command parses (the selectors, then its own). */
const PARSED = {
  scan: { ...SELECTOR_OPTIONS, ...SCAN },
  merge: { ...SELECTOR_OPTIONS, ...MERGE },
  unmerge: { ...SELECTOR_OPTIONS, ...UNMERGE },
  status: STATUS,
};

Deno.test("PARSED covers every command of the dispatcher", () => {
  assertEquals(Object.keys(PARSED).sort(), Object.keys(COMMANDS).sort());
});

for (const [cmd, opts] of Object.entries(PARSED)) {
  Deno.test(`${cmd} --help lists exactly the options it parses`, async () => {
    const help = await helpOf(cmd);
    const names = Object.keys(opts);
    for (const name of names) {
      ok(
        new RegExp(`^  (-\\w, )?--${name}\\b`, "m").test(help),
        `${cmd} --help has no line for --${name}`,
      );
    }
    // Nothing the parser would reject, in the option list or in the prose.
    for (const [flag] of help.matchAll(/(?<![\w-])--[a-z][a-z0-9-]*/g)) {
      ok(names.includes(flag.slice(2)), `${cmd} --help names ${flag}`);
    }
    ok(/\nExamples:\n/.test(help), `${cmd} --help has examples`);
    ok(/\nExit codes: 0 ok/.test(help), `${cmd} --help has exit codes`);
  });
}

Deno.test("mergemem --help lists every command and its own options", async () => {
  const main = new URL("../../main.ts", import.meta.url).pathname;
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", main, "--help"],
    stdout: "piped",
  }).output();
  const help = new TextDecoder().decode(r.stdout);
  for (const cmd of Object.keys(COMMANDS)) {
    ok(new RegExp(`^  ${cmd} `, "m").test(help), `no line for ${cmd}`);
  }
  for (const [name, o] of Object.entries(MAIN)) {
    ok(help.includes(`  -${o.short}, --${name} `), `no line for --${name}`);
  }
  // Any other flag it names belongs to some command.
  const known = new Set(
    [MAIN, ...Object.values(PARSED)].flatMap((o) => Object.keys(o)),
  );
  for (const [flag] of help.matchAll(/(?<![\w-])--[a-z][a-z0-9-]*/g)) {
    ok(known.has(flag.slice(2)), `mergemem --help names ${flag}`);
  }
  ok(/\nExamples:\n/.test(help) && /\nExit codes: 0 ok/.test(help));
});
