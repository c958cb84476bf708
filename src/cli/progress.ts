/**
 * A progress line on stderr for long operations. It appears only on a
 * terminal and only after the work has taken a second, so quick runs and
 * pipelines stay quiet.
 *
 * @module
 */
import { formatBytes } from "./format.ts";

/** A progress reporter: call update() often, done() at the end. */
export interface Progress {
  /** Reports `done` of `total` units; cheap to call very often. */
  update(done: number, total: number, label?: string): void;
  /** Clears the progress line. */
  done(): void;
}

/** Options for {@link createProgress}. */
export interface ProgressOptions {
  /** The unit: "pages" prints sizes using pageSize, "items" plain counts. */
  unit: "pages" | "items";
  pageSize?: number;
  /** Force on or off; default: on when stderr is a terminal. */
  enabled?: boolean;
  /** Delay before the first draw, in ms (default 1000). */
  delayMs?: number;
  /** Where the line goes (default stderr); for tests. */
  write?: (s: string) => void;
  /** The clock in ms (default performance.now); for tests. */
  now?: () => number;
}

/** The progress line: a 30-column bar, the percentage and the amounts. */
export function progressLine(
  done: number,
  total: number,
  label: string,
  amount: (n: number) => string,
): string {
  const frac = total > 0 ? Math.min(1, done / total) : 0;
  const width = 30;
  const filled = Math.round(frac * width);
  const bar = "#".repeat(filled) + "-".repeat(width - filled);
  const pct = (frac * 100).toFixed(0).padStart(3);
  return `[${bar}] ${pct}% ${amount(done)}/${amount(total)} ${label}`;
}

/** Creates a progress reporter writing to stderr. */
export function createProgress(opts: ProgressOptions): Progress {
  const enabled = opts.enabled ?? Deno.stderr.isTerminal();
  const clock = opts.now ?? (() => performance.now());
  const start = clock();
  const delay = opts.delayMs ?? 1000;
  let lastDraw = 0;
  let drawn = false;
  const encoder = new TextEncoder();
  const write = opts.write ??
    ((s: string) => Deno.stderr.writeSync(encoder.encode(s)));
  const amount = (n: number) =>
    opts.unit === "pages" ? formatBytes(n * (opts.pageSize ?? 4096)) : `${n}`;

  return {
    update(done, total, label = "") {
      if (!enabled) return;
      const now = clock();
      if (now - start < delay || now - lastDraw < 100) return;
      lastDraw = now;
      drawn = true;
      write(`\r\x1b[K${progressLine(done, total, label, amount)}`);
    },
    done() {
      if (enabled && drawn) write("\r\x1b[K");
    },
  };
}
