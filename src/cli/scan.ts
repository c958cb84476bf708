/**
 * `mergemem scan`: report how much memory identical pages waste, per
 * command group, per process and per mapping. A thin layer over scan().
 *
 * @module
 */
import {
  allDenied,
  ErrorKind,
  ErrorReason,
  MergememError,
  usageError,
} from "../errors.ts";
import { ExitCode, exitCodesHelp } from "./exit_codes.ts";
import { nothingSelected } from "./select_common.ts";
import { DEFAULT_TRUST_LEVEL, tenantOf } from "../merge/trust.ts";
import { type BackendChoice, resolveBackend } from "../compose/engines.ts";
import { CHECKSUM_NAMES, type ChecksumName, getChecksum } from "../hash/mod.ts";
import {
  addTotals,
  emptyTotals,
  type PageCounts,
  type ProcessResult,
  scan,
  type ScanResult,
  type Totals,
} from "../scan/mod.ts";
import { SCAN_SCHEMA } from "../scan/result.ts";
import { createUserBackend } from "../scan/user_backend.ts";
import {
  noSelector,
  parseChoice,
  parseIntOption,
  parseSelectors,
  parseStrict,
  selectionOf,
  SELECTOR_HELP,
  SELECTOR_OPTIONS,
  type SelectorArgs,
} from "./args.ts";
import {
  formatPages,
  formatPercent,
  renderTable,
  styles,
  truncate,
  useColor,
} from "./format.ts";
import { createProgress } from "./progress.ts";
import {
  type DocumentedOptions,
  HELP_OPTION,
  jsonOption,
  optionHelp,
} from "./options.ts";

/** One-line summary for --help. */
export const summary = "show how much memory identical pages waste";

const STRATEGIES = ["hash", "equalv"] as const;
const BACKENDS = [
  "auto",
  "user",
  "kernel",
] as const satisfies readonly BackendChoice[];

/** scan's own options, declared once for parsing and --help. */
export const OPTIONS = {
  checksum: {
    type: "string",
    arg: "NAME",
    help: `${CHECKSUM_NAMES.join("|")} (default xxh64).\n` +
      "Equal xxh64 hashes count as equal pages (collision\n" +
      "bound in docs/accounting.md); the others' matches are\n" +
      "always confirmed byte by byte, so they change speed only",
  },
  verify: { type: "boolean", help: "confirm xxh64 matches byte by byte too" },
  strategy: {
    type: "string",
    arg: "S",
    help: "hash: every page against every page (default);\n" +
      "equalv: only the same offset in corresponding mappings\n" +
      "of processes running the same executable (cheaper)",
  },
  backend: {
    type: "string",
    arg: "B",
    help: "auto|user|kernel: hash pages in the kernel through\n" +
      "/dev/mergemem, or read them here (default auto)",
  },
  top: {
    type: "string",
    arg: "N",
    help: "rows in the process and mapping tables (default 10)",
  },
  strict: { type: "boolean", help: "exit 5 if any process had to be skipped" },
  sample: {
    type: "string",
    arg: "N",
    help: "estimate from 1/N of the contents (chosen by hash) with\n" +
      "a bounded page table: duplicate, shared and saveable\n" +
      "figures are shown as estimate ± error bound (99%); zero,\n" +
      "present and scanned pages and heavy contents stay exact\n" +
      "(pages are read twice; xxh64 and the hash strategy only)",
  },
  "sample-slice": {
    type: "string",
    arg: "I",
    help: "with --sample N: which slice of contents, 0..N-1\n" +
      "(default 0)",
  },
  "max-memory": {
    type: "string",
    arg: "MIB",
    help: "page-table budget of an exact scan (default 16); a\n" +
      "bigger scan runs in passes, each hashing every page and\n" +
      "keeping 1/passes of the contents (same figures, slower)",
  },
  ...jsonOption(SCAN_SCHEMA),
  ...HELP_OPTION,
} as const satisfies DocumentedOptions;

