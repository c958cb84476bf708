/**
 * `mergemem merge`: mark the selected processes' duplicate-rich mappings
 * mergeable and run ksmd in a burst (src/merge/merge.ts).
 *
 * @module
 */
import { merge, MERGE_SCHEMA, type MergeReport } from "../merge/merge.ts";
import { DEFAULT_TRUST_LEVEL, TRUST_LEVELS } from "../merge/trust.ts";
import { DEFAULT_MIN_SAVING } from "../merge/plan.ts";
import { DEFAULT_BURST_TIMEOUT_SECONDS } from "../ksm/burst.ts";
import { ExitCode, exitCodesHelp } from "./exit_codes.ts";
import {
  parseChoice,
  parseIntOption,
  parseSecondsOption,
  parseSelectors,
  parseStrict,
  SELECTOR_HELP,
  SELECTOR_OPTIONS,
} from "./args.ts";
import { formatBytes, markedProcessTable, styles, useColor } from "./format.ts";
import { createProgress } from "./progress.ts";
import { selectPids } from "./select_common.ts";
import { usageError } from "../errors.ts";
import {
  type DocumentedOptions,
  ENGINE_OPTION,
  HELP_OPTION,
  jsonOption,
  optionHelp,
} from "./options.ts";
import { LOCK_TIMEOUT_OPTION, lockOptions } from "./lock_option.ts";
import { SKIPPED_BY_POLICY_NOTE } from "./hints.ts";

/** One-line summary for --help. */
export const summary =
  "mark duplicate-rich mappings mergeable and let KSM merge them";

/** merge's own options, declared once for parsing and --help. */
export const OPTIONS = {
  "min-saving": {
    type: "string",
    arg: "N",
    help: "mark a mapping only if it saves at least N pages net\n" +
      "(duplicates minus 1/64 of its pages for KSM's\n" +
      `bookkeeping; default ${DEFAULT_MIN_SAVING})`,
  },
  timeout: {
    type: "string",
    arg: "S",
    help:
      `stop waiting for ksmd after S seconds (default ${DEFAULT_BURST_TIMEOUT_SECONDS})`,
  },
  "dry-run": { type: "boolean", help: "plan and report, mark nothing" },
  "no-wait": {
    type: "boolean",
    help: "mark, make sure ksmd runs (run=1), return at once",
  },
  "cross-user": {
    type: "boolean",
    help: "one trust domain across the uids of a tenant (dedup\n" +
      "side channels between them: only if they trust each other)",
  },
  "trust-domain": {
    type: "string",
    arg: "LEVEL",
    help: `${TRUST_LEVELS.join("|")}: how wide a tenant is (default\n` +
      "namespace: a Kubernetes namespace, else a pod or compose\n" +
      "project, else a container, else the host; host: one\n" +
      "tenant, warned)",
  },
  ...ENGINE_OPTION,
  "whole-process": {
    type: "boolean",
    help: "ptrace engine: mark whole processes with\n" +
      "PR_SET_MEMORY_MERGE (6.4+; covers later mappings and\n" +
      "children too) instead of the chosen mappings",
  },
  "keep-thp": {
    type: "boolean",
    help: "leave the chosen mappings eligible for transparent huge\n" +
      "pages (by default they get MADV_NOHUGEPAGE, or khugepaged\n" +
      "collapses merged pages back into private huge pages)",
  },
  ...LOCK_TIMEOUT_OPTION,
  ...jsonOption(MERGE_SCHEMA),
  ...HELP_OPTION,
} as const satisfies DocumentedOptions;

