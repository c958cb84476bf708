/**
 * The TypeScript ABI (src/kmod/uapi.ts) against the C compiler's view of
 * kmod/include/uapi/linux/mergemem.h: tests/abi/print_abi.c prints every
 * constant and every struct's size and field offsets as JSON lines.
 */
import {
  deepStrictEqual as assertEquals,
  ok as assert,
} from "node:assert/strict";
import { CONSTANTS, LAYOUTS } from "../../src/kmod/uapi.ts";
import { haveGcc } from "../helpers/gcc.ts";
import { skipIf } from "../helpers/skip.ts";

const root = new URL("../../", import.meta.url).pathname;

const skip = { "no gcc (install build-essential)": !haveGcc() };

Deno.test({
  ...skipIf("uapi.ts matches mergemem.h (constants, sizes, offsets)", skip),
  fn() {
    const bin = Deno.makeTempFileSync({ prefix: "print_abi_" });
    try {
      const cc = new Deno.Command("gcc", {
        args: [
          "-Wall",
          "-Wextra",
          "-I",
          `${root}kmod/include/uapi`,
          "-o",
          bin,
          `${root}tests/abi/print_abi.c`,
        ],
      }).outputSync();
      assert(cc.success, new TextDecoder().decode(cc.stderr));
      const out = new Deno.Command(bin).outputSync();
      assert(out.success);
      const lines = new TextDecoder().decode(out.stdout).trim().split("\n")
        .map((l) => JSON.parse(l));
      const cConsts = new Map<string, bigint>();
      const cStructs = new Map<
        string,
        { size: number; fields: Record<string, number> }
      >();
      for (const l of lines) {
        if ("name" in l) cConsts.set(l.name, BigInt(l.value));
        else cStructs.set(l.struct, { size: l.size, fields: l.fields });
      }
      // Every constant of both sides exists on the other with one value.
      assertEquals([...cConsts.keys()].sort(), Object.keys(CONSTANTS).sort());
      for (const [name, v] of cConsts) assertEquals(CONSTANTS[name], v, name);
      // Every struct: size, the set of fields and each offset.
      assertEquals(
        [...cStructs.keys()].sort(),
        LAYOUTS.map((l) => l.name).sort(),
      );
      for (const l of LAYOUTS) {
        const c = cStructs.get(l.name)!;
        assertEquals(l.size, c.size, `${l.name} size`);
        const ts = Object.fromEntries(
          Object.entries(l.fields).map(([k, f]) => [k, f.offset]),
        );
        assertEquals(ts, c.fields, `${l.name} offsets`);
        // Field widths: each field ends where the next begins (or at the
        // end of the struct), so no TS type is wider or narrower than C's.
        const sorted = Object.entries(l.fields).sort((a, b) =>
          a[1].offset - b[1].offset
        );
        sorted.forEach(([k, f], i) => {
          const end = i + 1 < sorted.length ? sorted[i + 1][1].offset : l.size;
          assertEquals(
            end - f.offset,
            f.type === "u64" ? 8 : 4,
            `${l.name}.${k} width`,
          );
        });
      }
    } finally {
      Deno.removeSync(bin);
    }
  },
});
