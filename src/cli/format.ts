/**
 * Human output: sizes, colours (only on a terminal, never with NO_COLOR)
 * and plain aligned tables.
 *
 * @module
 */

/** Whether stdout should be coloured: a terminal, and NO_COLOR unset. */
export function useColor(): boolean {
  const noColor = Deno.env.get("NO_COLOR");
  if (noColor !== undefined && noColor !== "") return false;
  return Deno.stdout.isTerminal();
}

/** ANSI styles that collapse to plain text when colour is off. */
export function styles(color: boolean) {
  const wrap = (code: string) => (s: string) =>
    color ? `\x1b[${code}m${s}\x1b[0m` : s;
  return {
    bold: wrap("1"),
    dim: wrap("2"),
    green: wrap("32"),
    yellow: wrap("33"),
    red: wrap("31"),
    cyan: wrap("36"),
  };
}

/**
 * Formats bytes as B, KiB, MiB, GiB or TiB with three significant digits.
 * The unit is chosen after rounding, so 1048575 is "1.00 MiB", never
 * "1024 KiB"; a value that is not a finite number prints as "-".
 */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return "-";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = bytes;
  let i = 0;
  while (Math.abs(v) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  if (i === 0) return `${v} B`;
  const digits = (x: number) =>
    Math.abs(x) >= 100 ? 0 : Math.abs(x) >= 10 ? 1 : 2;
  let text = v.toFixed(digits(v));
  if (Math.abs(Number(text)) >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
    text = v.toFixed(digits(v));
  }
  return `${text} ${units[i]}`;
}

/** Formats a page count as a size, given the page size. */
export function formatPages(pages: number, pageSize: number): string {
  return formatBytes(pages * pageSize);
}

/** A percentage with one decimal, or "-" when the whole is zero. */
export function formatPercent(part: number, whole: number): string {
  if (whole === 0) return "-";
  return `${(100 * part / whole).toFixed(1)}%`;
}

/** Column alignment. */
export type Align = "left" | "right";

/** Visible length of a string, ignoring ANSI colour codes. */
function visibleLength(s: string): number {
  // deno-lint-ignore no-control-regex
  return s.replace(/\x1b\[[0-9;]*m/g, "").length;
}

/**
 * Renders rows as an aligned text table. The first row is the header;
 * `align` gives each column's alignment (default: left for the first
 * column, right for the rest, which suits name-then-numbers tables).
 */
export function renderTable(rows: string[][], align?: Align[]): string {
  if (rows.length === 0) return "";
  const cols = Math.max(...rows.map((r) => r.length));
  const widths = Array.from(
    { length: cols },
    (_, c) => Math.max(...rows.map((r) => visibleLength(r[c] ?? ""))),
  );
  return rows.map((row) =>
    widths.map((w, c) => {
      const cell = row[c] ?? "";
      const pad = " ".repeat(w - visibleLength(cell));
      const a = align?.[c] ?? (c === 0 ? "left" : "right");
      return a === "left" ? cell + pad : pad + cell;
    }).join("  ").trimEnd()
  ).join("\n");
}

/** Shortens a string to at most `max` characters with an ellipsis. */
export function truncate(s: string, max: number): string {
  return s.length <= max ? s : "…" + s.slice(s.length - max + 1);
}

/** One process row of the merge and unmerge tables. */
export interface MarkedProcessRow {
  pid: number;
  comm: string;
  /** VMAs marked (merge) or unmarked (unmerge). */
  vmas: number;
  /** Their size in bytes. */
  bytes: number;
  /** ksm_merging_pages before and after. */
  before: number;
  after: number;
  /** ptrace engine: the longest hold in ms; null otherwise. */
  holdMs: number | null;
}

/**
 * The process table of merge and unmerge: one row per process, with the
 * VMAs it (un)marked and its ksm_merging_pages before and after; a HOLD
 * column when the ptrace engine stopped the processes.
 */
export function markedProcessTable(
  rows: MarkedProcessRow[],
  verb: "MARKED" | "UNMARKED",
): string {
  const hold = rows.some((r) => r.holdMs !== null);
  const out = [[
    "PID",
    "COMM",
    "VMAS",
    verb,
    "MERGING BEFORE",
    "MERGING AFTER",
    ...(hold ? ["HOLD"] : []),
  ]];
  for (const r of rows) {
    out.push([
      String(r.pid),
      r.comm,
      String(r.vmas),
      formatBytes(r.bytes),
      String(r.before),
      String(r.after),
      ...(hold ? [r.holdMs === null ? "-" : `${r.holdMs.toFixed(1)} ms`] : []),
    ]);
  }
  const align: Align[] = ["right", "left", "right", "right", "right", "right"];
  return renderTable(out, hold ? [...align, "right"] : align);
}
