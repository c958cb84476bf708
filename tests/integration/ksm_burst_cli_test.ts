/**
 * One burst at a time through the CLI on the host's real KSM (needs root
 * and gcc), marking with the ptrace engine (the host has no module): two
 * `mergemem merge` runs whose bursts overlap both merge their workers and
 * leave ksmd's settings as they were; `kill -9` of a merge mid-burst,
 * then `mergemem status`, restores them. The VM runs the same with the
 * module (tests/vm/guest/merge_overlap.ts).
 *
 * Every test puts the host's settings back, whatever happens.
 */
import {
  deepStrictEqual as assertEquals,
  ok as assert,
} from "node:assert/strict";
import { readJournal } from "../../src/ksm/journal.ts";
import { lockPath } from "../../src/ksm/lock.ts";
import { mergingPages } from "../../src/ksm/process.ts";
import { assertIntact } from "../helpers/assert.ts";
import { haveGcc } from "../helpers/gcc.ts";
import { ksmFile, ksmUsable, setKsm } from "../helpers/ksm_sysfs.ts";
import { startWorker, type Worker } from "../helpers/workers.ts";
import { hasExited, procState, waitUntil } from "../helpers/wait.ts";
import { skipIf } from "../helpers/skip.ts";

const skip = {
  "no usable KSM (needs root and /sys/kernel/mm/ksm)": !ksmUsable(),
  "no gcc": !haveGcc(),
};

const main = new URL("../../main.ts", import.meta.url).pathname;

const ORIG: Record<string, string> = {
  run: "0",
  pages_to_scan: "123",
  sleep_millisecs: "37",
  smart_scan: "1",
};
const KNOBS = Object.keys(ORIG).filter((k) => {
  try {
    ksmFile(k);
    return true;
  } catch {
    return false;
  }
});
function snapshot(): Record<string, string> {
  return Object.fromEntries(KNOBS.map((k) => [k, ksmFile(k)]));
}
function orig(): Record<string, string> {
  return Object.fromEntries(KNOBS.map((k) => [k, ORIG[k]]));
}
function putBack(s: Record<string, string>) {
  for (const k of ["pages_to_scan", "sleep_millisecs", "smart_scan", "run"]) {
    if (k in s) setKsm(k, s[k]);
  }
}

function withHostKsm(fn: () => Promise<void>): () => Promise<void> {
  return async () => {
    const host = snapshot();
    try {
      putBack(orig());
      await fn();
    } finally {
      putBack(host);
    }
  };
}

/** `mergemem ARGS` as a child process; its stderr is read as it comes. */
function mergemem(args: string[]) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", main, ...args],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let err = "";
  const stderr = (async () => {
    for await (const s of child.stderr.pipeThrough(new TextDecoderStream())) {
      err += s;
    }
  })();
  const stdout = new Response(child.stdout).text();
  return {
    child,
    /** Whether `text` has appeared on its stderr so far. */
    said: (text: string) => err.includes(text),
    async done() {
      const [st, out] = await Promise.all([child.status, stdout]);
      await stderr;
      return { code: st.code, signal: st.signal, out, err };
    },
  };
}

/**
 * Stops pid (SIGSTOP) while it bursts: it keeps the KSM lock and ksmd its
 * burst settings, and nothing it does can end the burst meanwhile. Fails
 * if its burst was over (or had not begun) once it stood still.
 */
async function holdBursting(pid: number): Promise<void> {
  await waitUntil(
    () => {
      assert(!hasExited(pid), `pid ${pid} exited before its burst`);
      return readJournal()?.pid === pid && ksmFile("run") === "1";
    },
    `pid ${pid} bursts (its journal written, run=1)`,
    300_000, // on a shared machine another mergemem may hold the KSM lock
    5,
  );
  Deno.kill(pid, "SIGSTOP");
  await waitUntil(
    () => procState(pid) === "T",
    `pid ${pid} is stopped (SIGSTOP)`,
  );
  assert(
    readJournal()?.pid === pid && ksmFile("run") === "1",
    `pid ${pid} still bursts once stopped`,
  );
}

async function workers(n: number, pages: number, seed: number) {
  const ws: Worker[] = [];
  for (let i = 0; i < n; i++) {
    ws.push(await startWorker({ common: pages, seed, uniqueApart: 100 }));
  }
  return ws;
}
const pids = (ws: Worker[]) => ws.map((w) => w.pid).join(",");

