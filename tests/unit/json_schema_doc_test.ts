/**
 * docs/json-schema.md against the reports themselves: each section's
 * heading and example name the schema id the code writes (SCAN_SCHEMA,
 * MERGE_SCHEMA, UNMERGE_SCHEMA, STATUS_SCHEMA), and each example has
 * exactly the keys, at every depth, of a real report: a scan of a child
 * process and a status on a fixture KSM directory, /proc and journal (no
 * root needed), and for merge and unmerge, which need KSM and root, a
 * report written out against the types with every key required.
 */
import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import { scan } from "../../src/scan/scan.ts";
import { SCAN_SCHEMA } from "../../src/scan/result.ts";
import { MERGE_SCHEMA, type MergeReport } from "../../src/merge/merge.ts";
import { UNMERGE_SCHEMA, type UnmergeReport } from "../../src/merge/unmerge.ts";
import { status, STATUS_SCHEMA } from "../../src/status/status.ts";
import { writeJournal } from "../../src/ksm/journal.ts";
import { tempDir } from "../helpers/temp.ts";

const DOC = Deno.readTextFileSync(
  new URL("../../docs/json-schema.md", import.meta.url),
);

/** Strips // and /* *\/ comments outside strings from a JSONC text. */
function stripComments(text: string): string {
  let out = "";
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '"') {
      const end = /"(?:[^"\\]|\\.)*"/y;
      end.lastIndex = i;
      const m = end.exec(text)!;
      out += m[0];
      i += m[0].length - 1;
    } else if (text.startsWith("//", i)) {
      while (i < text.length && text[i] !== "\n") i++;
      out += "\n";
    } else if (text.startsWith("/*", i)) {
      i = text.indexOf("*/", i) + 1;
    } else out += c;
  }
  return out;
}

