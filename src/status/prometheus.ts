/**
 * Prometheus text exposition of the status report, for node_exporter's
 * textfile collector, written atomically: node_exporter may read the file
 * at any moment, so it is written to a temporary file in the same
 * directory and renamed over the target (rename is atomic within one
 * file system). Metric names are documented in docs/metrics.md.
 *
 * @module
 */
import type { StatusReport } from "./status.ts";

/** Escapes a label value (backslash, quote, newline). */
export function escapeLabel(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

/** Makes a metric-name-safe suffix out of a sysfs file name. */
function metricSafe(name: string): string {
  return name.replace(/[^a-zA-Z0-9_]/g, "_");
}

/** Renders the status report in Prometheus text format 0.0.4. */
export function formatPrometheus(r: StatusReport): string {
  const out: string[] = [];
  const metric = (
    name: string,
    help: string,
    type: "gauge" | "counter",
    samples: [string, number][],
  ) => {
    out.push(`# HELP ${name} ${help}`);
    out.push(`# TYPE ${name} ${type}`);
    for (const [labels, v] of samples) out.push(`${name}${labels} ${v}`);
  };
  metric(
    "mergemem_module_loaded",
    "1 when /dev/mergemem is loaded and handshakes.",
    "gauge",
    [
      ["", r.module.loaded ? 1 : 0],
    ],
  );
  if (r.module.loaded) {
    metric(
      "mergemem_module_info",
      "The loaded module's API and version.",
      "gauge",
      [
        [
          `{api="${r.module.api}",version="${
            escapeLabel(r.module.version ?? "")
          }"}`,
          1,
        ],
      ],
    );
  }
  metric("mergemem_ksm_available", "1 when the kernel has KSM.", "gauge", [
    ["", r.ksm.available ? 1 : 0],
  ]);
  const settings = Object.entries(r.ksm.settings)
    .filter(([, v]) => Number.isFinite(Number(v)) && v !== "");
  if (settings.length) {
    metric(
      "mergemem_ksm_setting",
      "Numeric KSM settings from /sys/kernel/mm/ksm, by file name.",
      "gauge",
      settings.map(([k, v]) => [`{name="${escapeLabel(k)}"}`, Number(v)]),
    );
  }
  for (const [k, v] of Object.entries(r.ksm.counters)) {
    const isCounter = k === "full_scans" || k === "pages_scanned";
    const name = `mergemem_ksm_${metricSafe(k)}${isCounter ? "_total" : ""}`;
    metric(name, `/sys/kernel/mm/ksm/${k}.`, isCounter ? "counter" : "gauge", [[
      "",
      v,
    ]]);
  }
  const lab = (p: StatusReport["processes"][number]) =>
    `{pid="${p.pid}",comm="${escapeLabel(p.comm)}",uid="${p.uid ?? ""}",` +
    `container="${escapeLabel(p.container ?? "")}",pod="${
      escapeLabel(p.pod ?? "")
    }",namespace="${escapeLabel(p.namespace ?? "")}"}`;
  metric(
    "mergemem_process_ksm_merging_pages",
    "Pages of the process mapped onto KSM pages (/proc/PID/ksm_merging_pages).",
    "gauge",
    r.processes.map((p) => [lab(p), p.merging_pages]),
  );
  const withProfit = r.processes.filter((p) => p.process_profit !== null);
  if (withProfit.length) {
    metric(
      "mergemem_process_ksm_profit_bytes",
      "Bytes KSM saves in the process minus its rmap overhead (ksm_process_profit).",
      "gauge",
      withProfit.map((p) => [lab(p), p.process_profit as number]),
    );
  }
  metric(
    "mergemem_process_ksm_rmap_items",
    "KSM rmap items of the process (pages ksmd tracks).",
    "gauge",
    r.processes.filter((p) => p.rmap_items !== null).map((
      p,
    ) => [lab(p), p.rmap_items as number]),
  );
  metric(
    "mergemem_merging_pages",
    "Sum of ksm_merging_pages over all processes.",
    "gauge",
    [
      ["", r.totals.merging_pages],
    ],
  );
  metric(
    "mergemem_status_timestamp_seconds",
    "When this status was collected.",
    "gauge",
    [
      ["", Math.floor(Date.parse(r.timestamp) / 1000)],
    ],
  );
  return out.join("\n") + "\n";
}

/** The file name used when --prometheus names a directory. */
export const PROM_FILE = "mergemem.prom";

/**
 * Writes text to target atomically: a temporary file in the same
 * directory, then rename. A directory target gets {@link PROM_FILE}.
 * Returns the path written.
 */
export function writeAtomic(target: string, text: string): string {
  let path = target;
  try {
    if (Deno.statSync(target).isDirectory) {
      path = `${target.replace(/\/+$/, "")}/${PROM_FILE}`;
    }
  } catch {
    // does not exist yet: a file path
  }
  const slash = path.lastIndexOf("/");
  const dir = slash >= 0 ? path.slice(0, slash) || "/" : ".";
  const base = slash >= 0 ? path.slice(slash + 1) : path;
  // A dot-name: node_exporter only reads *.prom, so it never sees the
  // temporary file half-written.
  const tmp = `${dir}/.${base}.${Deno.pid}.tmp`;
  try {
    Deno.writeTextFileSync(tmp, text, { mode: 0o644 });
    Deno.renameSync(tmp, path);
  } catch (err) {
    try {
      Deno.removeSync(tmp);
    } catch {
      // nothing to clean
    }
    throw err;
  }
  return path;
}
