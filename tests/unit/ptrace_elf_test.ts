/**
 * The ptrace engine's x86-64 check of an executable's ELF header, and the
 * decoding of waitpid statuses (formats only).
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { elfNotX86_64 } from "../../src/ptrace/target.ts";
import { decodeStatus } from "../../src/ptrace/sys.ts";

function header(cls: number, data: number, machine: number): Uint8Array {
  const h = new Uint8Array(20);
  h.set([0x7f, 0x45, 0x4c, 0x46, cls, data, 1]);
  if (data === 2) {
    h[18] = machine >> 8;
    h[19] = machine & 0xff;
  } else {
    h[18] = machine & 0xff;
    h[19] = machine >> 8;
  }
  return h;
}

Deno.test("elfNotX86_64: x86-64, i386, x32, arm64, s390x, not ELF", () => {
  assertEquals(elfNotX86_64(header(2, 1, 62)), undefined);
  assertEquals(
    elfNotX86_64(header(1, 1, 3)),
    "not an x86-64 process (ELF machine 3)",
  );
  assertEquals(elfNotX86_64(header(1, 1, 62)), "not an x86-64 process (x32)");
  assertEquals(
    elfNotX86_64(header(2, 1, 183)),
    "not an x86-64 process (ELF machine 183)",
  );
  assertEquals(
    elfNotX86_64(header(2, 2, 22)),
    "not an x86-64 process (ELF machine 22)",
  );
  assertEquals(
    elfNotX86_64(new TextEncoder().encode("#!/bin/sh\necho hello\n")),
    "executable is not ELF",
  );
  assertEquals(elfNotX86_64(new Uint8Array(4)), "executable is not ELF");
});

Deno.test("decodeStatus: exits, deaths, signal, syscall and event stops", () => {
  assertEquals(decodeStatus(7 << 8), { kind: "exited", code: 7 });
  assertEquals(decodeStatus(9), { kind: "killed", signal: 9 });
  assertEquals(decodeStatus(0x80 | 11), { kind: "killed", signal: 11 }); // core
  assertEquals(decodeStatus((10 << 8) | 0x7f), {
    kind: "stopped",
    signal: 10,
    event: 0,
  });
  assertEquals(decodeStatus((0x85 << 8) | 0x7f), {
    kind: "stopped",
    signal: 0x85,
    event: 0,
  });
  assertEquals(decodeStatus((128 << 16) | (5 << 8) | 0x7f), {
    kind: "stopped",
    signal: 5,
    event: 128,
  });
});
