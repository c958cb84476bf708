/**
 * Documented options: each subcommand declares its options once, with
 * their help text, and both the parser (node:util parseArgs, which ignores
 * the extra fields) and `--help` are made from that one declaration, so
 * they cannot drift apart.
 *
 * @module
 */

/** One option: parseArgs' fields plus its help. */
export interface DocumentedOption {
  /** parseArgs type. */
  type: "string" | "boolean";
  /** A one-letter alias. */
  short?: string;
  /** Repeatable. */
  multiple?: boolean;
  /** The value's name in the help ("N", "PATH"); strings only. */
  arg?: string;
  /**
   * The value may be left out (`--name` alone). parseArgs has no such
   * options: takeOptionalValues() (args.ts) takes them out first. The help
   * shows the value in brackets.
   */
  optionalValue?: boolean;
  /** The help text; may span lines (wrapped by hand). */
  help: string;
}

/** A subcommand's options, keyed by long name. */
export type DocumentedOptions = Record<string, DocumentedOption>;

/** The column where option help starts. */
const HELP_COLUMN = 20;

/**
 * The help lines of `options`, aligned: "  --name ARG   text", with
 * continuation lines indented to the text column.
 */
export function optionHelp(options: DocumentedOptions): string {
  const lines: string[] = [];
  for (const [name, o] of Object.entries(options)) {
    const short = o.short ? `-${o.short}, ` : "";
    const arg = o.arg ? (o.optionalValue ? ` [${o.arg}]` : ` ${o.arg}`) : "";
    const head = `  ${short}--${name}${arg}`;
    const text = o.help.split("\n");
    if (head.length + 2 > HELP_COLUMN) {
      lines.push(head);
      for (const t of text) lines.push(" ".repeat(HELP_COLUMN) + t);
    } else {
      lines.push(head.padEnd(HELP_COLUMN) + text[0]);
      for (const t of text.slice(1)) lines.push(" ".repeat(HELP_COLUMN) + t);
    }
  }
  return lines.join("\n");
}

/** The -h/--help option every subcommand has. */
export const HELP_OPTION = {
  help: { type: "boolean", short: "h", help: "this help" },
} as const satisfies DocumentedOptions;

/** The --json option of the commands that print a report. */
export function jsonOption(schema: string) {
  return {
    json: {
      type: "boolean",
      help: `print the ${schema} report as JSON\n(schema: docs/json-schema.md)`,
    },
  } as const satisfies DocumentedOptions;
}

/** --engine of merge and unmerge. */
export const ENGINE_OPTION = {
  engine: {
    type: "string",
    arg: "E",
    help: "auto|module|ptrace: how mappings are marked (default\n" +
      "auto: the module if loaded, else ptrace)",
  },
} as const satisfies DocumentedOptions;