Deno.test({
  ...skipIf(
    "two CLI merges whose bursts overlap: both merge, original settings",
    skip,
  ),
  sanitizeResources: false,
  sanitizeOps: false,
  fn: withHostKsm(async () => {
    // A is stopped (SIGSTOP) in the middle of its burst until B says that
    // it waits for A's lock: the bursts overlap on a machine of any
    // speed. A's burst is long (4 x 256 MiB) so that it is still on when
    // the test stops it.
    const NA = 65536, NB = 1000;
    const a = await workers(4, NA, 31);
    const b = await workers(2, NB, 32);
    try {
      const ma = mergemem([
        "merge",
        "--pid",
        pids(a),
        "--engine",
        "ptrace",
        "--timeout",
        "300", // full scans are slow on a busy shared host
        "--json",
      ]);
      await holdBursting(ma.child.pid);
      const mb = mergemem([
        "merge",
        "--pid",
        pids(b),
        "--engine",
        "ptrace",
        "--timeout",
        "300", // full scans are slow on a busy shared host
        "--json",
      ]);
      const waits = `mergemem: waiting for pid ${ma.child.pid} `;
      try {
        await waitUntil(
          () => {
            assert(!hasExited(mb.child.pid), "B exited before waiting for A");
            return mb.said(waits);
          },
          `B says "${waits}..." on stderr`,
          300_000,
        );
      } finally {
        Deno.kill(ma.child.pid, "SIGCONT");
      }
      const ra = await ma.done();
      const rb = await mb.done();
      assertEquals(ra.code, 0, ra.err);
      assertEquals(rb.code, 0, rb.err);
      assert(
        new RegExp(
          `mergemem: waiting for pid ${ma.child.pid} \\(mergemem merge[^\\n]* holding ${lockPath()}`,
        ).test(rb.err),
        rb.err,
      );
      const ja = JSON.parse(ra.out), jb = JSON.parse(rb.out);
      for (const k of KNOBS) {
        assertEquals(ja.ksm_settings_before[k], ORIG[k], `A ${k}`);
        assertEquals(jb.ksm_settings_before[k], ORIG[k], `B ${k}`);
      }
      assertEquals(snapshot(), orig());
      assertEquals(readJournal(), undefined);
      const brief = (j: Record<string, unknown>) =>
        JSON.stringify({ ...j, ksm_settings_after: 0, processes: 0 });
      for (const w of a) assertEquals(mergingPages(w.pid), NA, brief(ja));
      for (const w of b) assertEquals(mergingPages(w.pid), NB, brief(jb));
      await assertIntact([...a, ...b]);
      assertEquals([ja.ksmd_end, jb.ksmd_end], ["target", "target"]);
    } finally {
      for (const w of [...a, ...b]) await w.stop();
    }
  }),
});

Deno.test({
  ...skipIf(
    "kill -9 of a CLI merge mid-burst, then `mergemem status` restores",
    skip,
  ),
  sanitizeResources: false,
  sanitizeOps: false,
  fn: withHostKsm(async () => {
    const ws = await workers(3, 65536, 33);
    try {
      const m = mergemem([
        "merge",
        "--pid",
        pids(ws),
        "--engine",
        "ptrace",
        "--timeout",
        "300", // full scans are slow on a busy shared host
        "--json",
      ]);
      // Stopped mid-burst first, so that the kill cannot come after the
      // burst ended, however fast this machine merges.
      await holdBursting(m.child.pid);
      m.child.kill("SIGKILL");
      const r = await m.done();
      assertEquals(r.signal, "SIGKILL");
      assertEquals(readJournal()?.pid, m.child.pid);
      assertEquals(ksmFile("run"), "1");
      assertEquals(ksmFile("pages_to_scan"), "10000");
      const st = await mergemem(["status", "--json"]).done();
      assertEquals(st.code, 0, st.err);
      const s = JSON.parse(st.out);
      assertEquals(s.journal.state, "restored");
      assertEquals(s.journal.owner_pid, m.child.pid);
      assert(
        st.err.includes(
          `mergemem: warning: restored ksmd settings left by pid ${m.child.pid}`,
        ),
        st.err,
      );
      assertEquals(snapshot(), orig());
      assertEquals(readJournal(), undefined);
      await assertIntact(ws);
    } finally {
      for (const w of ws) await w.stop();
    }
  }),
});