/** The whole `--help` text (also the source of mergemem(8)). */
export const HELP = `Usage: mergemem merge [selection] [options]

Scans the selected processes, marks every mapping whose duplicate pages are
worth it (whole mappings: KSM cannot do less), runs ksmd in a short burst
until the selection's freed pages reach the prediction or stop rising, then
restores ksmd's settings exactly (also on Ctrl-C). Mappings the kernel would
give transparent huge pages are set MADV_NOHUGEPAGE first, so that khugepaged
does not undo the merges (unmerge gives them back). Marking uses the
/dev/mergemem module when it is loaded, else the ptrace engine (the target
itself calls madvise, as under a debugger). Needs root (or ptrace rights).

Merged pages leak through copy-on-write timing, so mergemem merges within
one trust domain: a tenant (a Kubernetes namespace, else a pod or compose
project, else a container, else the host) and, within it, one uid. KSM has
one stable tree per host and marks stay until unmerged, so while one domain
holds mergeable memory on the host (marked by any run, or by systemd's
MemoryKSM=, QEMU...) no other domain is marked: merge refuses (exit 9) and
names it. A selection by name, user, cgroup, unit or container spanning
domains (a root master and www-data workers) merges the domain already
holding KSM, else the one with the most saveable memory, and names the
others it skipped; explicit --pid lists spanning domains are refused
(exit 9). --cross-user and --trust-domain widen the domain.

${SELECTOR_HELP}

Options:
${optionHelp(OPTIONS)}

Examples:
  sudo mergemem merge --comm httpd                  merge the httpd workers now
  sudo mergemem merge --user www-data --dry-run     what would be marked
  sudo mergemem merge --comm php-fpm8.2 --no-wait   from cron
  sudo mergemem merge --pid 1234,1240 --json
  sudo mergemem merge --unit php8.2-fpm --engine ptrace
  sudo mergemem merge --k8s-namespace shop          the replicas of one namespace
  sudo mergemem merge --container php-customer-a    one podman or Docker container

${
  exitCodesHelp([
    ExitCode.Ok,
    ExitCode.Usage,
    ExitCode.NothingScannable,
    ExitCode.AllDenied,
    [ExitCode.NoModule, "--engine module"],
    ExitCode.ModuleMismatch,
    ExitCode.NoKsm,
    [
      ExitCode.Refused,
      "explicit pids of several trust domains, or another domain holds mergeable memory on the host",
    ],
    ExitCode.Failed,
    [ExitCode.LockBusy, "--lock-timeout"],
    [ExitCode.Interrupted, "ksmd settings restored first"],
  ])
}

One mergemem at a time changes ksmd's settings or marks memory (a lock on
/run/mergemem/lock). Settings left changed by a run that was killed are
restored by the next merge, unmerge or status, which says so.
`;

/** Runs `mergemem merge`. */
export async function run(args: string[]): Promise<number> {
  const { values } = parseStrict(args, { ...SELECTOR_OPTIONS, ...OPTIONS });
  if (values.help) {
    console.log(HELP);
    return 0;
  }
  const engine = parseChoice(
    "engine",
    values.engine,
    ["auto", "module", "ptrace"] as const,
    "auto",
  );
  if (values["whole-process"] && engine === "module") {
    throw usageError("--whole-process needs the ptrace engine");
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
  const timeout = parseSecondsOption(
    "timeout",
    values.timeout,
    DEFAULT_BURST_TIMEOUT_SECONDS,
  );
  const lock = lockOptions(values["lock-timeout"]);
  const trustLevel = parseChoice(
    "trust-domain",
    values["trust-domain"],
    TRUST_LEVELS,
    DEFAULT_TRUST_LEVEL,
  );
  // Options first: a bad flag is a usage error whatever the selection finds.
  const { pids, warnings, onlyPids } = selectPids("merge", sel);
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
      trustLevel,
      domainPolicy: onlyPids ? "refuse" : "largest",
      engine: values["whole-process"] && engine === "auto" ? "ptrace" : engine,
      wholeProcess: values["whole-process"],
      keepThp: values["keep-thp"],
      ...lock,
      // Pages hashed, then pages merged; marking takes milliseconds.
      onProgress: (p) => {
        if (p.phase !== "mark") progress.update(p.done, p.total, p.phase);
      },
    });
  } finally {
    progress.done();
  }
  report.warnings.unshift(...warnings);
  console.error(`mergemem: engine: ${report.engine} (${report.engine_reason})`);
  for (const w of report.warnings) console.error(`mergemem: warning: ${w}`);
  if (report.trust_domain.skipped_by_policy.length > 0) {
    console.error(`mergemem: note: ${SKIPPED_BY_POLICY_NOTE}`);
  }
  if (values.json) console.log(JSON.stringify(report, null, 2));
  else console.log(formatMerge(report));
  return 0;
}

/** Human rendering of a merge report. */
function formatMerge(r: MergeReport): string {
  const s = styles(useColor());
  const pct = r.predicted_saveable_pages
    ? ` (${
      (100 * r.achieved_pages / r.predicted_saveable_pages).toFixed(1)
    }% of prediction)`
    : "";
  const lines = [
    markedProcessTable(
      r.processes.map((p) => ({
        pid: p.pid,
        comm: p.comm,
        vmas: p.vmas_marked + p.vmas_already_mergeable,
        bytes: p.bytes_marked,
        before: p.merging_pages_before,
        after: p.merging_pages_after,
        holdMs: p.hold_ms_max,
      })),
      "MARKED",
    ),
    "",
    ...(r.skipped.length
      ? [
        `skipped: ${r.skipped.map((x) => `${x.pid} (${x.reason})`).join(", ")}`,
      ]
      : []),
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
      } (${r.achieved_pages} pages${
        r.achieved_outside_chosen_pages
          ? `, ${r.achieved_outside_chosen_pages} of them in huge pages ` +
            "the merge split, beyond the chosen mappings"
          : ""
      })${pct} in ${r.seconds.toFixed(1)} s (ksmd: ${r.ksmd_end})`,
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
