/** Struct packing and ioctl numbers of src/kmod/uapi.ts. */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import {
  API_LAYOUT,
  iowr,
  MERGEMEM_IOC_API,
  MERGEMEM_IOC_MERGE,
  pack,
  PAGEINFO_ARGS_LAYOUT,
  RANGE_ARGS_LAYOUT,
  unpack,
} from "../../src/kmod/uapi.ts";
import { featureNames, formatModuleVersion } from "../../src/kmod/client.ts";

Deno.test("ioctl numbers follow _IOWR", () => {
  // _IOWR(0xE7, 0, 32) = 0xC020E700
  assertEquals(MERGEMEM_IOC_API, 0xc020e700n);
  // _IOWR(0xE7, 2, 56) = 0xC038E702
  assertEquals(MERGEMEM_IOC_MERGE, 0xc038e702n);
  assertEquals(iowr(0xe7, 1, 40), 0xc028e701n);
});

Deno.test("pack/unpack round-trip with little-endian layout", () => {
  const buf = pack(RANGE_ARGS_LAYOUT, {
    mem_fd: -1n,
    start: 0x7f0000001000n,
    end: 0x7f0000400000n,
  });
  assertEquals(buf.length, 56);
  assertEquals([...buf.slice(0, 4)], [0xff, 0xff, 0xff, 0xff]);
  assertEquals(buf[9], 0x10);
  const v = unpack(RANGE_ARGS_LAYOUT, buf);
  assertEquals(v.mem_fd, -1n);
  assertEquals(v.start, 0x7f0000001000n);
  assertEquals(v.end, 0x7f0000400000n);
  assertEquals(v.flags, 0n);
  assertEquals(v.vmas_skipped, 0n);
  const api = pack(API_LAYOUT, { api: 1n, module_version: 0x000100n });
  assertEquals(unpack(API_LAYOUT, api).module_version, 256n);
  const pi = pack(PAGEINFO_ARGS_LAYOUT, {
    npages: 65536n,
    out: 0xdeadbeef000n,
  });
  assertEquals(unpack(PAGEINFO_ARGS_LAYOUT, pi).out, 0xdeadbeef000n);
});

Deno.test("module version and feature names", () => {
  assertEquals(formatModuleVersion(0x000100), "0.1.0");
  assertEquals(formatModuleVersion(0x010203), "1.2.3");
  assertEquals(featureNames(7n), ["pageinfo", "merge", "unmerge"]);
  assertEquals(featureNames(1n << 5n), ["bit5"]);
});
