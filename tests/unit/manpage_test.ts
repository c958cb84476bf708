/**
 * src/cli/manpage.ts: the man page and the bash completion name every
 * option of every subcommand, so they cannot drift from --help.
 */
import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import {
  bashCompletion,
  collectDocs,
  type Docs,
  manPage,
  optionChoices,
  parseCommandHelp,
  roffEscape,
} from "../../src/cli/manpage.ts";
import { COMMANDS, OPTIONS as MAIN } from "../../src/cli/main.ts";
import { SELECTOR_OPTIONS } from "../../src/cli/args.ts";
import { OPTIONS as MERGE } from "../../src/cli/merge.ts";
import { OPTIONS as UNMERGE } from "../../src/cli/unmerge.ts";
import { OPTIONS as SCAN } from "../../src/cli/scan.ts";
import { OPTIONS as STATUS } from "../../src/cli/status.ts";
import type { DocumentedOptions } from "../../src/cli/options.ts";
import { VERSION } from "../../src/version.ts";

const docs: Docs = collectDocs();
const man = manPage(docs, new Date(Date.UTC(2026, 0, 2)));
const completion = bashCompletion(docs);

/** Every option each command parses (the selectors, then its own). */
const PARSED: Record<string, DocumentedOptions> = {
  scan: { ...SELECTOR_OPTIONS, ...SCAN },
  merge: { ...SELECTOR_OPTIONS, ...MERGE },
  unmerge: { ...SELECTOR_OPTIONS, ...UNMERGE },
  status: STATUS,
};

/** The man page's section for one command: from its .SS to the next. */
function manSection(name: string): string {
  const start = man.indexOf(`.SS "mergemem ${name} `);
  ok(start >= 0, `no .SS for ${name}`);
  const next = man.indexOf("\n.S", start + 1);
  return man.slice(start, next < 0 ? undefined : next);
}

/** The completion's case arm for one command. */
function completionArm(name: string): string {
  const start = completion.indexOf(`\n\t${name})\n`);
  ok(start >= 0, `no completion arm for ${name}`);
  const end = completion.indexOf("\n\t\t;;", start);
  return completion.slice(start, end);
}

Deno.test("the docs cover every command of the dispatcher", () => {
  assertEquals(
    docs.commands.map((c) => c.name),
    Object.keys(COMMANDS),
  );
  assertEquals(Object.keys(PARSED).sort(), Object.keys(COMMANDS).sort());
  for (const c of docs.commands) {
    ok(c.description.length > 0, `${c.name} has no description`);
    ok(man.includes(roffEscape(c.summary)), `${c.name}'s summary`);
    ok(man.includes(`.SS "${roffEscape(c.usage)}"`), `${c.name}'s usage`);
  }
});

Deno.test("the selector options go with the commands that parse them", () => {
  for (const c of docs.commands) {
    assertEquals(
      c.selectors,
      Object.keys(PARSED[c.name]).includes("comm"),
      c.name,
    );
  }
});

