/**
 * errno() reads the thread's errno without a call of its own, from the
 * first read on (src/ffi/libc.ts): a fresh process's very first errno()
 * after a failed call must see that call's errno, and it must not look
 * errno up then (a lookup may allocate, and an allocation may run the
 * runtime's own system calls, which overwrite errno). Importing the
 * library needs no --allow-ffi.
 */
import { deepStrictEqual as eq } from "node:assert/strict";

const LIBC = new URL("../../src/ffi/libc.ts", import.meta.url).href;
const MOD = new URL("../../src/mod.ts", import.meta.url).href;

/** Runs `src` as a module in a fresh Deno with `perms`; its result. */
async function fresh(src: string, perms: string[] = ["-A"]) {
  const dir = Deno.makeTempDirSync({ prefix: "mergemem-errno-" });
  try {
    const file = `${dir}/main.ts`;
    Deno.writeTextFileSync(file, src);
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["run", "--no-config", "--no-lock", "--no-prompt", ...perms, file],
      stdout: "piped",
      stderr: "piped",
      env: { DENO_NO_UPDATE_CHECK: "1" },
    }).output();
    const text = (b: Uint8Array) => new TextDecoder().decode(b).trim();
    return {
      code: out.code,
      stdout: text(out.stdout),
      stderr: text(out.stderr),
    };
  } finally {
    Deno.removeSync(dir, { recursive: true });
  }
}

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
  {
    // The first errno() may not look errno up: both ways to do so (the
    // libc call and the view over its result) throw here. errno() that
    // found its address only on its first read (6e2639c) fails.
    name: "the first read makes no call and builds no view",
    code: `
      const l = lib();
      l.__errno_location = () => {
        throw new Error("errno() called __errno_location");
      };
      Deno.UnsafePointerView = class {
        constructor() {
          throw new Error("errno() built an UnsafePointerView");
        }
      } as unknown as typeof Deno.UnsafePointerView;
      l.flock(987654, 2);
      console.log(errnoName(errno()));`,
    want: "EBADF",
  },
];

for (const c of CASES) {
  Deno.test(`errno: first read in a fresh process: ${c.name}`, async () => {
    const r = await fresh(
      `import { errno, errnoName, lib } from "${LIBC}";\n${c.code}`,
    );
    eq({ code: r.code, out: r.stdout }, { code: 0, out: c.want }, r.stderr);
  });
}

Deno.test("importing the library needs no --allow-ffi (nothing is opened)", async () => {
  const r = await fresh(
    `import { status } from "${MOD}";\nconsole.log(typeof status);`,
    [],
  );
  eq({ code: r.code, out: r.stdout }, { code: 0, out: "function" }, r.stderr);
});

Deno.test("one errno table: libc's errnoName is errors.ts's, also for Deno's '(os error N)'", async () => {
  const libc = await import("../../src/ffi/libc.ts");
  const errors = await import("../../src/errors.ts");
  eq(libc.errnoName, errors.errnoName);
  eq(errors.errnoName(9), "EBADF");
  eq(errors.errnoName(4242), "errno 4242");
  // Numbers only the libc side used to know.
  eq(errors.errnoCode(new Error("read failed (os error 9)")), "EBADF");
  eq(errors.errnoCode(new Error("ioctl failed (os error 25)")), "ENOTTY");
});
