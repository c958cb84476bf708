/** src/cli/args.ts: selectors and option values, input → output. */
import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
import {
  noSelector,
  parseChoice,
  parseIntOption,
  parseSecondsOption,
  parseSelectors,
  parseStrict,
  SELECTOR_OPTIONS,
  type SelectorArgs,
} from "../../src/cli/args.ts";
import { ExitCode, MergememError } from "../../src/errors.ts";

const usage = (re: RegExp) => (e: unknown) =>
  e instanceof MergememError && e.exitCode === ExitCode.Usage &&
  re.test(e.message);

const none: SelectorArgs = {
  comms: [],
  pids: [],
  users: [],
  all: false,
  cgroups: [],
  units: [],
};
const selectors: {
  argv: string[];
  want?: Partial<SelectorArgs>;
  error?: RegExp;
}[] = [
  { argv: [], want: {} },
  { argv: ["--pid", "12,13", "--pid", "14"], want: { pids: [12, 13, 14] } },
  {
    argv: ["--user", "33", "--user", "www-data"],
    want: { users: [33, "www-data"] },
  },
  {
    argv: ["--comm", "apache2", "--all"],
    want: { comms: ["apache2"], all: true },
  },
  {
    argv: ["--cgroup", "system.slice/a.service", "--unit", "php8.2-fpm"],
    want: { cgroups: ["system.slice/a.service"], units: ["php8.2-fpm"] },
  },
  { argv: ["--pid", "0"], error: /--pid: '0' is not a process id/ },
  { argv: ["--pid", "12,x"], error: /--pid: 'x'/ },
  {
    argv: ["--comm", "a-name-longer-than-15"],
    error: /--comm: .* cannot match/,
  },
  { argv: ["--unit", "a b"], error: /--unit: 'a b' is not a unit name/ },
  { argv: ["--bogus"], error: /bogus/ },
];
for (const c of selectors) {
  Deno.test(`parseSelectors(${c.argv.join(" ") || "nothing"})`, () => {
    const run = () =>
      parseSelectors(parseStrict(c.argv, SELECTOR_OPTIONS).values);
    if (c.error) return void throws(run, usage(c.error));
    const got = run();
    assertEquals(got, { ...none, ...c.want });
    assertEquals(noSelector(got), c.argv.length === 0);
  });
}

Deno.test("parseIntOption, parseSecondsOption, parseChoice", () => {
  assertEquals(parseIntOption("top", undefined, 10), 10);
  assertEquals(parseIntOption("top", "3", 10, 1, 5), 3);
  throws(
    () => parseIntOption("top", "9", 10, 1, 5),
    usage(/out of range 1\.\.5/),
  );
  throws(() => parseIntOption("top", "-1", 10), usage(/whole number/));
  assertEquals(parseSecondsOption("timeout", "0.5", 60), 0.5);
  throws(() => parseSecondsOption("timeout", "0", 60), usage(/seconds > 0/));
  assertEquals(
    parseChoice("engine", undefined, ["auto", "ptrace"], "auto"),
    "auto",
  );
  throws(
    () => parseChoice("engine", "kernel", ["auto", "ptrace"], "auto"),
    usage(/'kernel' is not one of auto, ptrace/),
  );
});