/** The whole `--help` text (also the source of mergemem(8)). */
export const HELP = `Usage: mergemem scan [selection] [options]

Reads the present pages of the selected processes (never faulting any in),
finds pages with identical content and reports what KSM could save, per
command, per process and per mapping. Needs no kernel module; as root it
sees every process and exact physical sharing.

${SELECTOR_HELP}
With no selection, every process the caller may read, grouped by command.

Options:
${optionHelp(OPTIONS)}

Examples:
  sudo mergemem scan                          every process, grouped by command
  sudo mergemem scan --comm httpd             the httpd workers
  sudo mergemem scan --user www-data --json   machine-readable
  mergemem scan --pid 1234,1240 --strategy equalv
  sudo mergemem scan --all --sample 64        estimate a big host in little memory

${
  exitCodesHelp([
    [ExitCode.Ok, "a partial scan warns"],
    ExitCode.Usage,
    ExitCode.NothingScannable,
    ExitCode.AllDenied,
    [ExitCode.Partial, "--strict"],
    [ExitCode.NoModule, "--backend kernel"],
    [ExitCode.ModuleMismatch, "--backend kernel"],
  ])
}`;

/** What `mergemem scan ARGS` asks for: the help, or a scan. */
export type ScanArgs = { help: true } | ScanRequest;

/** A scan, with every option's value. */
export interface ScanRequest {
  help: false;
  selection: SelectorArgs;
  checksum: ChecksumName;
  strategy: (typeof STRATEGIES)[number];
  /** After --checksum: a checksum other than xxh64 means "user". */
  backend: BackendChoice;
  verify: boolean;
  top: number;
  strict: boolean;
  json: boolean;
  /** --sample N (undefined: exact). */
  sample?: number;
  /** --sample-slice I. */
  sampleSlice?: number;
  /** --max-memory, in bytes. */
  maxMemory?: number;
}

/** Parses scan's argv (usage errors throw, exit 2). */
export function parseScanArgs(args: string[]): ScanArgs {
  const { values } = parseStrict(args, { ...SELECTOR_OPTIONS, ...OPTIONS });
  // --help answers even when other values are wrong, as in merge.
  if (values.help) return { help: true };
  const selection = parseSelectors(values);
  const checksum = parseChoice(
    "checksum",
    values.checksum,
    CHECKSUM_NAMES,
    "xxh64",
  );
  const strategy = parseChoice("strategy", values.strategy, STRATEGIES, "hash");
  let backend = parseChoice("backend", values.backend, BACKENDS, "auto");
  // The module computes xxh64 only: another checksum means user space.
  if (checksum !== "xxh64") {
    if (backend === "kernel") {
      throw new MergememError(
        `--backend kernel computes xxh64; it cannot use --checksum ${checksum}`,
        ErrorKind.Usage,
      );
    }
    backend = "user";
  }
  const sample = values.sample === undefined
    ? undefined
    : parseIntOption("sample", values.sample, 1, 1, 2 ** 20);
  if (sample !== undefined && (strategy !== "hash" || checksum !== "xxh64")) {
    throw usageError(
      "--sample needs xxh64 and the hash strategy (a random hash of the content)",
    );
  }
  if (values["sample-slice"] !== undefined && sample === undefined) {
    throw usageError("--sample-slice needs --sample N");
  }
  const sampleSlice = values["sample-slice"] === undefined
    ? undefined
    : parseIntOption("sample-slice", values["sample-slice"], 0, 0, sample! - 1);
  const maxMemory = values["max-memory"] === undefined
    ? undefined
    : parseIntOption("max-memory", values["max-memory"], 16, 1, 2 ** 30) *
      1024 * 1024;
  return {
    help: false,
    selection,
    checksum,
    strategy,
    backend,
    verify: values.verify ?? false,
    top: parseIntOption("top", values.top, 10, 1, 100000),
    strict: values.strict ?? false,
    json: values.json ?? false,
    ...(sample !== undefined ? { sample } : {}),
    ...(sampleSlice !== undefined ? { sampleSlice } : {}),
    ...(maxMemory !== undefined ? { maxMemory } : {}),
  };
}

