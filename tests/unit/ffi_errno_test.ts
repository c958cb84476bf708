/**
 * errno() reads the thread's errno without a call of its own, from the
 * first read on (src/ffi/libc.ts): a fresh process's very first errno()
 * after a failed call must see that call's errno.
 */
import { deepStrictEqual as eq } from "node:assert/strict";

// Each case runs in a fresh Deno, so that errno() is read there for the
// first time right after the failed call.
const CASES: { name: string; code: string; want: string }[] = [
  {
    name: "EBADF from flock on a closed fd",
    code: "lib().flock(987654, 2); console.log(errnoName(errno()));",
    want: "EBADF",
  },
  {
    name: "EINVAL from flock with a bad operation",
    code: "lib().flock(0, 3); console.log(errnoName(errno()));",
    want: "EINVAL",
  },
];

for (const c of CASES) {
  Deno.test(`errno: first read in a fresh process: ${c.name}`, async () => {
    const libc = new URL("../../src/ffi/libc.ts", import.meta.url).href;
    const src = `import { errno, errnoName, lib } from "${libc}";\n${c.code}`;
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["eval", "--no-config", src],
      stdout: "piped",
      stderr: "inherit",
      env: { DENO_NO_UPDATE_CHECK: "1" },
    }).output();
    eq(out.code, 0);
    eq(new TextDecoder().decode(out.stdout).trim(), c.want);
  });
}
