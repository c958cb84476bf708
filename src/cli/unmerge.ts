/**
 * `mergemem unmerge`: break the merges in the selected processes.
 *
 * @module
 */
import { unmerge } from "../merge/unmerge.ts";
import {
  parseChoice,
  parseSelectors,
  parseStrict,
  SELECTOR_HELP,
  SELECTOR_OPTIONS,
} from "./args.ts";
import { formatBytes, renderTable } from "./format.ts";
import { selectPids } from "./select_common.ts";
import {
  LOCK_TIMEOUT_HELP,
  LOCK_TIMEOUT_OPTION,
  lockOptions,
} from "./lock_option.ts";

/** One-line summary for --help. */
export const summary =
  "unmark the selected processes' mappings and unshare their merged pages";

const HELP = `Usage: mergemem unmerge [selection] [options]

Unmarks every mergeable mapping of the selected processes; each merged page
becomes private again, which needs memory. mergemem refuses when
MemAvailable could not hold those pages plus a reserve (64 MiB or 2% of
RAM), unless --force.

${SELECTOR_HELP}

Options:
  --force     unmerge even when memory looks insufficient
  --engine E  auto|module|ptrace: how mappings are unmarked (default auto:
              the module if loaded, else ptrace)
${LOCK_TIMEOUT_HELP}
  --json      print the mergemem.unmerge/1 report as JSON
  -h, --help  this help

Examples:
  sudo mergemem unmerge --comm httpd
  sudo mergemem unmerge --pid 1234 --force --json

Exit codes: 0 ok, 2 usage, 3 nothing matched, 4 permission denied for
all, 6 no module (--engine module), 9 refused
(not enough MemAvailable; --force overrides), 10 failed (ENOMEM, EINTR),
11 another mergemem run held the lock past --lock-timeout.
`;

/** Runs `mergemem unmerge`. */
export async function run(args: string[]): Promise<number> {
  const { values } = parseStrict(args, {
    ...SELECTOR_OPTIONS,
    force: { type: "boolean" },
    engine: { type: "string" },
    ...LOCK_TIMEOUT_OPTION,
    json: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const { pids, warnings } = selectPids("unmerge", parseSelectors(values));
  const engine = parseChoice(
    "engine",
    values.engine,
    ["auto", "module", "ptrace"] as const,
    "auto",
  );
  const r = await unmerge({
    pids,
    force: values.force,
    engine,
    ...lockOptions(values["lock-timeout"]),
  });
  r.warnings.unshift(...warnings);
  console.error(`mergemem: engine: ${r.engine}`);
  for (const w of r.warnings) console.error(`mergemem: warning: ${w}`);
  for (const p of r.processes) {
    if (p.error) console.error(`mergemem: warning: pid ${p.pid}: ${p.error}`);
  }
  if (values.json) console.log(JSON.stringify(r, null, 2));
  else {
    const rows = [[
      "PID",
      "COMM",
      "VMAS",
      "UNMARKED",
      "MERGING BEFORE",
      "MERGING AFTER",
    ]];
    for (const p of r.processes) {
      rows.push([
        String(p.pid),
        p.comm,
        String(p.vmas_unmarked),
        formatBytes(p.bytes_unmarked),
        String(p.merging_pages_before),
        String(p.merging_pages_after),
      ]);
    }
    console.log(
      renderTable(rows, ["right", "left", "right", "right", "right", "right"]),
    );
  }
  return 0;
}
