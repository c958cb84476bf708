/** Pure parts of merge/unmerge: the VMA choice and meminfo. */
import {
  deepStrictEqual as assertEquals,
  ok as assert,
} from "node:assert/strict";
import { worthMarking } from "../../src/merge/plan.ts";
import type { MappingResult } from "../../src/scan/result.ts";
import { parseMeminfo, reserveBytes } from "../../src/merge/unmerge.ts";

function mapping(present: number, duplicate: number): MappingResult {
  return {
    start: "0x1000",
    end: "0x2000",
    perms: "rw-p",
    kind: "anon",
    path: "",
    deleted: false,
    ksm_eligible: true,
    rss_pages: present,
    pages_present: present,
    pages_zero: 0,
    pages_duplicate: duplicate,
    pages_shared_already: 0,
    pages_shared_already_estimate: 0,
    saveable_pages: duplicate,
  };
}

Deno.test("worthMarking: duplicates minus 1/64 of the pages >= minSaving", () => {
  assert(worthMarking(mapping(640, 26), 16, false));
  assert(!worthMarking(mapping(640, 25), 16, false));
  assert(worthMarking(mapping(640, 0), 16, true), "already mergeable");
  assert(!worthMarking(mapping(0, 0), 16, true), "nothing present");
  assert(
    !worthMarking({ ...mapping(640, 600), ksm_eligible: false }, 16, false),
  );
});

Deno.test("parseMeminfo and the unmerge reserve", () => {
  const m = parseMeminfo(
    "MemTotal:       24000000 kB\nMemFree: 1 kB\nMemAvailable:   1000 kB\n",
  );
  assertEquals(m, { total: 24000000 * 1024, available: 1000 * 1024 });
  assertEquals(reserveBytes(1 << 30), 64 << 20);
  assertEquals(reserveBytes(100 * 2 ** 30), Math.floor(100 * 2 ** 30 * 0.02));
});