/** Runs `mergemem scan`. */
export async function run(args: string[]): Promise<number> {
  const a = parseScanArgs(args);
  if (a.help) {
    console.log(HELP);
    return ExitCode.Ok;
  }
  const { selection } = a;

  const { backend } = resolveBackend(
    a.backend,
    () => createUserBackend({ checksum: getChecksum(a.checksum) }),
  );
  const progress = createProgress({ unit: "pages" });
  let result: ScanResult;
  try {
    result = await scan({
      selection: selectionOf(selection),
      strategy: a.strategy,
      backend,
      ...(a.verify ? { confirm: true } : {}),
      ...(a.sample !== undefined ? { sample: a.sample } : {}),
      ...(a.sampleSlice !== undefined ? { sampleSlice: a.sampleSlice } : {}),
      ...(a.maxMemory !== undefined ? { maxMemory: a.maxMemory } : {}),
      onProgress: (p) =>
        progress.update(p.pagesDone, p.pagesTotal, `pid ${p.pid}`),
    });
  } finally {
    progress.done();
    backend.dispose?.();
  }

  const skipped = result.processes.filter((p) => p.skipped !== null);
  const scanned = result.processes.filter((p) => p.skipped === null);

  if (scanned.length === 0) {
    const denied = skipped.filter((p) =>
      p.skipped && p.skipped.reason !== "ESRCH"
    );
    if (skipped.length > 0 && denied.length === skipped.length) {
      throw allDenied(skipped.length);
    }
    throw nothingSelected(
      skipped.flatMap((p) => p.skipped ?? []),
      Deno.uid() !== 0 && noSelector(selection)
        ? { reason: ErrorReason.OwnProcessesOnly }
        : undefined,
    );
  }
  if (a.json) {
    console.log(JSON.stringify(result, null, 2));
  } else {
    printReport(result, a.top, noSelector(selection));
  }
  for (const w of result.warnings) console.error(`mergemem: warning: ${w}`);
  if (!a.json) {
    // Both back-ends look pages up with GUP, which marks them accessed
    // (FOLL_TOUCH; kmod's uapi header): say what frequent scans cost.
    console.error(
      "mergemem: note: reading a page marks it accessed; scanning often " +
        "keeps the scanned memory looking hot to reclaim",
    );
  }

  if (skipped.length > 0) {
    console.error(
      `mergemem: warning: ${skipped.length} process(es) skipped: ${
        summarizeSkips(skipped)
      }`,
    );
    if (a.strict) return ExitCode.Partial;
  }
  return ExitCode.Ok;
}

function summarizeSkips(skipped: ProcessResult[]): string {
  const shown = skipped.slice(0, 5).map((p) =>
    `${p.pid}${p.comm ? ` (${p.comm})` : ""}: ${p.skipped!.reason}`
  );
  if (skipped.length > 5) shown.push(`and ${skipped.length - 5} more`);
  return shown.join(", ");
}

/** A sampled figure as "≈ ESTIMATE ± BOUND"; an exact one as it is. */
export function formatEstimate(
  pages: number,
  bound: number | null | undefined,
  ps: number,
): string {
  if (bound === undefined || bound === null) return formatPages(pages, ps);
  return `≈ ${formatPages(pages, ps)} ± ${formatPages(bound, ps)}`;
}

function countCells(t: PageCounts, ps: number): string[] {
  return [
    formatPages(t.pages_present, ps),
    formatPages(t.pages_zero, ps),
    formatEstimate(t.pages_duplicate, t.pages_duplicate_error_bound, ps),
    t.pages_shared_already === null
      ? `~${formatPages(t.pages_shared_already_estimate, ps)}`
      : formatEstimate(
        t.pages_shared_already,
        t.pages_shared_already_error_bound,
        ps,
      ),
    formatEstimate(t.saveable_pages, t.saveable_pages_error_bound, ps),
  ];
}

const COUNT_HEADERS = ["PRESENT", "ZERO", "DUPLICATE", "SHARED", "SAVEABLE"];

