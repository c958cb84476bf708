/**
 * The module client's errors on a host without the module, against real
 * device files: no device is "not loaded" (exit 6), and a device that
 * does not answer the handshake is a mismatch (exit 7), never a crash.
 */
import {
  deepStrictEqual as assertEquals,
  ok as assert,
} from "node:assert/strict";
import { ErrorKind, MergememError } from "../../src/errors.ts";
import { openModule } from "../../src/kmod/client.ts";
import { hintOf } from "../../src/cli/hints.ts";

function failure(fn: () => unknown): MergememError {
  try {
    fn();
  } catch (err) {
    if (err instanceof MergememError) return err;
    throw err;
  }
  throw new Error("expected a MergememError");
}

Deno.test("a missing device is 'module not loaded' with an install hint", () => {
  const e = failure(() => openModule({ path: "/dev/mergemem-absent" }));
  assertEquals(e.kind, ErrorKind.NoModule);
  assert(/not loaded/.test(e.message), e.message);
  const hint = hintOf(e);
  assert(hint && /install\.sh/.test(hint), hint);
});

Deno.test("a device that does not speak the handshake is a mismatch", () => {
  // /dev/null answers every ioctl with ENOTTY.
  const e = failure(() => openModule({ path: "/dev/null" }));
  assertEquals(e.kind, ErrorKind.ModuleMismatch);
  assert(/handshake/.test(e.message), e.message);
});
