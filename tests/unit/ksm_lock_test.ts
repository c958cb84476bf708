/**
 * The KSM lock (src/ksm/lock.ts) on a temporary run directory: real
 * flock(2) between processes and between call chains of one process.
 */
import {
  deepStrictEqual as assertEquals,
  ok as assert,
  rejects,
} from "node:assert/strict";
import {
  holdsKsmLock,
  ifKsmLockFree,
  lockPath,
  readLockHolder,
  withKsmLock,
} from "../../src/ksm/lock.ts";
import { journalPath, readJournal } from "../../src/ksm/journal.ts";
import { exitCodeOf } from "../../src/cli/exit_codes.ts";
import { ErrorKind, MergememError } from "../../src/errors.ts";
import { waitUntil } from "../helpers/wait.ts";
import { tempDir } from "../helpers/temp.ts";

const holderScript = new URL("../helpers/ksm_lock_holder.ts", import.meta.url)
  .pathname;

/** Starts a process that holds the lock of runDir; resolves once it does. */
async function holder(runDir: string) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", holderScript, runDir],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream())
    .getReader();
  let out = "";
  while (!out.includes("held")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`holder exited: ${out}`);
    out += value;
  }
  return {
    pid: child.pid,
    async release() {
      await child.stdin.close();
      reader.cancel().catch(() => {});
      await child.status;
    },
    async kill() {
      child.kill("SIGKILL");
      await child.stdin.close().catch(() => {});
      reader.cancel().catch(() => {});
      await child.status;
    },
  };
}

Deno.test("the lock file is 0600 in a 0755 directory", async () => {
  const runDir = tempDir() + "/mergemem";
  await withKsmLock({ runDir }, (held) => {
    assertEquals(held.path, lockPath(runDir));
    assertEquals(held.nested, false);
    assertEquals(held.warnings, []);
    assert(holdsKsmLock());
  });
  assert(!holdsKsmLock());
  assertEquals(Deno.statSync(runDir).mode! & 0o777, 0o755);
  assertEquals(Deno.statSync(lockPath(runDir)).mode! & 0o777, 0o600);
});

Deno.test("nested use in one call chain does not wait", async () => {
  const runDir = tempDir();
  let waited = 0;
  const r = await withKsmLock(
    { runDir, lockTimeoutSeconds: 0, onLockWait: () => waited++ },
    async () => {
      await new Promise((res) => setTimeout(res, 5));
      return await withKsmLock(
        { runDir, lockTimeoutSeconds: 0, onLockWait: () => waited++ },
        (held) => {
          assertEquals(held.nested, true);
          // ifKsmLockFree runs at once inside the holder's chain.
          return ifKsmLockFree(() => "inner", runDir)!.value;
        },
      );
    },
  );
  assertEquals(r, "inner");
  assertEquals(waited, 0);
});

Deno.test("two call chains of one process exclude each other", async () => {
  const runDir = tempDir();
  const events: string[] = [];
  const notices: string[] = [];
  const task = (name: string) =>
    withKsmLock({
      runDir,
      lockHolder: `task ${name}`,
      onLockWait: (n) => notices.push(n),
    }, async () => {
      events.push(`${name} in`);
      await new Promise((res) => setTimeout(res, 300));
      events.push(`${name} out`);
    });
  await Promise.all([task("a"), task("b")]);
  assertEquals(events, ["a in", "a out", "b in", "b out"]);
  assertEquals(notices.length, 1);
  assertEquals(
    notices[0],
    `waiting for pid ${Deno.pid} (task a) holding ${
      lockPath(runDir)
    } (up to 300 s)`,
  );
});