for (const [cmd, options] of Object.entries(PARSED)) {
  Deno.test(`man page and completion: every option of ${cmd}`, () => {
    const doc = docs.commands.find((c) => c.name === cmd);
    ok(doc);
    const section = manSection(cmd);
    const arm = completionArm(cmd);
    const words = new Set(
      /compgen -W "([^"$]*)" -- "\$cur"\)\)\n\t\t;;/.exec(completion.slice(
        completion.indexOf(arm),
      ))?.[1].split(" "),
    );
    for (const [name, o] of Object.entries(options)) {
      const roff = `\\fB\\-\\-${roffEscape(name)}\\fR`;
      // The command's own options are in its section, the selectors in
      // the PROCESS SELECTION section it points to.
      const where = name in SELECTOR_OPTIONS && cmd !== "status"
        ? man.slice(man.indexOf('.SH "PROCESS SELECTION"'))
        : section;
      ok(where.includes(roff), `man: ${cmd} --${name}`);
      if (o.short) {
        ok(
          where.includes(`\\fB\\-${o.short}\\fR, ${roff}`),
          `man: -${o.short}`,
        );
      }
      for (const line of o.help.split("\n")) {
        ok(where.includes(roffEscape(line.trim())), `man: ${name}: ${line}`);
      }
      ok(words.has(`--${name}`), `completion: ${cmd} --${name}`);
      if (o.short) ok(words.has(`-${o.short}`), `completion: -${o.short}`);
      if (o.type === "string") {
        ok(arm.includes(`\t--${name}`), `completion: value of --${name}`);
      }
      const choices = optionChoices(o);
      if (choices.length) {
        const line = arm.split("\n").find((l) => l.includes(`\t--${name})`));
        const offered = /compgen -W "([^"]*)"/.exec(line ?? "")?.[1];
        assertEquals(offered?.split(" "), choices, `completion: ${name}`);
      }
    }
    // Nothing completed that the command does not parse.
    for (const w of words) {
      const name = w.replace(/^--?/, "");
      ok(
        name in options ||
          Object.values(options).some((o) => o.short === name),
        `completion offers ${w}, which ${cmd} does not parse`,
      );
    }
  });
}

Deno.test("man page and completion: the options before a command", () => {
  const opts = man.slice(
    man.indexOf(".SH OPTIONS"),
    man.indexOf(".SH COMMANDS"),
  );
  for (
    const [name, o] of Object.entries(MAIN) as [string, { short?: string }][]
  ) {
    ok(opts.includes(`\\fB\\-\\-${name}\\fR`), `man: --${name}`);
    ok(completion.includes(`--${name}`), `completion: --${name}`);
    if (o.short) {
      ok(completion.includes(` -${o.short}`), `completion: -${o.short}`);
    }
  }
  for (const c of Object.keys(COMMANDS)) {
    ok(new RegExp(`compgen -W "(\\S+ )*${c}[ "]`).test(completion), c);
  }
});

Deno.test("the man page header carries the version and the date", () => {
  ok(man.includes(`.TH MERGEMEM 8 "2026-01-02" "mergemem ${VERSION}"`));
  ok(man.includes(".SH NAME\nmergemem \\- "));
});

Deno.test("roff: no text line starts with a control character", () => {
  for (const line of man.split("\n")) {
    if (line.startsWith(".") || line.startsWith("'")) {
      ok(/^\.(\\"|[A-Z]{1,2}\b|nf|fi|br)/.test(line), `stray control: ${line}`);
    }
    ok(
      !/(^|[^\\])-/.test(line.replace(/^\.(\\"|TH ).*/, "")),
      `bare hyphen: ${line}`,
    );
  }
});

Deno.test("optionChoices: from 'a|b|c' and from 'word: ...' lines", () => {
  assertEquals(
    optionChoices({ type: "string", help: "auto|user|kernel: how" }),
    ["auto", "user", "kernel"],
  );
  assertEquals(
    optionChoices({
      type: "string",
      help: "hash: all (default);\nequalv: some",
    }),
    ["hash", "equalv"],
  );
  assertEquals(
    optionChoices({ type: "string", help: "rows (default 10)" }),
    [],
  );
  assertEquals(optionChoices({ type: "boolean", help: "a|b: x" }), []);
});

Deno.test("parseCommandHelp refuses a help that lists other options", () => {
  const help = "Usage: mergemem x [options]\n\nDoes x.\n\nOptions:\n  --y  z\n";
  let threw = false;
  try {
    parseCommandHelp("x", "x", help, { z: { type: "boolean", help: "z" } });
  } catch {
    threw = true;
  }
  ok(threw);
});

Deno.test("the completion is valid bash", async () => {
  const r = await new Deno.Command("bash", {
    args: ["-n"],
    stdin: "piped",
    stderr: "piped",
  }).spawn();
  const w = r.stdin.getWriter();
  await w.write(new TextEncoder().encode(completion));
  await w.close();
  const out = await r.output();
  assertEquals(new TextDecoder().decode(out.stderr), "");
  assertEquals(out.code, 0);
});