/** The section of docs/json-schema.md for `name`: heading id, example. */
function docSection(name: string): { id: string; example: string } {
  const m = new RegExp(`^## ${name}: \`([^\`]+)\`$`, "m").exec(DOC);
  ok(m, `docs/json-schema.md has a '## ${name}: \`ID\`' heading`);
  const rest = DOC.slice(m.index + m[0].length);
  const end = rest.search(/^## /m);
  const body = end < 0 ? rest : rest.slice(0, end);
  const ex = /```jsonc\n([\s\S]*?)\n```/.exec(body);
  ok(ex, `the ${name} section has a jsonc example`);
  return { id: m[1], example: ex[1] };
}

function parseExample(name: string): Record<string, unknown> {
  return JSON.parse(stripComments(docSection(name).example));
}

/** A key path, "processes[].totals". */
type Path = string;

/**
 * Where the two documents' keys differ, at every depth. Arrays compare
 * the example's first element with every real one; null on either side
 * (a nullable field) and the free-form maps in `maps` (settings by name)
 * end the comparison there; `optional` keys may be missing from the
 * example (they are documented in the prose instead).
 */
function keyDiffs(
  example: unknown,
  real: unknown,
  opts: { maps: Path[]; optional?: Path[] },
  path: Path = "",
): string[] {
  if (example === null || real === null) return [];
  if (Array.isArray(example) || Array.isArray(real)) {
    if (!Array.isArray(example) || !Array.isArray(real)) {
      return [`${path}: an array on one side only`];
    }
    if (example.length === 0 || real.length === 0) return [];
    return real.flatMap((r) => keyDiffs(example[0], r, opts, `${path}[]`));
  }
  const isObj = (v: unknown) => typeof v === "object";
  if (!isObj(example) || !isObj(real)) {
    return isObj(example) !== isObj(real)
      ? [`${path}: an object on one side only`]
      : [];
  }
  if (opts.maps.includes(path)) return [];
  const e = example as Record<string, unknown>;
  const r = real as Record<string, unknown>;
  const at = (k: string) => path ? `${path}.${k}` : k;
  const out: string[] = [];
  for (const k of Object.keys(r)) {
    if (!(k in e) && !opts.optional?.includes(at(k))) {
      out.push(`${at(k)}: not in the example`);
    }
  }
  for (const k of Object.keys(e)) {
    if (!(k in r)) out.push(`${at(k)}: in the example, not in the report`);
    else out.push(...keyDiffs(e[k], r[k], opts, at(k)));
  }
  return out;
}

Deno.test("docs/json-schema.md names each report's schema id as the code does", () => {
  for (
    const [name, id] of [
      ["scan", SCAN_SCHEMA],
      ["merge", MERGE_SCHEMA],
      ["unmerge", UNMERGE_SCHEMA],
      ["status", STATUS_SCHEMA],
    ]
  ) {
    assertEquals(docSection(name).id, id, `${name}'s heading`);
    assertEquals(parseExample(name).schema, id, `${name}'s example`);
  }
});

Deno.test("docs/json-schema.md: the scan example has a real scan's keys", async () => {
  const child = new Deno.Command("sleep", { args: ["60"] }).spawn();
  try {
    // "fast" confirms every match, so "confirmed" (prose) is absent.
    const r = await scan({
      selection: { pids: [child.pid] },
      checksum: "fast",
    });
    ok(r.processes[0]?.mappings.length, "the scan saw the child's mappings");
    const example = parseExample("scan");
    // processes[].totals is written as "the same fields as above, without
    // processes*".
    ok(/the same fields as above, without processes\*/.test(DOC));
    const totals = example.totals as Record<string, unknown>;
    (example.processes as Record<string, unknown>[])[0].totals = Object
      .fromEntries(
        Object.entries(totals).filter(([k]) => !k.startsWith("processes")),
      );
    assertEquals(
      keyDiffs(example, JSON.parse(JSON.stringify(r)), {
        maps: [],
        optional: ["confirmed"],
      }),
      [],
    );
  } finally {
    child.kill();
    await child.status;
  }
});

Deno.test("docs/json-schema.md: the status example has a real status's keys", () => {
  const ksm = tempDir({ prefix: "json_doc_ksm_" });
  for (
    const [k, v, mode] of [
      ["run", "0", 0o644],
      ["pages_to_scan", "100", 0o644],
      ["pages_sharing", "8", 0o444],
    ] as const
  ) {
    Deno.writeTextFileSync(`${ksm}/${k}`, `${v}\n`);
    Deno.chmodSync(`${ksm}/${k}`, mode);
  }
  // One process with merged pages, as 6.12's /proc writes it.
  const proc = tempDir({ prefix: "json_doc_proc_" });
  Deno.mkdirSync(`${proc}/4242`);
  Deno.writeTextFileSync(`${proc}/4242/comm`, "php-fpm8.2\n");
  Deno.writeTextFileSync(
    `${proc}/4242/status`,
    "Name:\tphp-fpm8.2\nUid:\t33\t33\t33\t33\n",
  );
  Deno.writeTextFileSync(`${proc}/4242/ksm_merging_pages`, "4000\n");
  Deno.writeTextFileSync(
    `${proc}/4242/ksm_stat`,
    "ksm_rmap_items 4300\nksm_zero_pages 0\nksm_merging_pages 4000\n" +
      "ksm_process_profit 16100000\n",
  );
  // A journal of a burst that runs (this process): status reports it.
  const runDir = tempDir({ prefix: "json_doc_run_" });
  writeJournal({ run: "0", pages_to_scan: "100" }, {
    runDir,
    ksmDir: ksm,
    command: "json_schema_doc_test",
  });
  const r = status({
    ksmDir: ksm,
    proc,
    devicePath: "/nonexistent/mergemem",
    runDir,
  });
  ok(r.journal, "the report has the journal");
  assertEquals(r.processes.map((p) => p.pid), [4242]);
  assertEquals(
    keyDiffs(parseExample("status"), JSON.parse(JSON.stringify(r)), {
      maps: [
        "ksm.settings",
        "ksm.counters",
        "journal.settings",
        "journal.restore_mismatch",
      ],
    }),
    [],
  );
});

/** T with every key required, at every depth. */
type Complete<T> = T extends (infer U)[] ? Complete<U>[]
  : T extends object ? { [K in keyof T]-?: Complete<T[K]> }
  : T;

// merge and unmerge need root and KSM: their reports written out here,
// every key of their types required (deno check keeps them complete).
const MERGE: Complete<MergeReport> = {
  schema: MERGE_SCHEMA,
  mergemem_version: "0.1.0",
  dry_run: false,
  no_wait: false,
  engine: "module",
  engine_reason: "auto: /dev/mergemem is loaded",
  whole_process: false,
  thp: "nohugepage",
  scan_backend: "kernel",
  scan_marks_pages_accessed: false,
  trust_domain: {
    level: "namespace",
    cross_user: false,
    policy: "largest-domain",
    domain: "uid 33",
    uids: [33],
    uids_selected: [0, 33],
    domains_selected: ["uid 0", "uid 33"],
    skipped_by_policy: [{ pid: 812, comm: "apache2", uid: 0, domain: "uid 0" }],
  },
  min_saving_pages: 16,
  page_size: 4096,
  pages_scanned: 12959,
  predicted_saveable_pages: 8000,
  predicted_saveable_bytes: 32768000,
  achieved_pages: 8000,
  achieved_bytes: 32768000,
  achieved_outside_chosen_pages: 0,
  achieved_method: "selection-frames",
  frames_before: 12959,
  frames_after: 4959,
  pages_sharing_before: 0,
  pages_sharing_after: 8000,
  ksm_zero_pages_before: 0,
  ksm_zero_pages_after: 0,
  general_profit_before: 0,
  general_profit_after: 31942400,
  seconds: 0.86,
  ksmd_end: "target",
  ksmd_full_scans: 2,
  ksm_settings_before: { run: "0" },
  ksm_settings_after: { run: "0" },
  ksm_settings_restore_mismatch: {},
  warnings: ["..."],
  skipped: [{ pid: 123, reason: "gone" }],
  processes: [{
    pid: 153,
    comm: "php-fpm8.2",
    uid: 33,
    container: null,
    pod: null,
    vmas_marked: 1,
    bytes_marked: 17612800,
    vmas_already_mergeable: 0,
    vmas_skipped: 0,
    vmas_chosen: 1,
    duplicate_pages: 4000,
    predicted_saveable_pages: 4000,
    merging_pages_before: 0,
    merging_pages_after: 4000,
    hold_ms_max: null,
    thp_nohugepage: [{
      start: "0x7f12a0000000",
      end: "0x7f12a4000000",
      had_hugepage: false,
    }],
  }],
};

const UNMERGE: Complete<UnmergeReport> = {
  schema: UNMERGE_SCHEMA,
  mergemem_version: "0.1.0",
  pages_to_unshare: 12000,
  mem_available_bytes: 1800000000,
  reserve_bytes: 67108864,
  forced: false,
  engine: "module",
  ksmd_refresh: { ended: "target", seconds: 0.4 },
  warnings: [],
  processes: [{
    pid: 153,
    comm: "php-fpm8.2",
    vmas_unmarked: 1,
    bytes_unmarked: 17612800,
    merging_pages_before: 4000,
    merging_pages_after: 0,
    hold_ms_max: null,
    thp_restored: 0,
    error: "...",
  }],
};

Deno.test("docs/json-schema.md: the merge and unmerge examples have their types' keys", () => {
  const maps = [
    "ksm_settings_before",
    "ksm_settings_after",
    "ksm_settings_restore_mismatch",
  ];
  assertEquals(keyDiffs(parseExample("merge"), MERGE, { maps }), []);
  assertEquals(keyDiffs(parseExample("unmerge"), UNMERGE, { maps: [] }), []);
});
