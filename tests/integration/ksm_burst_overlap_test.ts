/**
 * One burst at a time, and recovery after a crash, on the host's real KSM
 * (needs root): bursts of separate processes that overlap end with the
 * original settings; a burst killed with SIGKILL leaves its journal, and
 * `mergemem status` (or the next burst) restores the settings from it.
 *
 * Every test puts the host's settings back, whatever happens.
 */
import {
  deepStrictEqual as assertEquals,
  ok as assert,
} from "node:assert/strict";
import { journalPath, readJournal, RUN_DIR } from "../../src/ksm/journal.ts";
import { lockPath } from "../../src/ksm/lock.ts";
import { runBurst } from "../../src/ksm/burst.ts";
import { ksmFile, ksmUsable, setKsm } from "../helpers/ksm_sysfs.ts";
import { skipIf } from "../helpers/skip.ts";

const skip = {
  "no usable KSM (needs root and /sys/kernel/mm/ksm)": !ksmUsable(),
};

const root = new URL("../../", import.meta.url).pathname;
const childScript = `${root}tests/integration/ksm_burst_child.ts`;

/** The settings a burst changes, those this kernel has. */
const KNOBS = [
  "run",
  "pages_to_scan",
  "sleep_millisecs",
  "smart_scan",
  "advisor_mode",
].filter((k) => {
  try {
    ksmFile(k);
    return true;
  } catch {
    return false;
  }
});

function snapshot(): Record<string, string> {
  return Object.fromEntries(
    KNOBS.map((k) => [k, ksmFile(k).replace(/.*\[(.*)\].*/, "$1")]),
  );
}

/** Puts settings back by hand (advisor off while writing the rate). */
function putBack(s: Record<string, string>) {
  if ("advisor_mode" in s) setKsm("advisor_mode", "none");
  setKsm("pages_to_scan", s.pages_to_scan);
  setKsm("sleep_millisecs", s.sleep_millisecs);
  if ("smart_scan" in s) setKsm("smart_scan", s.smart_scan);
  if ("advisor_mode" in s) setKsm("advisor_mode", s.advisor_mode);
  setKsm("run", s.run);
}

/** Distinctive "original" settings, so that a wrong restore shows. */
const ORIG: Record<string, string> = Object.fromEntries(
  Object.entries({
    run: "0",
    pages_to_scan: "123",
    sleep_millisecs: "37",
    smart_scan: "1",
    advisor_mode: "none",
  }).filter(([k]) => KNOBS.includes(k)),
);

/**
 * A burst child process with a line reader. With `held`, its burst ends
 * (target reached) only when {@link tell} is called.
 */
function child(timeoutMs: number, name: string, held = false) {
  const proc = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      childScript,
      String(timeoutMs),
      name,
      ...(held ? ["stdin"] : []),
    ],
    stdin: held ? "piped" : "null",
    stdout: "piped",
  }).spawn();
  const reader = proc.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let out = "";
  return {
    pid: proc.pid,
    proc,
    /** Ends a held burst: its target is then reached. */
    async tell() {
      if (held) await proc.stdin.close().catch(() => {});
    },
    /** Reads until `text` appears (or the child ends); returns all output. */
    async until(text: string): Promise<string> {
      while (!out.includes(text)) {
        const { value, done } = await reader.read();
        if (done) break;
        out += value;
      }
      return out;
    },
    async end(): Promise<{ code: number; out: string }> {
      await this.until("\u0000"); // to EOF
      const st = await proc.status;
      return { code: st.code, out };
    },
    result(): { settingsBefore: Record<string, string>; ended: string } {
      const line = out.split("\n").find((l) => l.startsWith("result "));
      if (!line) throw new Error(`no result in: ${out}`);
      return JSON.parse(line.slice(7));
    },
    async kill() {
      try {
        proc.kill("SIGKILL");
      } catch {
        // gone
      }
      await this.tell();
      await this.end();
    },
  };
}

function withHostKsm(fn: () => Promise<void>): () => Promise<void> {
  return async () => {
    const host = snapshot();
    try {
      putBack(ORIG);
      assertEquals(snapshot(), ORIG);
      await fn();
    } finally {
      putBack(host);
    }
  };
}

Deno.test({
  ...skipIf(
    "two library bursts in two processes overlap: original settings",
    skip,
  ),
  sanitizeResources: false,
  sanitizeOps: false,
  fn: withHostKsm(async () => {
    // A bursts until told to stop, which the test does only once B has
    // said that it waits for A: the bursts overlap on a machine of any
    // speed.
    const a = child(600_000, "burst A", true);
    assert((await a.until("bursting")).includes("bursting"));
    // B starts while A bursts, waits for A, then bursts itself.
    const b = child(300, "burst B");
    try {
      const outB = await b.until("wait: ");
      assert(
        outB.includes(
          `wait: waiting for pid ${a.pid} (burst A) holding ${lockPath()}`,
        ),
        outB,
      );
      await a.tell();
      const ra = await a.end();
      const rb = await b.end();
      assertEquals(ra.code, 0, ra.out);
      assertEquals(rb.code, 0, rb.out);
      assertEquals(a.result().ended, "target");
      assertEquals(b.result().ended, "timeout");
      // B saw the original settings, not A's burst settings.
      for (const [k, v] of Object.entries(ORIG)) {
        assertEquals(a.result().settingsBefore[k], v, k);
        assertEquals(b.result().settingsBefore[k], v, k);
      }
      assertEquals(snapshot(), ORIG);
      assertEquals(readJournal(), undefined);
    } finally {
      await a.kill();
      await b.kill();
    }
  }),
});

