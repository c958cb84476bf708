import { deepStrictEqual as eq } from "node:assert/strict";
import { analyze } from "../../src/dedup/analyze.ts";
import { newTable, sortOrder } from "../../src/dedup/table.ts";
import {
  PAGE_EXCLUSIVE,
  PAGE_HASHED,
  PAGE_PIN_OK,
} from "../../src/pages/flags.ts";
import { createTableReader } from "../../src/scan/page_reader.ts";
import { CHECKSUMS } from "../../src/hash/mod.ts";
import { addressOf } from "../../src/pages/vmread.ts";

// Pages of this very process, read back with process_vm_readv.
const PS = 4096;
const raw = new Uint8Array(10 * PS);
const off = (PS - Number(addressOf(raw) % BigInt(PS))) % PS;
const pages = raw.subarray(off, off + 8 * PS);
const start = Number(addressOf(pages));
const CONTENT = ["A", "A", "B", "0", "B", "C", "0", "A"];
CONTENT.forEach((c, i) => {
  if (c !== "0") pages.fill(c.charCodeAt(0), i * PS, (i + 1) * PS);
});

function run(checksum: string) {
  const t = newTable(8);
  t.length = 8;
  const out = { hashLo: t.hashLo, hashHi: t.hashHi, flags: t.flags, offset: 0 };
  CHECKSUMS[checksum as "fast"].hashPages(
    new Uint32Array(pages.buffer, pages.byteOffset),
    0,
    8,
    PS,
    out,
    0,
  );
  for (let i = 0; i < 8; i++) {
    t.mapIdx[i] = 0;
    t.pageIdx[i] = i;
    t.pfn[i] = 100 + i; // 8 distinct frames
    t.flags[i] |= PAGE_EXCLUSIVE | PAGE_PIN_OK;
  }
  const order = sortOrder(t, "hash", new Uint32Array(t.length));
  const maps = [{ pid: Deno.pid, start }];
  const c = analyze(t, maps, {
    pageSize: PS,
    pfns: true,
    order,
    reader: createTableReader(t, maps, PS),
  });
  return [c.present[0], c.zero[0], c.duplicate[0], c.saveable[0]];
}

Deno.test("dedup: counts, and const (every page collides) == fast", () => {
  // 3 A + 2 B duplicates; frames 8 - contents 4 (A, B, C, zero) = 4.
  eq(run("fast"), [8, 2, 5, 4]);
  eq(run("const"), [8, 2, 5, 4]);
  eq(run("crc32"), [8, 2, 5, 4]);
});

Deno.test("dedup: a forced collision of different contents is no duplicate", () => {
  const t = newTable(2);
  t.length = 2;
  for (let i = 0; i < 2; i++) {
    t.mapIdx[i] = 0;
    t.pageIdx[i] = i === 0 ? 2 : 5; // B and C: different bytes, same hash
    t.pfn[i] = 1 + i;
    t.flags[i] = PAGE_HASHED | PAGE_EXCLUSIVE | PAGE_PIN_OK;
  }
  const maps = [{ pid: Deno.pid, start }];
  const c = analyze(t, maps, {
    pageSize: PS,
    pfns: true,
    reader: createTableReader(t, maps, PS),
  });
  eq([c.present[0], c.duplicate[0], c.saveable[0], c.zero[0]], [2, 0, 0, 0]);
});
