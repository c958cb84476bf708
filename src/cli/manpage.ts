/**
 * The manual page mergemem(8) and the bash completion, made from the same
 * declarations as `--help`: the dispatcher's COMMANDS and OPTIONS, each
 * subcommand's OPTIONS, the selector options, and each command's help text
 * (its description, notes, examples and exit codes). collectDocs() gathers
 * them; manPage() and bashCompletion() are pure functions of the result.
 * scripts/gen-manpage.ts writes both files at package build time and
 * tests/unit/manpage_test.ts keeps them complete.
 *
 * @module
 */
import { COMMANDS, OPTIONS as MAIN_OPTIONS, usage } from "./main.ts";
import { SELECTOR_HELP, SELECTOR_OPTIONS } from "./args.ts";
import { type DocumentedOptions, optionHelp } from "./options.ts";
import { VERSION } from "../version.ts";

/** What one subcommand documents. */
export interface CommandDoc {
  name: string;
  summary: string;
  /** "mergemem scan [selection] [options]" */
  usage: string;
  /** Paragraphs (lines as in the help) before the option lists. */
  description: string[][];
  /** The command takes the process selection options. */
  selectors: boolean;
  /** Paragraphs right after the selection list (e.g. its default). */
  notes: string[][];
  /** Paragraphs after the options, examples and exit codes. */
  trailer: string[][];
  /** Its own options (without the selectors). */
  options: DocumentedOptions;
  /** Example command lines, with their comment if any. */
  examples: string[];
  /** The "Exit codes:" paragraph's lines, without the label. */
  exitCodes: string[];
}

/** Everything the man page and the completion are made from. */
export interface Docs {
  version: string;
  /** The one-line description in the main help. */
  tagline: string;
  globalOptions: DocumentedOptions;
  selectorOptions: DocumentedOptions;
  /** The heading line of the selection list in the help. */
  selectorTitle: string;
  commands: CommandDoc[];
  examples: string[];
  exitCodes: string[];
}

/** Splits help text into paragraphs (arrays of lines) at blank lines. */
function paragraphs(text: string): string[][] {
  const paras: string[][] = [];
  let cur: string[] = [];
  for (const line of text.split("\n")) {
    if (line.trim() === "") {
      if (cur.length) paras.push(cur);
      cur = [];
    } else cur.push(line);
  }
  if (cur.length) paras.push(cur);
  return paras;
}

/** The "Label: rest" paragraph's lines: the rest of the first line, then the others. */
function labelled(para: string[], label: string): string[] {
  const first = para[0].slice(label.length).trim();
  return [...(first ? [first] : []), ...para.slice(1)];
}

/** Example lines "  cmd   comment" to "cmd   comment", trimmed. */
function exampleLines(para: string[]): string[] {
  return para.slice(1).map((l) => l.trim()).filter((l) => l !== "");
}

/**
 * Parses one subcommand's `--help` output, checking that its option list
 * is exactly what the declarations give (so the man page cannot say
 * something else than --help).
 */
export function parseCommandHelp(
  name: string,
  summary: string,
  help: string,
  options: DocumentedOptions,
): CommandDoc {
  const paras = paragraphs(help);
  const usageLine = paras.shift()?.[0] ?? "";
  if (!usageLine.startsWith("Usage: ")) {
    throw new Error(`${name} --help does not start with "Usage: "`);
  }
  const doc: CommandDoc = {
    name,
    summary,
    usage: usageLine.slice("Usage: ".length).trim(),
    description: [],
    selectors: false,
    notes: [],
    trailer: [],
    options,
    examples: [],
    exitCodes: [],
  };
  const selectorLines = SELECTOR_HELP.split("\n");
  let seenLists = false;
  let seenOptions = false;
  for (const p of paras) {
    const text = p.join("\n");
    if (text.startsWith(SELECTOR_HELP)) {
      doc.selectors = true;
      seenLists = true;
      const rest = p.slice(selectorLines.length);
      if (rest.length) doc.notes.push(rest);
    } else if (p[0] === "Options:") {
      seenLists = seenOptions = true;
      if (p.slice(1).join("\n") !== optionHelp(options)) {
        throw new Error(
          `${name} --help lists other options than its declaration`,
        );
      }
    } else if (p[0] === "Examples:") {
      doc.examples = exampleLines(p);
    } else if (p[0].startsWith("Exit codes:")) {
      doc.exitCodes = labelled(p, "Exit codes:");
    } else if (seenOptions) {
      doc.trailer.push(p);
    } else if (seenLists) {
      doc.notes.push(p);
    } else {
      doc.description.push(p);
    }
  }
  return doc;
}