/** Starts a burst child, checks it changed the settings, kills it -9. */
async function killedBurst(): Promise<number> {
  const c = child(60000, "burst to kill");
  try {
    await c.until("bursting");
    assertEquals(ksmFile("run"), "1");
    assertEquals(ksmFile("pages_to_scan"), "10000");
    if ("smart_scan" in ORIG) assertEquals(ksmFile("smart_scan"), "0");
    const j = readJournal()!;
    assertEquals(j.pid, c.pid);
    assertEquals(j.command, "burst to kill");
    assertEquals(j.settings, ORIG);
  } finally {
    await c.kill();
  }
  // Killed: nothing restored, the journal stays.
  assertEquals(ksmFile("run"), "1");
  assertEquals(ksmFile("sleep_millisecs"), "0");
  assertEquals(readJournal()?.pid, c.pid);
  return c.pid;
}

Deno.test({
  ...skipIf(
    "kill -9 mid-burst, then `mergemem status` restores the settings",
    skip,
  ),
  sanitizeResources: false,
  sanitizeOps: false,
  fn: withHostKsm(async () => {
    const pid = await killedBurst();
    const st = await new Deno.Command(Deno.execPath(), {
      args: ["run", "-A", `${root}main.ts`, "status", "--json"],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const stderr = new TextDecoder().decode(st.stderr);
    assertEquals(st.code, 0, stderr);
    const r = JSON.parse(new TextDecoder().decode(st.stdout));
    assertEquals(r.journal.state, "restored");
    assertEquals(r.journal.owner_pid, pid);
    assertEquals(r.journal.owner_command, "burst to kill");
    assertEquals(r.journal.settings, ORIG);
    assertEquals(r.journal.restore_mismatch, {});
    assertEquals(r.warnings.length, 1);
    assert(
      r.warnings[0].startsWith(
        `restored ksmd settings left by pid ${pid} (burst to kill)`,
      ),
      r.warnings[0],
    );
    assert(stderr.includes(`mergemem: warning: ${r.warnings[0]}`), stderr);
    // The report shows the restored settings, and so does sysfs.
    for (const [k, v] of Object.entries(ORIG)) {
      assertEquals(r.ksm.settings[k], v, k);
    }
    assertEquals(snapshot(), ORIG);
    assertEquals(readJournal(), undefined);
  }),
});

Deno.test({
  ...skipIf(
    "kill -9 mid-burst, then the next library burst restores first",
    skip,
  ),
  sanitizeResources: false,
  sanitizeOps: false,
  fn: withHostKsm(async () => {
    const pid = await killedBurst();
    const r = await runBurst({ progress: () => 0, timeoutMs: 200 });
    assertEquals(r.warnings.length, 1);
    assert(r.warnings[0].includes(`left by pid ${pid}`), r.warnings[0]);
    // The burst saw the original settings, not the dead burst's.
    for (const [k, v] of Object.entries(ORIG)) {
      assertEquals(r.settingsBefore[k], v, k);
    }
    assertEquals(snapshot(), ORIG);
    assertEquals(readJournal(), undefined);
  }),
});

Deno.test({
  ...skipIf(
    "a burst restores advisor_mode=scan-time (the advisor owns the rate)",
    {
      ...skip,
      "no advisor_mode in /sys/kernel/mm/ksm": !KNOBS.includes("advisor_mode"),
    },
  ),
  sanitizeResources: false,
  sanitizeOps: false,
  fn: withHostKsm(async () => {
    setKsm("advisor_mode", "scan-time");
    const before = snapshot();
    const r = await runBurst({ progress: () => 0, timeoutMs: 200 });
    assertEquals(r.settingsBefore.advisor_mode, "scan-time");
    assertEquals(r.restoreMismatch, {});
    assertEquals(snapshot().advisor_mode, "scan-time");
    assertEquals(snapshot().run, before.run);
    assertEquals(snapshot().sleep_millisecs, before.sleep_millisecs);
    assertEquals(snapshot().smart_scan, before.smart_scan);
  }),
});

Deno.test({
  ...skipIf("the journal and lock live in /run/mergemem", skip),
  fn() {
    assertEquals(RUN_DIR, "/run/mergemem");
    assertEquals(journalPath(), "/run/mergemem/journal.json");
    assertEquals(lockPath(), "/run/mergemem/lock");
  },
});
