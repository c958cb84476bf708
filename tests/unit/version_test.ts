/** The version is written once for the tool and once for the module. */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { VERSION } from "../../src/version.ts";

Deno.test("the tool's and the DKMS package's versions agree", () => {
  const conf = Deno.readTextFileSync(
    new URL("../../kmod/dkms.conf", import.meta.url),
  );
  const m = /^PACKAGE_VERSION="?([^"\n]+)"?$/m.exec(conf);
  assertEquals(m?.[1], VERSION);
  assertEquals(/^\d+\.\d+\.\d+$/.test(VERSION), true);
});