/** Gathers the documentation of every command from the CLI itself. */
export function collectDocs(): Docs {
  const mainHelp = usage();
  const mainParas = paragraphs(mainHelp);
  const tagline = mainParas[0][0].replace(/^mergemem [^:]*: /, "");
  const commands: CommandDoc[] = [];
  for (const [name, cmd] of Object.entries(COMMANDS)) {
    commands.push(parseCommandHelp(name, cmd.summary, cmd.HELP, cmd.OPTIONS));
  }
  const ex = mainParas.find((p) => p[0] === "Examples:");
  const codes = mainParas.find((p) => p[0].startsWith("Exit codes:"));
  return {
    version: VERSION,
    tagline,
    globalOptions: MAIN_OPTIONS,
    selectorOptions: SELECTOR_OPTIONS,
    selectorTitle: SELECTOR_HELP.split("\n")[0].replace(/\s*[(:].*$/, ""),
    commands,
    examples: ex ? exampleLines(ex) : [],
    exitCodes: codes ? labelled(codes, "Exit codes:") : [],
  };
}

// ---------------------------------------------------------------- roff

/** Escapes text for roff: backslashes, hyphens (as minus signs: the
 * options must copy and paste), and a leading control character. */
export function roffEscape(s: string): string {
  return s.replace(/\\/g, "\\e").replace(/-/g, "\\-");
}

/** One input line of running text: never starting with "." or "'". */
function roffLine(s: string): string {
  const e = roffEscape(s.trim());
  return /^[.']/.test(e) ? `\\&${e}` : e;
}

/** The option's heading: "\fB\-h\fR, \fB\-\-help\fR \fIARG\fR". */
function optionHead(name: string, o: DocumentedOptions[string]): string {
  const short = o.short ? `\\fB\\-${roffEscape(o.short)}\\fR, ` : "";
  const arg = o.arg
    ? o.optionalValue
      ? ` [\\fI${roffEscape(o.arg)}\\fR]`
      : ` \\fI${roffEscape(o.arg)}\\fR`
    : "";
  const rep = o.multiple ? " ..." : "";
  return `${short}\\fB\\-\\-${roffEscape(name)}\\fR${arg}${rep}`;
}

function roffOptions(options: DocumentedOptions): string[] {
  const out: string[] = [];
  for (const [name, o] of Object.entries(options)) {
    out.push(".TP", optionHead(name, o));
    for (const l of o.help.split("\n")) out.push(roffLine(l));
  }
  return out;
}

function roffParagraphs(paras: string[][]): string[] {
  const out: string[] = [];
  for (const p of paras) {
    out.push(".PP");
    for (const l of p) out.push(roffLine(l));
  }
  return out;
}

/** Example lines, unfilled and indented. */
function roffExamples(lines: string[]): string[] {
  if (lines.length === 0) return [];
  return [
    ".PP",
    ".RS 4",
    ".nf",
    ...lines.map((l) => `\\&${roffEscape(l)}`),
    ".fi",
    ".RE",
  ];
}

/** The synopsis of a command: "mergemem scan [selection] [options]". */
function roffSynopsis(usage: string): string[] {
  const [prog, cmd, ...rest] = usage.split(/\s+/);
  return [
    `.B ${roffEscape(prog)} ${roffEscape(cmd ?? "")}`,
    ...rest.map((w) => {
      const m = /^\[(.*)\]$/.exec(w);
      return m ? `.RI [ ${roffEscape(m[1])} ]` : `.I ${roffEscape(w)}`;
    }),
    ".br",
  ];
}

/** Formats a date as YYYY\-MM\-DD (UTC). */
function isoDate(date: Date): string {
  return date.toISOString().slice(0, 10);
}

/** mergemem(8) in roff (man(7) macros). */
export function manPage(docs: Docs, date: Date): string {
  const out: string[] = [
    `.\\" mergemem(8): generated by scripts/gen-manpage.ts from the CLI's`,
    `.\\" option declarations and help texts (src/cli/); do not edit.`,
    `.TH MERGEMEM 8 "${isoDate(date)}" "mergemem ${
      roffEscape(docs.version)
    }" "System Administration"`,
    ".SH NAME",
    `mergemem \\- ${roffEscape(docs.tagline)}`,
    ".SH SYNOPSIS",
  ];
  for (const c of docs.commands) out.push(...roffSynopsis(c.usage));
  out.push(
    ".B mergemem",
    `.RB [ \\-h | \\-\\-help | \\-V | \\-\\-version ]`,
    ".SH DESCRIPTION",
    roffLine(
      "mergemem reads the present pages of running processes, finds pages with identical content and reports what " +
        "the kernel's same-page merging (KSM) could save; it then marks the " +
        "chosen memory mergeable, through the /dev/mergemem kernel module " +
        "when it is loaded, else with a ptrace engine, and drives ksmd in a " +
        "short burst.",
    ),
    ".PP",
    "The commands:",
  );
  for (const c of docs.commands) {
    out.push(".TP", `\\fB${roffEscape(c.name)}\\fR`, roffLine(c.summary));
  }
  out.push(".SH OPTIONS", ...roffOptions(docs.globalOptions));
  out.push(".SH COMMANDS");
  for (const c of docs.commands) {
    out.push(`.SS "${roffEscape(c.usage)}"`);
    out.push(...roffParagraphs(c.description));
    if (c.selectors) {
      out.push(
        ".PP",
        roffLine(
          `Takes the process selection options (see ${docs.selectorTitle.toUpperCase()} below).`,
        ),
      );
    }
    out.push(...roffParagraphs(c.notes));
    out.push(".PP", "Options:", ...roffOptions(c.options));
    if (c.examples.length) {
      out.push(".PP", "Examples:", ...roffExamples(c.examples));
    }
    if (c.exitCodes.length) {
      out.push(".PP", "Exit codes:");
      for (const l of c.exitCodes) out.push(roffLine(l));
    }
    out.push(...roffParagraphs(c.trailer));
  }
  out.push(
    `.SH "${roffEscape(docs.selectorTitle.toUpperCase())}"`,
    roffLine(
      `${
        docs.commands.filter((c) => c.selectors).map((c) => c.name).join(", ")
      } select processes with these options; combine them freely: a ` +
        "process matching any is selected.",
    ),
    ...roffOptions(docs.selectorOptions),
    ".SH EXIT STATUS",
  );
  for (const l of docs.exitCodes) out.push(roffLine(l));
  out.push(
    ".SH FILES",
    ".TP",
    "\\fI/etc/mergemem.conf\\fR",
    roffLine(
      "MERGEMEM_ARGS: the selection and options mergemem.service passes " +
        "to mergemem merge (the service and mergemem.timer are installed " +
        "disabled).",
    ),
    ".TP",
    "\\fI/dev/mergemem\\fR",
    roffLine(
      "the kernel module's device (package mergemem-dkms); without it, " +
        "merge and unmerge use the ptrace engine.",
    ),
    ".TP",
    "\\fI/run/mergemem/\\fR",
    roffLine(
      "the lock held while ksmd's settings are changed, and the journal " +
        "that restores them after a killed run.",
    ),
    ".TP",
    "\\fI/sys/kernel/mm/ksm/\\fR",
    "ksmd's settings and counters.",
    ".SH EXAMPLES",
    ...roffExamples(docs.examples).slice(1),
    ".SH SEE ALSO",
    ".BR madvise (2),",
    ".BR dkms (8),",
    ".BR systemd.timer (5)",
    ".PP",
    roffLine("/usr/share/doc/mergemem/README.md"),
    "",
  );
  return out.join("\n");
}

// ---------------------------------------------------- bash completion

/**
 * The values an option takes, when its help names them: a first line
 * "a|b|c: ..." or "a|b|c (default ...)", or lines "word: ..." (two or more).
 */
export function optionChoices(o: DocumentedOptions[string]): string[] {
  if (o.type !== "string") return [];
  const lines = o.help.split("\n");
  const bar = /^([a-z0-9][\w-]*(?:\|[a-z0-9][\w-]*)+)(?=[:\s]|$)/.exec(
    lines[0],
  );
  if (bar) return bar[1].split("|");
  const words = lines.map((l) => /^([a-z][\w-]*): /.exec(l)?.[1])
    .filter((w): w is string => w !== undefined);
  return words.length >= 2 ? words : [];
}

/** How the completion fills in the value of an option without choices. */
const VALUE_COMPLETERS: Record<string, string> = {
  pid:
    `COMPREPLY=($(compgen -W "$(cd /proc 2>/dev/null && printf '%s ' [0-9]*)" -- "$cur"))`,
  comm:
    `COMPREPLY=($(compgen -W "$(cat /proc/[0-9]*/comm 2>/dev/null | sort -u)" -- "$cur"))`,
  user: `COMPREPLY=($(compgen -u -- "$cur"))`,
  unit:
    `COMPREPLY=($(compgen -W "$(systemctl list-units --type=service --no-legend --plain 2>/dev/null | sed 's/\\.service .*//')" -- "$cur"))`,
  cgroup:
    `COMPREPLY=($(cd /sys/fs/cgroup 2>/dev/null && compgen -d -- "$cur"))`,
  prometheus: `COMPREPLY=($(compgen -f -- "$cur"))`,
};

/** "--name" and "-x" words of some options. */
function optionWords(options: DocumentedOptions): string[] {
  const words: string[] = [];
  for (const [name, o] of Object.entries(options)) {
    words.push(`--${name}`);
    if (o.short) words.push(`-${o.short}`);
  }
  return words;
}

/** The case arms completing option values. */
function valueArms(options: DocumentedOptions): string[] {
  const arms: string[] = [];
  for (const [name, o] of Object.entries(options)) {
    if (o.type !== "string") continue;
    const pats = [`--${name}`, ...(o.short ? [`-${o.short}`] : [])].join("|");
    const choices = optionChoices(o);
    const body = choices.length
      ? `COMPREPLY=($(compgen -W "${choices.join(" ")}" -- "$cur"))`
      : VALUE_COMPLETERS[name] ?? "COMPREPLY=()";
    // An optional value may be left out: offer the options too.
    if (o.optionalValue) {
      arms.push(`\t\t${pats}) ${body}; [[ $cur == -* ]] || return 0 ;;`);
    } else {
      arms.push(`\t\t${pats}) ${body}; return 0 ;;`);
    }
  }
  return arms;
}

/** A bash completion script for mergemem. */
export function bashCompletion(docs: Docs): string {
  const names = docs.commands.map((c) => c.name);
  const cmdArms: string[] = [];
  for (const c of docs.commands) {
    const opts = c.selectors
      ? { ...docs.selectorOptions, ...c.options }
      : c.options;
    cmdArms.push(
      `\t${c.name})`,
      `\t\tcase $prev in`,
      ...valueArms(opts).map((a) => `\t${a}`),
      `\t\tesac`,
      `\t\tCOMPREPLY=($(compgen -W "${
        optionWords(opts).join(" ")
      }" -- "$cur"))`,
      `\t\t;;`,
    );
  }
  return `# bash completion for mergemem(8), version ${docs.version}.
# Generated by scripts/gen-manpage.ts from the CLI's option declarations
# (src/cli/); do not edit.
# shellcheck shell=bash disable=SC2207
_mergemem() {
	local cur=\${COMP_WORDS[COMP_CWORD]} prev=\${COMP_WORDS[COMP_CWORD-1]}
	local cmd='' i
	for ((i = 1; i < COMP_CWORD; i++)); do
		case \${COMP_WORDS[i]} in
		-*) ;;
		*) cmd=\${COMP_WORDS[i]}; break ;;
		esac
	done
	case $cmd in
	"")
		if [[ $cur == -* ]]; then
			COMPREPLY=($(compgen -W "${
    optionWords(docs.globalOptions).join(" ")
  }" -- "$cur"))
		else
			COMPREPLY=($(compgen -W "${names.join(" ")} help" -- "$cur"))
		fi
		;;
	help)
		[[ $COMP_CWORD -eq $((i + 1)) ]] &&
			COMPREPLY=($(compgen -W "${names.join(" ")}" -- "$cur"))
		;;
${cmdArms.join("\n")}
	esac
	return 0
}
complete -F _mergemem mergemem
`;
}
