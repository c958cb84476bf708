/** src/ksm/sysfs.ts: KSM sysfs parsing against fixtures of 6.1 and 6.12. */
import {
  deepStrictEqual as assertEquals,
  ok as assert,
  throws,
} from "node:assert/strict";
import {
  ksmAvailable,
  parseSysfsValue,
  readKsm,
  requireKsm,
} from "../../src/ksm/sysfs.ts";
import { ErrorKind, MergememError } from "../../src/errors.ts";
import { tempDir } from "../helpers/temp.ts";

/** Files of /sys/kernel/mm/ksm on Debian 6.1 (values as printed). */
const KSM_61: Record<string, [string, number]> = {
  full_scans: ["3\n", 0o444],
  max_page_sharing: ["256\n", 0o644],
  merge_across_nodes: ["1\n", 0o644],
  pages_shared: ["10\n", 0o444],
  pages_sharing: ["2048\n", 0o444],
  pages_to_scan: ["100\n", 0o644],
  pages_unshared: ["5\n", 0o444],
  pages_volatile: ["0\n", 0o444],
  run: ["0\n", 0o644],
  sleep_millisecs: ["20\n", 0o644],
  stable_node_chains: ["0\n", 0o444],
  stable_node_chains_prune_millisecs: ["2000\n", 0o644],
  stable_node_dups: ["0\n", 0o444],
  use_zero_pages: ["0\n", 0o644],
};

/** 6.12 adds these. */
const KSM_612_EXTRA: Record<string, [string, number]> = {
  advisor_max_cpu: ["70\n", 0o644],
  advisor_mode: ["[none] scan-time\n", 0o644],
  general_profit: ["8384512\n", 0o444],
  ksm_zero_pages: ["0\n", 0o444],
  pages_scanned: ["123456\n", 0o444],
  pages_skipped: ["7\n", 0o444],
  smart_scan: ["1\n", 0o644],
};

function fixture(files: Record<string, [string, number]>): string {
  const dir = tempDir({ prefix: "ksm_fixture_" });
  for (const [name, [text, mode]] of Object.entries(files)) {
    Deno.writeTextFileSync(`${dir}/${name}`, text, { mode });
    Deno.chmodSync(`${dir}/${name}`, mode);
  }
  return dir;
}

Deno.test("parseSysfsValue picks the selected choice", () => {
  assertEquals(parseSysfsValue("[none] scan-time\n"), "none");
  assertEquals(parseSysfsValue("none [scan-time]"), "scan-time");
  assertEquals(parseSysfsValue(" 100\n"), "100");
});

Deno.test("readKsm on a 6.1 layout", () => {
  const dir = fixture(KSM_61);
  const s = readKsm(dir);
  assertEquals(s.knobs, {
    max_page_sharing: "256",
    merge_across_nodes: "1",
    pages_to_scan: "100",
    run: "0",
    sleep_millisecs: "20",
    stable_node_chains_prune_millisecs: "2000",
    use_zero_pages: "0",
  });
  assertEquals(s.counters.pages_sharing, 2048);
  assertEquals(s.counters.full_scans, 3);
  assert(!("general_profit" in s.counters));
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("readKsm on a 6.12 layout", () => {
  const dir = fixture({ ...KSM_61, ...KSM_612_EXTRA });
  const s = readKsm(dir);
  assertEquals(s.knobs.advisor_mode, "none");
  assertEquals(s.knobs.smart_scan, "1");
  assertEquals(s.counters.general_profit, 8384512);
  assertEquals(s.counters.pages_scanned, 123456);
  Deno.removeSync(dir, { recursive: true });
});

Deno.test("KSM compiled out gives ErrorKind.NoKsm", () => {
  assert(!ksmAvailable("/nonexistent/ksm"));
  throws(
    () => requireKsm("/nonexistent/ksm"),
    (e: unknown) => e instanceof MergememError && e.kind === ErrorKind.NoKsm,
  );
  throws(
    () => readKsm("/nonexistent/ksm"),
    (e: unknown) => e instanceof MergememError && e.kind === ErrorKind.NoKsm,
  );
});
