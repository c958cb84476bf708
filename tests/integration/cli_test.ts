/**
 * The command line as a user meets it: real processes, the real binary
 * entry point (main.ts), documented exit codes, one-line errors and never
 * a stack trace. Run as root (one test drops to the test user).
 */
import {
  deepStrictEqual as assertEquals,
  ok as assert,
} from "node:assert/strict";
import { assertCleanError } from "../helpers/assert.ts";
import { SCAN_SCHEMA } from "../../src/scan/result.ts";
import { denoRunAs, testUser, type User } from "../helpers/run_as.ts";
import { startWorker } from "../helpers/workers.ts";
import { procState, waitUntil } from "../helpers/wait.ts";

const MAIN = new URL("../../main.ts", import.meta.url).pathname;

interface Run {
  code: number;
  stdout: string;
  stderr: string;
}

/** Runs `mergemem ARGS`, optionally as another user. */
async function mergemem(args: string[], user?: User): Promise<Run> {
  const out = await denoRunAs(user, MAIN, args).output();
  const dec = new TextDecoder();
  return {
    code: out.code,
    stdout: dec.decode(out.stdout),
    stderr: dec.decode(out.stderr),
  };
}

Deno.test("usage errors exit 2 with one line", async () => {
  assertCleanError(await mergemem(["scan", "--bogus"]), 2, /bogus/);
  assertCleanError(await mergemem(["scan", "--pid", "12x"]), 2, /--pid/);
  assertCleanError(
    await mergemem(["scan", "--checksum", "md5"]),
    2,
    /--checksum/,
  );
  assertCleanError(
    await mergemem(["scan", "--comm", "a-name-longer-than-15"]),
    2,
    /--comm/,
  );
  assertCleanError(await mergemem(["frobnicate"]), 2, /unknown command/);
  assertCleanError(
    await mergemem(["scan", "--backend", "kernel", "--checksum", "crc32"]),
    2,
    /xxh64/,
  );
  // A bad option is reported before the selection is looked at (a name
  // that matches nothing would otherwise say exit 3).
  for (
    const [cmd, opt] of [["merge", "--trust-domain"], ["unmerge", "--engine"]]
  ) {
    assertCleanError(
      await mergemem([cmd, opt, "bogus", "--comm", "no-such-prog"]),
      2,
      new RegExp(opt),
    );
  }
});

Deno.test("every command: an unknown flag is one error line, exit 2", async () => {
  for (const cmd of ["scan", "merge", "unmerge", "status"]) {
    const r = await mergemem([cmd, "--frobnicate"]);
    assertCleanError(r, 2, /^mergemem: error: Unknown option '--frobnicate'$/m);
    assertEquals(r.stdout, "", cmd);
    assertEquals(r.stderr.match(/error:/g)?.length, 1, `${cmd}: ${r.stderr}`);
  }
  // status takes its optional PATH by hand: a flag there is still checked.
  assertCleanError(
    await mergemem(["status", "--prometheus", "-x"]),
    2,
    /Unknown option '-x'/,
  );
  // With --json stdout is one JSON document, so the metrics need a PATH.
  assertCleanError(
    await mergemem(["status", "--json", "--prometheus"]),
    2,
    /needs a PATH/,
  );
});

Deno.test("--help and --version exit 0", async () => {
  const v = await mergemem(["--version"]);
  assertEquals(v.code, 0);
  assert(/^mergemem \d+\.\d+\.\d+/.test(v.stdout));
  for (const cmd of ["scan", "merge", "unmerge", "status"]) {
    const h = await mergemem([cmd, "--help"]);
    assertEquals(h.code, 0, cmd);
    assert(h.stdout.includes("Usage: mergemem " + cmd), cmd);
  }
  // --help answers before other values are checked.
  const h = await mergemem(["scan", "--top", "0", "--help"]);
  assertEquals(h.code, 0, h.stderr);
  assert(h.stdout.includes("Usage: mergemem scan"));
});

