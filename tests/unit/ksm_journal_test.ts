/**
 * The burst journal (src/ksm/journal.ts) and status()'s repair of it, on
 * a temporary run directory and a fixture KSM directory: owners told
 * apart by pid and start time, atomic writes, restore of a dead owner's
 * settings.
 */
import {
  deepStrictEqual as assertEquals,
  ok as assert,
} from "node:assert/strict";
import {
  journalOwnerAlive,
  journalPath,
  type KsmJournal,
  processStartTime,
  readJournal,
  recoverJournal,
  removeJournal,
  writeJournal,
} from "../../src/ksm/journal.ts";
import { checkJournal, type JournalStatus } from "../../src/status/status.ts";
import { journalHintLine } from "../../src/cli/hints.ts";
import { denoRunAs, testUser } from "../helpers/run_as.ts";
import { skipIf } from "../helpers/skip.ts";
import { tempDir } from "../helpers/temp.ts";

/** A writable stand-in for /sys/kernel/mm/ksm. */
function ksmFixture(values: Record<string, string>): string {
  const dir = tempDir({ prefix: "ksm_fixture_" });
  for (const [k, v] of Object.entries(values)) {
    Deno.writeTextFileSync(`${dir}/${k}`, v + "\n");
  }
  return dir;
}

function read(dir: string, k: string): string {
  return Deno.readTextFileSync(`${dir}/${k}`).trim();
}

/** A process that exists for the test's duration. */
function sleeper(): Deno.ChildProcess {
  return new Deno.Command("sleep", { args: ["60"] }).spawn();
}

/** A pid that is not running: a child that exited and was reaped. */
async function deadPid(): Promise<number> {
  const c = new Deno.Command("true").spawn();
  await c.status;
  return c.pid;
}

const BURST = {
  run: "1",
  pages_to_scan: "10000",
  sleep_millisecs: "0",
  smart_scan: "0",
  advisor_mode: "none",
};
const ORIG = {
  run: "0",
  pages_to_scan: "123",
  sleep_millisecs: "37",
  smart_scan: "1",
  advisor_mode: "none",
};

Deno.test("processStartTime reads field 22 of /proc/PID/stat", () => {
  assert(/^\d+$/.test(processStartTime(Deno.pid)!));
  assertEquals(processStartTime(Deno.pid, "/nonexistent"), undefined);
});

Deno.test("writeJournal is atomic JSON naming this process", () => {
  const runDir = tempDir() + "/run";
  const ksm = ksmFixture(ORIG);
  const j = writeJournal(
    { ...ORIG, max_page_sharing: "256" },
    { runDir, ksmDir: ksm, command: "test" },
  );
  assertEquals(Deno.statSync(runDir).mode! & 0o777, 0o755);
  assertEquals(readJournal(runDir), j);
  assertEquals(j.pid, Deno.pid);
  assertEquals(j.start_time, processStartTime(Deno.pid));
  // Only the settings a burst changes.
  assertEquals(j.settings, ORIG);
  assertEquals([...Deno.readDirSync(runDir)].map((e) => e.name), [
    "journal.json",
  ]);
  assert(journalOwnerAlive(j));
  removeJournal(runDir);
  assertEquals(readJournal(runDir), undefined);
  removeJournal(runDir); // twice is fine
});

/** Writes a journal as another process would have. */
function foreignJournal(
  runDir: string,
  ksm: string,
  pid: number,
  startTime: string,
): KsmJournal {
  const j: KsmJournal = {
    schema: "mergemem.journal/1",
    pid,
    start_time: startTime,
    command: "mergemem merge",
    created: "2026-01-01T00:00:00.000Z",
    ksm_dir: ksm,
    settings: ORIG,
  };
  Deno.mkdirSync(runDir, { recursive: true });
  Deno.writeTextFileSync(journalPath(runDir), JSON.stringify(j));
  return j;
}

Deno.test("recoverJournal restores a dead owner's settings", async () => {
  const runDir = tempDir();
  const ksm = ksmFixture(BURST);
  const pid = await deadPid();
  foreignJournal(runDir, ksm, pid, "12345");
  const r = recoverJournal(runDir)!;
  assertEquals(r.owner_pid, pid);
  assertEquals(r.restore_mismatch, {});
  assert(r.message.includes(`pid ${pid} (mergemem merge)`), r.message);
  for (const [k, v] of Object.entries(ORIG)) assertEquals(read(ksm, k), v);
  assertEquals(readJournal(runDir), undefined);
  assertEquals(recoverJournal(runDir), undefined);
});