Deno.test("another process's lock: notice, then LockBusy after the timeout", async () => {
  const runDir = tempDir();
  const h = await holder(runDir);
  try {
    assertEquals(readLockHolder(runDir)?.pid, h.pid);
    assertEquals(readLockHolder(runDir)?.command, "lock holder test");
    assertEquals(ifKsmLockFree(() => 1, runDir), undefined);
    const notices: string[] = [];
    let ran = false;
    await rejects(
      withKsmLock({
        runDir,
        lockTimeoutSeconds: 0.5,
        onLockWait: (n) => notices.push(n),
      }, () => {
        ran = true;
      }),
      (err: unknown) => {
        assert(err instanceof MergememError);
        assertEquals(err.kind, ErrorKind.LockBusy);
        assertEquals(exitCodeOf(err.kind), 11);
        assertEquals(
          err.message,
          `gave up after 0.5 s waiting for pid ${h.pid} (lock holder test) ` +
            `holding ${lockPath(runDir)}; nothing was changed`,
        );
        return true;
      },
    );
    assertEquals(ran, false);
    assertEquals(notices, [
      `waiting for pid ${h.pid} (lock holder test) holding ${
        lockPath(runDir)
      } (up to 0.5 s)`,
    ]);
  } finally {
    await h.kill();
  }
  // The kernel dropped the dead holder's lock: no waiting at all.
  assertEquals(
    await withKsmLock({ runDir, lockTimeoutSeconds: 0 }, () => 7),
    7,
  );
});

Deno.test("a waiter gets the lock when the holder releases it", async () => {
  const runDir = tempDir();
  const h = await holder(runDir);
  const notices: string[] = [];
  const waiting = withKsmLock(
    { runDir, lockTimeoutSeconds: 60, onLockWait: (n) => notices.push(n) },
    () => readLockHolder(runDir)?.pid,
  );
  // Released only once the waiter has found the lock busy and said so.
  await waitUntil(
    () => notices.length > 0,
    "the waiter reports waiting for the holder",
  );
  await h.release();
  assertEquals(await waiting, Deno.pid);
  assertEquals(notices.length, 1);
  // Released: the lock file names nobody.
  assertEquals(readLockHolder(runDir), undefined);
});

Deno.test("an abort signal stops the wait", async () => {
  const runDir = tempDir();
  const h = await holder(runDir);
  try {
    const ac = new AbortController();
    setTimeout(() => ac.abort("SIGINT"), 200);
    await rejects(
      withKsmLock({ runDir, signal: ac.signal }, () => {}),
      (err: unknown) =>
        err instanceof MergememError &&
        err.kind === ErrorKind.Interrupted &&
        err.message.includes("SIGINT while waiting for the KSM lock"),
    );
  } finally {
    await h.kill();
  }
});

Deno.test("taking the lock restores a dead burst's journal first", async () => {
  const runDir = tempDir();
  const ksm = tempDir();
  for (const [k, v] of Object.entries({ run: "1", pages_to_scan: "10000" })) {
    Deno.writeTextFileSync(`${ksm}/${k}`, v + "\n");
  }
  const dead = new Deno.Command("true").spawn();
  await dead.status;
  Deno.writeTextFileSync(
    journalPath(runDir),
    JSON.stringify({
      schema: "mergemem.journal/1",
      pid: dead.pid,
      start_time: "1",
      command: "mergemem merge",
      created: "2026-01-01T00:00:00.000Z",
      ksm_dir: ksm,
      settings: { run: "0", pages_to_scan: "100" },
    }),
  );
  const warnings = await withKsmLock({ runDir }, (held) => {
    // Restored before the caller runs.
    assertEquals(Deno.readTextFileSync(`${ksm}/run`).trim(), "0");
    assertEquals(held.recovered?.owner_pid, dead.pid);
    return held.warnings;
  });
  assertEquals(warnings.length, 1);
  assert(
    warnings[0].startsWith(
      `restored ksmd settings left by pid ${dead.pid} (mergemem merge)`,
    ),
    warnings[0],
  );
  assertEquals(Deno.readTextFileSync(`${ksm}/pages_to_scan`).trim(), "100");
  assertEquals(readJournal(runDir), undefined);
});
