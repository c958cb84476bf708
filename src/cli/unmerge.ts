/**
 * `mergemem unmerge`: break the merges in the selected processes.
 *
 * @module
 */
import { unmerge, UNMERGE_SCHEMA } from "../merge/unmerge.ts";
import { ExitCode, exitCodesHelp } from "./exit_codes.ts";
import {
  parseChoice,
  parseSelectors,
  parseStrict,
  SELECTOR_HELP,
  SELECTOR_OPTIONS,
} from "./args.ts";
import { markedProcessTable } from "./format.ts";
import { selectPids } from "./select_common.ts";
import { LOCK_TIMEOUT_OPTION, lockOptions } from "./lock_option.ts";
import {
  type DocumentedOptions,
  ENGINE_OPTION,
  HELP_OPTION,
  jsonOption,
  optionHelp,
} from "./options.ts";

/** One-line summary for --help. */
export const summary =
  "unmark the selected processes' mappings and unshare their merged pages";

/** unmerge's own options, declared once for parsing and --help. */
export const OPTIONS = {
  force: {
    type: "boolean",
    help: "unmerge even when memory looks insufficient",
  },
  ...ENGINE_OPTION,
  ...LOCK_TIMEOUT_OPTION,
  ...jsonOption(UNMERGE_SCHEMA),
  ...HELP_OPTION,
} as const satisfies DocumentedOptions;

/** The whole `--help` text (also the source of mergemem(8)). */
export const HELP = `Usage: mergemem unmerge [selection] [options]

Unmarks every mergeable mapping of the selected processes; each merged page
becomes private again, which needs memory. mergemem refuses when
MemAvailable could not hold those pages plus a reserve (64 MiB or 2% of
RAM), unless --force.

${SELECTOR_HELP}

Options:
${optionHelp(OPTIONS)}

Examples:
  sudo mergemem unmerge --comm httpd
  sudo mergemem unmerge --pid 1234 --force --json

${
  exitCodesHelp([
    ExitCode.Ok,
    ExitCode.Usage,
    ExitCode.NothingScannable,
    ExitCode.AllDenied,
    [ExitCode.NoModule, "--engine module"],
    [ExitCode.ModuleMismatch, "--engine module"],
    [ExitCode.Refused, "not enough MemAvailable; --force overrides"],
    [ExitCode.Failed, "ENOMEM"],
    [ExitCode.LockBusy, "--lock-timeout"],
    [ExitCode.Interrupted, "EINTR, SIGINT or SIGTERM"],
  ])
}
`;

/** Runs `mergemem unmerge`. */
export async function run(args: string[]): Promise<number> {
  const { values } = parseStrict(args, { ...SELECTOR_OPTIONS, ...OPTIONS });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const sel = parseSelectors(values);
  const engine = parseChoice(
    "engine",
    values.engine,
    ["auto", "module", "ptrace"] as const,
    "auto",
  );
  const lock = lockOptions(values["lock-timeout"]);
  // Options first: a bad flag is a usage error whatever the selection finds.
  const { pids, warnings } = selectPids("unmerge", sel);
  const r = await unmerge({ pids, force: values.force, engine, ...lock });
  r.warnings.unshift(...warnings);
  console.error(`mergemem: engine: ${r.engine}`);
  for (const w of r.warnings) console.error(`mergemem: warning: ${w}`);
  for (const p of r.processes) {
    if (p.error) console.error(`mergemem: warning: pid ${p.pid}: ${p.error}`);
  }
  if (values.json) console.log(JSON.stringify(r, null, 2));
  else {
    console.log(markedProcessTable(
      r.processes.map((p) => ({
        pid: p.pid,
        comm: p.comm,
        vmas: p.vmas_unmarked,
        bytes: p.bytes_unmarked,
        before: p.merging_pages_before,
        after: p.merging_pages_after,
        holdMs: p.hold_ms_max,
      })),
      "UNMARKED",
    ));
  }
  return 0;
}
