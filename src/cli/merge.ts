/**
 * `mergemem merge`: mark the selected processes' duplicate-rich mappings
 * mergeable and run ksmd in a burst (src/merge/merge.ts).
 *
 * @module
 */
import { merge, type MergeReport } from "../merge/merge.ts";
import { DEFAULT_MIN_SAVING } from "../merge/plan.ts";
import {
  parseIntOption,
  parseSecondsOption,
  parseSelectors,
  parseStrict,
  SELECTOR_HELP,
  SELECTOR_OPTIONS,
} from "./args.ts";
import { formatBytes, renderTable, styles, useColor } from "./format.ts";
import { createProgress } from "./progress.ts";
import { selectPids } from "./select_common.ts";
import { usageError } from "../errors.ts";

/** One-line summary for --help. */
export const summary =
  "mark duplicate-rich mappings mergeable and let KSM merge them";

const HELP = `Usage: mergemem merge [selection] [options]

Scans the selected processes (hashing their pages through /dev/mergemem),
marks every mapping whose duplicate pages are worth it (whole mappings: KSM
cannot do less), runs ksmd in a short burst until the merged pages reach the
prediction or stop rising, then restores ksmd's settings exactly (also on
Ctrl-C). Needs the mergemem kernel module and root (or ptrace rights).

${SELECTOR_HELP}

Options:
  --min-saving N    mark a mapping only if it saves at least N pages net
                    (duplicates minus 1/64 of its pages for KSM's
                    bookkeeping; default ${DEFAULT_MIN_SAVING})
  --timeout S       stop waiting for ksmd after S seconds (default 60)
  --dry-run         plan and report, mark nothing
  --no-wait         mark, make sure ksmd runs (run=1), return at once
  --cross-user      allow a selection spanning several uids (dedup side
                    channels between them: only within one trust domain)
  --backend B       kernel|auto (merge always scans with the kernel
                    back-end; "user" is refused: marking needs the module)
  --json            print the mergemem.merge/1 report as JSON
  -h, --help        this help

Examples:
  sudo mergemem merge --comm httpd                  merge the httpd workers now
  sudo mergemem merge --user www-data --dry-run     what would be marked
  sudo mergemem merge --comm php-fpm8.2 --no-wait   from cron
  sudo mergemem merge --pid 1234,1240 --json

Exit codes: 0 ok, 2 usage, 3 nothing matched, 6 no module, 7 module
mismatch, 8 no KSM, 9 refused (several uids without --cross-user),
10 failed, 130 interrupted (ksmd settings restored first).
`;

/** Runs `mergemem merge`. */
export async function run(args: string[]): Promise<number> {
  const { values } = parseStrict(args, {
    ...SELECTOR_OPTIONS,
    "min-saving": { type: "string" },
    timeout: { type: "string" },
    "dry-run": { type: "boolean" },
    "no-wait": { type: "boolean" },
    "cross-user": { type: "boolean" },
    backend: { type: "string" },
    json: { type: "boolean" },
    help: { type: "boolean", short: "h" },
  });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  if (
    values.backend !== undefined && !["kernel", "auto"].includes(values.backend)
  ) {
    throw usageError(
      `--backend: merge needs the kernel module; '${values.backend}' is not kernel or auto`,
    );
  }
  if (values["dry-run"] && values["no-wait"]) {
    throw usageError("--dry-run and --no-wait exclude each other");
  }
  const sel = parseSelectors(values);
  const minSaving = parseIntOption(
    "min-saving",
    values["min-saving"],
    DEFAULT_MIN_SAVING,
    0,
  );
  const timeout = parseSecondsOption("timeout", values.timeout, 60);
  const { pids, warnings } = selectPids("merge", sel);
  const progress = createProgress({
    unit: "pages",
    enabled: !values.json && Deno.stderr.isTerminal(),
  });
  let report;
  try {
    report = await merge({
      pids,
      minSaving,
      timeoutSeconds: timeout,
      dryRun: values["dry-run"],
      noWait: values["no-wait"],
      crossUser: values["cross-user"],
      // Pages hashed, then pages merged; marking takes milliseconds.
      onProgress: (p) => {
        if (p.phase !== "mark") progress.update(p.done, p.total, p.phase);
      },
    });
  } finally {
    progress.done();
  }
  report.warnings.unshift(...warnings);
  for (const w of report.warnings) console.error(`mergemem: warning: ${w}`);
  if (values.json) console.log(JSON.stringify(report, null, 2));
  else console.log(formatMerge(report));
  return 0;
}

/** Human rendering of a merge report. */
export function formatMerge(r: MergeReport): string {
  const s = styles(useColor());
  const pct = r.predicted_saveable_pages
    ? ` (${
      (100 * r.achieved_pages / r.predicted_saveable_pages).toFixed(1)
    }% of prediction)`
    : "";
  const rows = [[
    "PID",
    "COMM",
    "VMAS",
    "MARKED",
    "MERGING BEFORE",
    "MERGING AFTER",
  ]];
  for (const p of r.processes) {
    rows.push([
      String(p.pid),
      p.comm,
      String(p.vmas_marked + p.vmas_already_mergeable),
      formatBytes(p.bytes_marked),
      String(p.merging_pages_before),
      String(p.merging_pages_after),
    ]);
  }
  const lines = [
    renderTable(rows, ["right", "left", "right", "right", "right", "right"]),
    "",
    `predicted saving: ${
      formatBytes(r.predicted_saveable_bytes)
    } (${r.predicted_saveable_pages} pages)`,
  ];
  if (r.dry_run) lines.push(s.yellow("dry run: nothing was marked"));
  else if (r.no_wait) {
    lines.push("marked; ksmd runs on (run=1) and merges in the background");
  } else {
    lines.push(
      `achieved: ${
        s.bold(formatBytes(r.achieved_bytes))
      } (${r.achieved_pages} pages)${pct} in ${
        r.seconds.toFixed(1)
      } s (ksmd: ${r.ksmd_end})`,
    );
    const b = r.ksm_settings_before, a = r.ksm_settings_after;
    lines.push(
      `ksmd settings restored: run=${a.run} pages_to_scan=${a.pages_to_scan} ` +
        `sleep_millisecs=${a.sleep_millisecs}` +
        (b.run === a.run && b.pages_to_scan === a.pages_to_scan &&
            b.sleep_millisecs === a.sleep_millisecs
          ? ""
          : s.red(" (NOT as before!)")),
    );
  }
  return lines.join("\n");
}