Deno.test("recoverJournal leaves a live owner's journal alone", () => {
  const runDir = tempDir();
  const ksm = ksmFixture(BURST);
  const s = sleeper();
  try {
    foreignJournal(runDir, ksm, s.pid, processStartTime(s.pid)!);
    assertEquals(recoverJournal(runDir), undefined);
    assertEquals(read(ksm, "run"), "1");
    assert(readJournal(runDir));
    const st = checkJournal(runDir)!;
    assertEquals(st.state, "active");
    assertEquals(st.owner_pid, s.pid);
    assertEquals(read(ksm, "pages_to_scan"), "10000");
  } finally {
    s.kill("SIGKILL");
  }
});

Deno.test("a reused pid is not the owner: start times differ", () => {
  const runDir = tempDir();
  const ksm = ksmFixture(BURST);
  const s = sleeper();
  try {
    const start = Number(processStartTime(s.pid));
    foreignJournal(runDir, ksm, s.pid, String(start - 1));
    const r = recoverJournal(runDir)!;
    assertEquals(r.owner_pid, s.pid);
    for (const [k, v] of Object.entries(ORIG)) assertEquals(read(ksm, k), v);
  } finally {
    s.kill("SIGKILL");
  }
});

Deno.test("status restores a dead owner's journal and says so", async () => {
  const runDir = tempDir();
  const ksm = ksmFixture(BURST);
  const pid = await deadPid();
  foreignJournal(runDir, ksm, pid, "1");
  const st = checkJournal(runDir)!;
  assertEquals(st.state, "restored");
  assertEquals(st.owner_pid, pid);
  assertEquals(st.settings, ORIG);
  assert(st.message.startsWith("restored ksmd settings"), st.message);
  for (const [k, v] of Object.entries(ORIG)) assertEquals(read(ksm, k), v);
  assertEquals(checkJournal(runDir), null);
});

const holderScript = new URL("../helpers/ksm_lock_holder.ts", import.meta.url)
  .pathname;

Deno.test("status leaves a dead owner's journal to the run holding the KSM lock: stale, lock-held", async () => {
  const runDir = tempDir();
  const ksm = ksmFixture(BURST);
  const holder = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", holderScript, runDir],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  try {
    const out = holder.stdout.pipeThrough(new TextDecoderStream()).getReader();
    assertEquals((await out.read()).value?.trim(), "held");
    out.releaseLock();
    foreignJournal(runDir, ksm, await deadPid(), "1");
    const st = checkJournal(runDir)!;
    assertEquals([st.state, st.stale_reason], ["stale", "lock-held"]);
    assert(st.message.endsWith("holds the KSM lock and restores them"));
    assertEquals(read(ksm, "run"), "1", "not restored here");
    // Nothing for the user to do: no hint.
    assertEquals(journalHintLine(st), undefined);
  } finally {
    await holder.stdin.close();
    await holder.stdout.cancel().catch(() => {});
    await holder.status;
    Deno.removeSync(runDir, { recursive: true });
    Deno.removeSync(ksm, { recursive: true });
  }
});

Deno.test({
  ...skipIf(
    "status without root leaves a dead owner's journal: stale, needs-root, " +
      "a message that names no command and the CLI's hint",
    { "not root (it runs the check as another user)": Deno.uid() !== 0 },
  ),
  async fn() {
    const runDir = tempDir();
    const ksm = ksmFixture(BURST);
    try {
      Deno.chmodSync(runDir, 0o755);
      foreignJournal(runDir, ksm, await deadPid(), "1");
      const script = new URL("../helpers/check_journal.ts", import.meta.url);
      const r = await denoRunAs(await testUser(), script.pathname, [runDir], {
        stdout: "piped",
        stderr: "piped",
      }).output();
      const err = new TextDecoder().decode(r.stderr);
      assertEquals(r.code, 0, err);
      const st: JournalStatus = JSON.parse(new TextDecoder().decode(r.stdout));
      assertEquals([st.state, st.stale_reason], ["stale", "needs-root"]);
      assert(st.message.endsWith("restoring them needs root"), st.message);
      // The owner's label aside, no command or flag to run.
      assert(!/'mergemem|--[a-z]/.test(st.message), st.message);
      assertEquals(read(ksm, "run"), "1", "not restored");
      assertEquals(
        journalHintLine(st),
        "mergemem: hint: run 'sudo mergemem status' to restore them " +
          "(a merge or unmerge as root does too)",
      );
    } finally {
      Deno.removeSync(runDir, { recursive: true });
      Deno.removeSync(ksm, { recursive: true });
    }
  },
});

Deno.test("an unreadable journal is removed with a warning", () => {
  const runDir = tempDir();
  Deno.writeTextFileSync(journalPath(runDir), "{not json");
  const r = recoverJournal(runDir)!;
  assert(r.message.includes("unreadable"), r.message);
  assertEquals(readJournal(runDir), undefined);
});
