/** Prometheus formatting and the atomic textfile write. */
import {
  deepStrictEqual as assertEquals,
  ok as assert,
} from "node:assert/strict";
import {
  escapeLabel,
  formatPrometheus,
  writeAtomic,
} from "../../src/status/prometheus.ts";
import { STATUS_SCHEMA, type StatusReport } from "../../src/status/status.ts";

const REPORT: StatusReport = {
  schema: STATUS_SCHEMA,
  mergemem_version: "0.1.0",
  timestamp: "2026-01-02T03:04:05.000Z",
  page_size: 4096,
  module: {
    loaded: true,
    api: 1,
    version: "0.1.0",
    features: ["pageinfo"],
    error: null,
  },
  ksm: {
    available: true,
    settings: { run: "0", pages_to_scan: "100", advisor_mode: "none" },
    counters: { pages_sharing: 8000, full_scans: 4, general_profit: 31942400 },
  },
  journal: null,
  warnings: [],
  processes: [
    {
      pid: 42,
      comm: 'we"ird\\name',
      uid: 33,
      container: "php-a-1",
      pod: "web-1",
      namespace: "shop",
      merging_pages: 4000,
      rmap_items: 4300,
      zero_pages: 0,
      process_profit: 16000000,
    },
    {
      pid: 43,
      comm: "httpd",
      uid: 33,
      container: null,
      pod: null,
      namespace: null,
      merging_pages: 10,
      rmap_items: 10,
      zero_pages: null,
      process_profit: null,
    },
  ],
  totals: { processes: 2, merging_pages: 4010, process_profit: 16000000 },
};

Deno.test("escapeLabel escapes backslash, quote, newline", () => {
  assertEquals(escapeLabel('a"b\\c\nd'), 'a\\"b\\\\c\\nd');
});

Deno.test("formatPrometheus renders documented metrics", () => {
  const t = formatPrometheus(REPORT);
  const lines = t.trimEnd().split("\n");
  assert(lines.includes("mergemem_module_loaded 1"));
  assert(lines.includes('mergemem_module_info{api="1",version="0.1.0"} 1'));
  assert(lines.includes('mergemem_ksm_setting{name="run"} 0'));
  assert(
    !t.includes('name="advisor_mode"'),
    "non-numeric settings are left out",
  );
  assert(lines.includes("mergemem_ksm_pages_sharing 8000"));
  assert(lines.includes("# TYPE mergemem_ksm_full_scans_total counter"));
  assert(lines.includes("mergemem_ksm_full_scans_total 4"));
  assert(lines.includes("mergemem_ksm_general_profit 31942400"));
  assert(lines.includes(
    'mergemem_process_ksm_merging_pages{pid="42",comm="we\\"ird\\\\name",uid="33",container="php-a-1",pod="web-1",namespace="shop"} 4000',
  ));
  assert(
    lines.includes(
      'mergemem_process_ksm_profit_bytes{pid="42",comm="we\\"ird\\\\name",uid="33",container="php-a-1",pod="web-1",namespace="shop"} 16000000',
    ),
  );
  assert(
    !t.includes('mergemem_process_ksm_profit_bytes{pid="43"'),
    "no profit line without a value",
  );
  assert(lines.includes("mergemem_merging_pages 4010"));
  assert(lines.includes("mergemem_status_timestamp_seconds 1767323045"));
  // Every sample belongs to a metric with HELP and TYPE lines.
  const typed = new Set(
    lines.filter((l) => l.startsWith("# TYPE ")).map((l) => l.split(" ")[2]),
  );
  for (const l of lines.filter((l) => !l.startsWith("#"))) {
    assert(typed.has(l.split(/[{ ]/)[0]), l);
  }
  assert(t.endsWith("\n"));
});

Deno.test("writeAtomic writes a file or DIR/mergemem.prom via rename", () => {
  const dir = Deno.makeTempDirSync();
  try {
    const p1 = writeAtomic(dir, "a 1\n");
    assertEquals(p1, `${dir}/mergemem.prom`);
    assertEquals(Deno.readTextFileSync(p1), "a 1\n");
    const p2 = writeAtomic(`${dir}/x.prom`, "b 2\n");
    assertEquals(Deno.readTextFileSync(p2), "b 2\n");
    writeAtomic(`${dir}/x.prom`, "b 3\n");
    assertEquals(Deno.readTextFileSync(p2), "b 3\n");
    // no temporary files left behind
    assertEquals([...Deno.readDirSync(dir)].map((e) => e.name).sort(), [
      "mergemem.prom",
      "x.prom",
    ]);
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
});