function printReport(r: ScanResult, top: number, grouped: boolean): void {
  const s = styles(useColor());
  const ps = r.page_size;
  const t = r.totals;
  const scanned = r.processes.filter((p) => p.skipped === null);

  console.log(
    `${s.bold("mergemem scan")}: ${t.processes} process(es), ${
      formatPages(t.pages_present, ps)
    } of mergeable memory present, ${
      s.green(
        formatEstimate(t.saveable_pages, t.saveable_pages_error_bound, ps),
      )
    } saveable (${formatPercent(t.saveable_pages, t.pages_present)})${
      r.pfns_available && !r.sample ? "" : " (estimate)"
    }`,
  );
  if (r.sample) {
    console.log(
      s.dim(
        `sampled: contents of hash slice ${r.sample.slice} of ${r.sample.slices}; ` +
          `≈ figures are estimates ± an error bound of ${r.sample.z} standard errors (99%; ` +
          "bounds of groups are summed, so conservative)",
      ),
    );
  }
  if (r.passes) {
    console.log(
      s.dim(
        `exact, in ${r.passes} passes of one content slice each (--max-memory)`,
      ),
    );
  }
  console.log(
    s.dim(
      `strategy ${r.strategy}, checksum ${r.checksum}, backend ${r.backend}, ${
        r.elapsed_seconds.toFixed(2)
      } s`,
    ),
  );

  // Per command group: the answer to "where is my RAM duplicated?".
  const groups = new Map<string, { procs: number; totals: Totals }>();
  for (const p of scanned) {
    const g = groups.get(p.comm) ??
      { procs: 0, totals: emptyTotals(r.pfns_available, false) };
    g.procs++;
    addTotals(g.totals, p.totals);
    groups.set(p.comm, g);
  }
  const groupRows = [...groups.entries()]
    .sort((a, b) =>
      b[1].totals.saveable_pages - a[1].totals.saveable_pages ||
      b[1].totals.pages_present - a[1].totals.pages_present
    );
  if (grouped || groups.size > 1) {
    console.log(`\n${s.bold("By command")}`);
    const rows = [["COMMAND", "PROCS", ...COUNT_HEADERS]];
    for (const [comm, g] of groupRows.slice(0, Math.max(top, 20))) {
      rows.push([comm, String(g.procs), ...countCells(g.totals, ps)]);
    }
    if (groupRows.length > Math.max(top, 20)) {
      rows.push([`(${groupRows.length - Math.max(top, 20)} more)`]);
    }
    console.log(renderTable(rows));
  }

  // On a container host: per container, pod or Kubernetes namespace (the
  // default trust domain's tenant), host processes together.
  if (scanned.some((p) => p.container || p.pod)) {
    const tenants = new Map<string, { procs: number; totals: Totals }>();
    for (const p of scanned) {
      const label = tenantOf(
        { container: p.container, pod: p.pod, userns: null },
        DEFAULT_TRUST_LEVEL,
      ).label;
      const g = tenants.get(label) ??
        { procs: 0, totals: emptyTotals(r.pfns_available, false) };
      g.procs++;
      addTotals(g.totals, p.totals);
      tenants.set(label, g);
    }
    console.log(`\n${s.bold("By container, pod or namespace")}`);
    const rows = [["TENANT", "PROCS", ...COUNT_HEADERS]];
    const sorted = [...tenants.entries()].sort((a, b) =>
      b[1].totals.saveable_pages - a[1].totals.saveable_pages
    );
    for (const [label, g] of sorted.slice(0, Math.max(top, 20))) {
      rows.push([label, String(g.procs), ...countCells(g.totals, ps)]);
    }
    if (sorted.length > Math.max(top, 20)) {
      rows.push([`(${sorted.length - Math.max(top, 20)} more)`]);
    }
    console.log(renderTable(rows));
  }

  console.log(`\n${s.bold("By process")}`);
  const procs = [...scanned].sort((a, b) =>
    b.totals.saveable_pages - a.totals.saveable_pages ||
    b.totals.pages_present - a.totals.pages_present
  );
  const prow = [["PID", "COMMAND", "UID", ...COUNT_HEADERS]];
  for (const p of procs.slice(0, top)) {
    prow.push([
      String(p.pid),
      p.comm,
      String(p.uid),
      ...countCells(p.totals, ps),
    ]);
  }
  if (procs.length > top) prow.push([`(${procs.length - top} more)`]);
  console.log(renderTable(prow, ["right", "left", "right"]));

  const maps = scanned.flatMap((p) =>
    p.mappings.filter((m) => m.pages_present > 0).map((m) => ({ p, m }))
  ).sort((a, b) =>
    b.m.saveable_pages - a.m.saveable_pages ||
    b.m.pages_duplicate - a.m.pages_duplicate
  );
  if (maps.length > 0) {
    console.log(`\n${s.bold("Top mappings")}`);
    const mrow = [["PID", "MAPPING", "KIND", ...COUNT_HEADERS]];
    for (const { p, m } of maps.slice(0, top)) {
      const name = m.path === ""
        ? `${m.start}-${m.end}`
        : truncate(m.path + (m.deleted ? " (deleted)" : ""), 40);
      mrow.push([String(p.pid), name, m.kind, ...countCells(m, ps)]);
    }
    console.log(renderTable(mrow, ["right", "left", "left"]));
  }
  console.log(
    s.dim(
      "\nPRESENT: mergeable pages in RAM; ZERO: all-zero pages; DUPLICATE: content also in another frame;\n" +
        "SHARED: already one frame (fork/KSM)" +
        (r.pfns_available ? "" : ", ~ = estimate without root") +
        "; SAVEABLE: frames KSM could free. See docs/accounting.md.",
    ),
  );
}
