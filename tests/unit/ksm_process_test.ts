/** src/ksm/process.ts: ksm_stat, and the mappings flagged mergeable ("mg"). */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import {
  parseKsmStat,
  parseMergeableMappings,
  parseMergeableVmas,
} from "../../src/ksm/process.ts";

// An smaps excerpt of a process that called MADV_MERGEABLE on its heap and
// one anonymous region (the kernel ends VmFlags with a space).
const SMAPS =
  `55d0c0000000-55d0c0021000 rw-p 00000000 00:00 0                          [heap]
Size:                132 kB
Rss:                  96 kB
Anonymous:            96 kB
KSM:                  40 kB
VmFlags: rd wr mr mw me ac sd mg 
7f0000000000-7f0000400000 rw-p 00000000 00:00 0 
Size:               4096 kB
Rss:                4096 kB
Anonymous:          4096 kB
KSM:                   0 kB
VmFlags: rd wr mr mw me ac sd 
7f0000400000-7f0000800000 rw-p 00000000 00:00 0 
Size:               4096 kB
Rss:                2048 kB
Anonymous:          2048 kB
KSM:                1024 kB
VmFlags: rd wr mr mw me ac sd nh mg 
7f1a2c000000-7f1a2c021000 r--p 00000000 fe:00 26723                      /usr/lib/x86_64-linux-gnu/libc.so.6
Size:                132 kB
Rss:                 132 kB
Anonymous:             0 kB
KSM:                   0 kB
VmFlags: rd mr mw me sd 
`;

const CASES: [string, string, { startHex: string; path: string }[]][] = [
  ["two of four mappings flagged mg", SMAPS, [
    { startHex: "0x55d0c0000000", path: "[heap]" },
    { startHex: "0x7f0000400000", path: "" },
  ]],
  [
    "none flagged",
    SMAPS.replaceAll(" mg \n", " \n"),
    [],
  ],
  ["empty smaps (a zombie)", "", []],
];
for (const [what, text, want] of CASES) {
  Deno.test(`parseMergeableMappings: ${what}`, () => {
    assertEquals(
      parseMergeableMappings(text).map((m) => ({
        startHex: m.startHex,
        path: m.path,
      })),
      want,
    );
  });
}

Deno.test("parseMergeableMappings keeps the smaps fields of each mapping", () => {
  const [heap, anon] = parseMergeableMappings(SMAPS);
  assertEquals(heap.end - heap.start, 132 * 1024);
  assertEquals(heap.kb.KSM, 40);
  assertEquals(anon.vmFlags, "rd wr mr mw me ac sd nh mg".split(" "));
});

Deno.test("parseKsmStat handles 6.1, 6.12 and 6.18 formats", () => {
  assertEquals(parseKsmStat("ksm_rmap_items 12\n"), { ksm_rmap_items: 12 });
  assertEquals(
    parseKsmStat(
      "ksm_rmap_items 4096\nksm_zero_pages 0\nksm_merging_pages 2048\nksm_process_profit 8126464\n",
    ),
    {
      ksm_rmap_items: 4096,
      ksm_zero_pages: 0,
      ksm_merging_pages: 2048,
      ksm_process_profit: 8126464,
    },
  );
  assertEquals(
    parseKsmStat(
      "ksm_process_profit -512\nksm_merge_any: no\nksm_mergeable: yes\n",
    ),
    { ksm_process_profit: -512, ksm_merge_any: "no", ksm_mergeable: "yes" },
  );
});

Deno.test("parseMergeableVmas counts VMAs flagged mg and their bytes", () => {
  assertEquals(parseMergeableVmas(SMAPS), {
    vmas: 2,
    bytes: 0x21000 + 0x400000,
  });
});
