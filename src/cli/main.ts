/**
 * The CLI dispatcher: picks the subcommand, turns errors into one-line
 * messages and documented exit codes. Each subcommand lives in its own file
 * and is a thin layer over the library.
 *
 * @module
 */
import { ErrorKind, ErrorReason, MergememError, messageOf } from "../errors.ts";
import {
  ExitCode,
  type ExitCodeEntry,
  exitCodeOf,
  exitCodesHelp,
} from "./exit_codes.ts";
import { hintLine } from "./hints.ts";
import { VERSION } from "../version.ts";
import { styles } from "./format.ts";
import { type DocumentedOptions, optionHelp } from "./options.ts";
import * as mergeCmd from "./merge.ts";
import * as scanCmd from "./scan.ts";
import * as statusCmd from "./status.ts";
import * as unmergeCmd from "./unmerge.ts";

/** A subcommand: a one-line summary and a runner returning the exit code. */
export interface Command {
  summary: string;
  /** Its own options, declared once for parsing and `--help`. */
  OPTIONS: DocumentedOptions;
  /** Its whole `--help` text. */
  HELP: string;
  run(args: string[]): Promise<number>;
}

/** Every subcommand, in the order `--help` lists them. */
export const COMMANDS: Record<string, Command> = {
  scan: scanCmd,
  merge: mergeCmd,
  unmerge: unmergeCmd,
  status: statusCmd,
};

/** The options before a command, declared once for the dispatcher and --help. */
export const OPTIONS = {
  help: {
    type: "boolean",
    short: "h",
    help: "show this help (also: mergemem <command> --help)",
  },
  version: { type: "boolean", short: "V", help: "show the version" },
} as const satisfies DocumentedOptions;

/** True when `arg` is the option `name`, long or short. */
function isOption(arg: string | undefined, name: keyof typeof OPTIONS) {
  return arg === `--${name}` || arg === `-${OPTIONS[name].short}`;
}

/** The dispatcher's `--help` text (also the source of mergemem(8)). */
export function usage(): string {
  const names = Object.keys(COMMANDS);
  const width = Math.max(...names.map((n) => n.length));
  const list = names.map((n) => `  ${n.padEnd(width)}  ${COMMANDS[n].summary}`)
    .join("\n");
  return `mergemem ${VERSION}: find identical memory pages across processes and merge them with KSM

Usage: mergemem <command> [options]

Commands:
${list}

Options:
${optionHelp(OPTIONS)}

Examples:
  sudo mergemem scan                      where is my RAM duplicated?
  sudo mergemem scan --comm httpd         what merging httpd workers would save
  sudo mergemem merge --comm httpd        merge them now
  mergemem status                         what is merged now

${
    exitCodesHelp(
      Object.values(ExitCode).map((c): ExitCodeEntry =>
        c === ExitCode.Partial ? [c, "--strict"] : c
      ),
    )
  }
See README.md for details.
`;
}

/** Writes a user-facing error to stderr: one line, plus its hint if any. */
function reportError(err: MergememError): void {
  const s = styles(Deno.stderr.isTerminal() && !Deno.env.get("NO_COLOR"));
  console.error(`${s.red("mergemem: error:")} ${err.message}`);
  const hint = hintLine(err);
  if (hint) console.error(hint);
}

/** Runs the CLI with the given arguments and returns the exit code. */
export async function main(args: string[]): Promise<number> {
  const [first, ...rest] = args;
  try {
    if (first === undefined || isOption(first, "help")) {
      console.log(usage());
      return first === undefined ? ExitCode.Usage : ExitCode.Ok;
    }
    if (isOption(first, "version")) {
      console.log(`mergemem ${VERSION}`);
      return ExitCode.Ok;
    }
    if (first === "help") {
      const cmd = rest[0] && COMMANDS[rest[0]];
      return cmd ? await cmd.run(["--help"]) : (console.log(usage()), 0);
    }
    const cmd = COMMANDS[first];
    if (!cmd) {
      throw new MergememError(
        `unknown command '${first}'`,
        ErrorKind.Usage,
        { reason: ErrorReason.UnknownCommand, commands: Object.keys(COMMANDS) },
      );
    }
    return await cmd.run(rest);
  } catch (err) {
    if (err instanceof MergememError) {
      reportError(err);
      return exitCodeOf(err.kind);
    }
    if (err instanceof Deno.errors.BrokenPipe) return ExitCode.Ok;
    const msg = messageOf(err);
    console.error(`mergemem: internal error: ${msg}`);
    if (Deno.env.get("MERGEMEM_DEBUG") && err instanceof Error) {
      console.error(err.stack);
    } else {
      console.error(hintLine(err));
    }
    return ExitCode.Internal;
  }
}