Deno.test("status --prometheus without PATH prints the metrics", async () => {
  const r = await mergemem(["status", "--prometheus"]);
  assertEquals(r.code, 0, r.stderr);
  assert(/^# HELP mergemem_/m.test(r.stdout), r.stdout);
  assert(!/^module:/m.test(r.stdout), "no human report besides");
});

Deno.test("nothing matched or nothing left exits 3", async () => {
  assertCleanError(
    await mergemem(["scan", "--comm", "no-such-comm-x"]),
    3,
    /no process matched/,
  );
  // A pid that cannot exist (above any pid_max in use here).
  assertCleanError(
    await mergemem(["scan", "--pid", "4194000"]),
    3,
    /^mergemem: error: process 4194000 does not exist \(or exited\)$/m,
  );
});

/**
 * Runs `fn` with the pid of a real zombie: a shell forks `sleep 0`, then
 * execs `sleep 3600` (killed at the end), which never reaps its inherited
 * child.
 */
async function withZombie(fn: (pid: number) => Promise<void>): Promise<void> {
  const parent = new Deno.Command("sh", {
    args: ["-c", "sleep 0 & exec sleep 3600"],
  }).spawn();
  try {
    let zombie: number | undefined;
    // Until the shell has exec'd, its child may still be running.
    await waitUntil(() => {
      const tasks = `/proc/${parent.pid}/task`;
      const children = [...Deno.readDirSync(tasks)].flatMap((t) =>
        Deno.readTextFileSync(`${tasks}/${t.name}/children`).trim().split(/\s+/)
      ).filter((c) => c !== "").map(Number);
      zombie = children.find((c) => procState(c) === "Z");
      return zombie !== undefined;
    }, `a child of pid ${parent.pid} (sh, then sleep) is a zombie`);
    await fn(zombie!);
  } finally {
    parent.kill();
    await parent.status;
  }
}

Deno.test("a named zombie is said to be one, exit 3", async () => {
  await withZombie(async (pid) => {
    for (const cmd of ["scan", "merge"]) {
      const r = await mergemem([cmd, "--pid", String(pid)]);
      assertCleanError(
        r,
        3,
        new RegExp(
          `^mergemem: error: process ${pid} is a zombie \\(exited, not yet reaped\\)$`,
          "m",
        ),
      );
      assertEquals(r.stdout, "", cmd);
    }
  });
});

Deno.test("a partial scan warns and exits 0, or 5 with --strict", async () => {
  const w = await startWorker({ dup: 4, unique: 2 });
  try {
    const ok = await mergemem(["scan", "--pid", `${w.pid},4194000`]);
    assertEquals(ok.code, 0, ok.stderr);
    assert(/warning: 1 process\(es\) skipped: 4194000: ESRCH/.test(ok.stderr));
    const strict = await mergemem([
      "scan",
      "--pid",
      `${w.pid},4194000`,
      "--strict",
    ]);
    assertEquals(strict.code, 5);
  } finally {
    await w.stop();
  }
});

Deno.test("scanning only root's processes as a user exits 4", async () => {
  const user = await testUser();
  const r = await mergemem(["scan", "--pid", "1"], user);
  assertCleanError(r, 4, /permission denied/);
});

Deno.test("scan --json is the mergemem.scan/1 document with exact counts", async () => {
  const a = await startWorker({ dup: 4, unique: 3 });
  const b = await startWorker({ dup: 4, unique: 3 });
  try {
    const r = await mergemem(["scan", "--pid", `${a.pid},${b.pid}`, "--json"]);
    assertEquals(r.code, 0, r.stderr);
    const doc = JSON.parse(r.stdout);
    assertEquals(doc.schema, SCAN_SCHEMA);
    assertEquals(doc.totals.processes, 2);
    const region = (pid: number) =>
      doc.processes.find((p: { pid: number }) => p.pid === pid).mappings
        .find((m: { start: string }) => m.start === a.addr);
    // Each worker holds 4 copies of one page and 3 unique pages: together
    // 8 frames of one content (7 saveable) and 6 unique frames.
    const ra = region(a.pid), rb = region(b.pid);
    assertEquals(ra.pages_present + rb.pages_present, 14);
    assertEquals(ra.pages_duplicate + rb.pages_duplicate, 8);
    assertEquals(ra.saveable_pages + rb.saveable_pages, 7);
  } finally {
    await a.stop();
    await b.stop();
  }
});

Deno.test("the table output names the workers and sizes", async () => {
  const a = await startWorker({ dup: 4 });
  try {
    const r = await mergemem(["scan", "--pid", String(a.pid)]);
    assertEquals(r.code, 0, r.stderr);
    assert(r.stdout.includes("By process"));
    assert(r.stdout.includes(String(a.pid)));
    assert(!r.stdout.includes("\x1b["), "no colour when not a terminal");
  } finally {
    await a.stop();
  }
});

Deno.test("a user with no processes of their own gets exit 3 and a hint", async () => {
  const user = await testUser();
  const r = await mergemem(["scan"], user);
  assertCleanError(r, 3, /no process matched[\s\S]*try sudo/);
  assertEquals(r.stdout, "", "no report before the error");
});
