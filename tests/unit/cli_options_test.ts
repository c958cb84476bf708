/** src/cli/options.ts: help made from the option declarations. */
import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { optionHelp } from "../../src/cli/options.ts";
import { OPTIONS as MERGE } from "../../src/cli/merge.ts";
import { OPTIONS as UNMERGE } from "../../src/cli/unmerge.ts";
import { SELECTOR_OPTIONS } from "../../src/cli/args.ts";

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

for (
  const [cmd, opts] of [["merge", MERGE], ["unmerge", UNMERGE]] as const
) {
  Deno.test(`${cmd} --help lists every option it parses`, async () => {
    const help = await helpOf(cmd);
    for (const name of Object.keys({ ...SELECTOR_OPTIONS, ...opts })) {
      ok(help.includes(`--${name}`), `${cmd} --help lacks --${name}`);
    }
  });
}
