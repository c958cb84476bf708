/**
 * `mergemem status`: the module, ksmd and per-process KSM savings.
 *
 * @module
 */
import { ErrorKind, MergememError, messageOf, usageError } from "../errors.ts";
import { ExitCode, exitCodesHelp } from "./exit_codes.ts";
import { formatPrometheus, writeAtomic } from "../status/prometheus.ts";
import { status, STATUS_SCHEMA, type StatusReport } from "../status/status.ts";
import { parseStrict, takeOptionalValues } from "./args.ts";
import { journalHintLine } from "./hints.ts";
import { formatBytes, renderTable, styles, useColor } from "./format.ts";
import {
  type DocumentedOptions,
  HELP_OPTION,
  jsonOption,
  optionHelp,
} from "./options.ts";

/** One-line summary for --help. */
export const summary = "show the module, ksmd settings and what is merged now";

/** status's options, declared once for parsing and --help. */
export const OPTIONS = {
  ...jsonOption(STATUS_SCHEMA),
  prometheus: {
    type: "string",
    arg: "PATH",
    optionalValue: true,
    help: "print Prometheus metrics, or write them atomically to\n" +
      "PATH (a file, or a directory: PATH/mergemem.prom) for\n" +
      "node_exporter's textfile collector (docs/metrics.md)",
  },
  ...HELP_OPTION,
} as const satisfies DocumentedOptions;

/** The whole `--help` text (also the source of mergemem(8)). */
export const HELP = `Usage: mergemem status [options]

Shows whether /dev/mergemem is loaded (and its API version), ksmd's
settings and counters, and merged pages and profit per process. When a
mergemem burst died (SIGKILL, OOM) leaving ksmd's settings changed, status
restores them from the journal in /run/mergemem and says so.

Options:
${optionHelp(OPTIONS)}

Examples:
  mergemem status
  mergemem status --json
  sudo mergemem status --prometheus /var/lib/prometheus/node-exporter

${
  exitCodesHelp([
    [ExitCode.Ok, "also without the module or KSM: status says so"],
    ExitCode.Usage,
    [ExitCode.Failed, "the metrics file could not be written"],
  ])
}
`;

/** What `mergemem status ARGS` asks for. */
export interface StatusArgs {
  help: boolean;
  json: boolean;
  /** null: no metrics; true: metrics on stdout; a string: the file or dir. */
  prometheus: string | true | null;
}

/** Parses status's argv (usage errors throw, exit 2). */
export function parseStatusArgs(args: string[]): StatusArgs {
  const { rest, optional } = takeOptionalValues(args, OPTIONS);
  const { values } = parseStrict(rest, OPTIONS);
  const r = {
    help: values.help ?? false,
    json: values.json ?? false,
    prometheus: optional.prometheus ?? null,
  };
  if (r.help) return r;
  if (r.prometheus === "") throw usageError("--prometheus=: PATH is empty");
  // With --json, stdout is one JSON document: the metrics need a PATH.
  if (r.json && r.prometheus === true) {
    throw usageError("--json with --prometheus needs a PATH for the metrics");
  }
  return r;
}

/** Runs `mergemem status`. */
export function run(args: string[]): Promise<number> {
  const a = parseStatusArgs(args);
  if (a.help) {
    console.log(HELP);
    return Promise.resolve(ExitCode.Ok);
  }
  const r = status();
  for (const w of r.warnings) console.error(`mergemem: warning: ${w}`);
  const hint = journalHintLine(r.journal);
  if (hint) console.error(hint);
  if (a.prometheus !== null) {
    const text = formatPrometheus(r);
    if (a.prometheus === true) console.log(text.trimEnd());
    else {
      try {
        const path = writeAtomic(a.prometheus, text);
        if (!a.json) console.error(`mergemem: wrote ${path}`);
      } catch (err) {
        throw new MergememError(
          `cannot write ${a.prometheus}: ${messageOf(err)}`,
          ErrorKind.Failed,
        );
      }
    }
  }
  if (a.json) console.log(JSON.stringify(r, null, 2));
  else if (a.prometheus === null) console.log(formatStatus(r));
  return Promise.resolve(ExitCode.Ok);
}

/** Human rendering of the status report. */
function formatStatus(r: StatusReport): string {
  const s = styles(useColor());
  const lines: string[] = [];
  lines.push(
    r.module.loaded
      ? `module: ${
        s.green("loaded")
      }, version ${r.module.version}, API ${r.module.api} (${
        r.module.features.join(", ")
      })`
      : `module: ${s.yellow("not usable")}: ${r.module.error}`,
  );
  if (!r.ksm.available) {
    lines.push(`ksm: ${s.red("not available")} (no CONFIG_KSM)`);
  } else {
    const k = r.ksm.settings, c = r.ksm.counters;
    lines.push(
      `ksmd: run=${k.run} pages_to_scan=${k.pages_to_scan} sleep_millisecs=${k.sleep_millisecs}` +
        (k.advisor_mode ? ` advisor_mode=${k.advisor_mode}` : ""),
    );
    lines.push(
      `ksm: pages_sharing=${c.pages_sharing} (${
        formatBytes((c.pages_sharing ?? 0) * r.page_size)
      } saved) ` +
        `pages_shared=${c.pages_shared} full_scans=${c.full_scans}` +
        (c.general_profit !== undefined
          ? ` general_profit=${formatBytes(c.general_profit)}`
          : ""),
    );
  }
  if (r.journal) {
    const j = r.journal;
    const text = `journal: ${j.state}: ${j.message}`;
    lines.push(j.state === "stale" ? s.red(text) : s.yellow(text));
  }
  if (r.processes.length === 0) {
    lines.push("no process has merged or mergeable memory");
  } else {
    const rows = [["PID", "COMM", "UID", "MERGING", "PROFIT", "RMAP ITEMS"]];
    for (const p of r.processes) {
      rows.push([
        String(p.pid),
        p.comm,
        String(p.uid ?? "-"),
        formatBytes(p.merging_pages * r.page_size),
        p.process_profit === null ? "-" : formatBytes(p.process_profit),
        p.rmap_items === null ? "-" : String(p.rmap_items),
      ]);
    }
    lines.push(
      "",
      renderTable(rows, ["right", "left", "right", "right", "right", "right"]),
    );
  }
  return lines.join("\n");
}
