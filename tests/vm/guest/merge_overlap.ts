/**
 * Guest test of one burst at a time and crash recovery through the CLI,
 * run by tests/vm/guest/t_25_merge_overlap.sh with the module loaded:
 *
 * - two `mergemem merge` runs whose bursts overlap (the second starts
 *   while the first bursts) both merge their workers and leave ksmd's
 *   settings as they were before either;
 * - `merge --lock-timeout 1` while another process holds the KSM lock
 *   exits 11 with a clear message and changes nothing;
 * - `kill -9` of a merge in the middle of its burst leaves the burst
 *   settings and the journal; `mergemem status` restores the settings,
 *   says so, and reports it in JSON.
 *
 * Exits non-zero with a FAIL line on the first failed check.
 *
 * @module
 */
import { startWorker, type Worker } from "../../helpers/workers.ts";
import { pathExists, procState } from "../../helpers/wait.ts";

const repo = new URL("../../../", import.meta.url).pathname;
const deno = Deno.execPath();
const MAIN = `${repo}main.ts`;
const KSM = "/sys/kernel/mm/ksm";
const JOURNAL = "/run/mergemem/journal.json";
const LOCK = "/run/mergemem/lock";

function ksm(name: string): string {
  return Deno.readTextFileSync(`${KSM}/${name}`).trim().replace(
    /.*\[(.*)\].*/,
    "$1",
  );
}
function has(name: string): boolean {
  try {
    Deno.statSync(`${KSM}/${name}`);
    return true;
  } catch {
    return false;
  }
}
function setKsm(name: string, v: string) {
  Deno.writeTextFileSync(`${KSM}/${name}`, v);
}
function merging(pid: number): number {
  return Number(Deno.readTextFileSync(`/proc/${pid}/ksm_merging_pages`).trim());
}
class Failed extends Error {}
/** Fails by throwing, so that the cleanup at the end still runs. */
function check(cond: boolean, what: string): void {
  if (!cond) {
    console.log(`FAIL: ${what}`);
    throw new Failed(what);
  }
  console.log(`ok: ${what}`);
}
function sleep(ms: number) {
  return new Promise((r) => setTimeout(r, ms));
}

/** Distinctive original settings: a wrong "before" shows at once. */
const ORIG: Record<string, string> = {
  run: "0",
  pages_to_scan: "123",
  sleep_millisecs: "37",
};
if (has("smart_scan")) ORIG.smart_scan = "1";
function setOrig() {
  if (has("advisor_mode")) setKsm("advisor_mode", "none");
  for (const k of ["pages_to_scan", "sleep_millisecs", "smart_scan", "run"]) {
    if (k in ORIG) setKsm(k, ORIG[k]);
  }
}
function settings(): Record<string, string> {
  return Object.fromEntries(Object.keys(ORIG).map((k) => [k, ksm(k)]));
}
function same(a: Record<string, string>, b: Record<string, string>) {
  return Object.keys(ORIG).every((k) => a[k] === b[k]);
}
function show(s: Record<string, string>): string {
  return Object.entries(s).map(([k, v]) => `${k}=${v}`).join(" ");
}

/** `mergemem ARGS` as a child process, output collected (stderr as it comes). */
function spawn(args: string[]) {
  const child = new Deno.Command(deno, {
    args: ["run", "-A", MAIN, ...args],
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let err = "";
  let ended = false;
  const stderr = (async () => {
    for await (const s of child.stderr.pipeThrough(new TextDecoderStream())) {
      err += s;
    }
  })();
  const stdout = new Response(child.stdout).text();
  child.status.then(() => ended = true);
  return {
    child,
    /** Whether `text` has appeared on its stderr so far. */
    said: (text: string) => err.includes(text),
    /** Whether it has exited. */
    ended: () => ended,
    async done() {
      const [r, out] = await Promise.all([child.status, stdout]);
      await stderr;
      console.log(`$ mergemem ${args.join(" ")} -> ${r.code}`);
      if (err.trim()) console.log(err.trimEnd());
      return { code: r.code, signal: r.signal, out, err };
    },
  };
}

/**
 * Stops a merge (SIGSTOP) in the middle of its burst: it keeps the KSM
 * lock and ksmd the burst's settings, and nothing it does can end the
 * burst meanwhile. Returns whether it was caught bursting (journal
 * written, run=1, written last); if not, it is continued again.
 */
async function holdBursting(pid: number): Promise<boolean> {
  const bursting = () => pathExists(JOURNAL) && ksm("run") === "1";
  if (!await waitFor(bursting, 240000)) return false;
  Deno.kill(pid, "SIGSTOP");
  await waitFor(() => procState(pid) === "T", 60000);
  if (procState(pid) === "T" && bursting()) return true;
  Deno.kill(pid, "SIGCONT");
  return false;
}

/** The state letter of /proc/PID/stat, or undefined. */
/** Waits until cond() holds (polling), up to ms; returns whether it did. */
async function waitFor(cond: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    if (cond()) return true;
    await sleep(10);
  }
  return cond();
}

async function workers(n: number, pages: number, seed: number) {
  const ws: Worker[] = [];
  for (let i = 0; i < n; i++) {
    ws.push(await startWorker({ common: pages, seed, uniqueApart: 200 }));
  }
  return ws;
}
const pidList = (ws: Worker[]) => ws.map((w) => w.pid).join(",");

async function overlap() {
  // A is stopped (SIGSTOP) in the middle of its burst until B says that it
  // waits for A's lock: the bursts overlap on a machine of any speed. A's
  // burst (4 x 32 MiB, two full scans at least) only has to outlast the
  // test's polling.
  const NA = 8192, NB = 2000;
  const a = await workers(4, NA, 21);
  const b = await workers(2, NB, 22);
  try {
    const ma = spawn([
      "merge",
      "--pid",
      pidList(a),
      "--json",
      "--timeout",
      "120",
    ]);
    const held = await holdBursting(ma.child.pid);
    let waited = false;
    let mb: ReturnType<typeof spawn> | undefined;
    try {
      if (held) {
        mb = spawn([
          "merge",
          "--pid",
          pidList(b),
          "--json",
          "--timeout",
          "120",
        ]);
        const waits = `mergemem: waiting for pid ${ma.child.pid} `;
        const m = mb;
        waited = await waitFor(() => m.said(waits) || m.ended(), 240000) &&
          m.said(waits);
      }
    } finally {
      // Before any check: a failed check throws.
      Deno.kill(ma.child.pid, "SIGCONT");
    }
    check(held, "first merge held in the middle of its burst (journal, run=1)");
    check(waited, "the second merge reports waiting for the first's lock");
    const ra = await ma.done();
    const rb = await mb!.done();
    check(ra.code === 0 && rb.code === 0, "both merges exit 0");
    const ja = JSON.parse(ra.out), jb = JSON.parse(rb.out);
    check(
      new RegExp(
        `mergemem: waiting for pid ${ma.child.pid} \\(mergemem merge[^)]*\\)+ holding ${LOCK}`,
      ).test(rb.err),
      "the second merge waited for the first, and said so",
    );
    check(
      same(ja.ksm_settings_before, ORIG) && same(jb.ksm_settings_before, ORIG),
      `both saw the original settings as before (${
        show(jb.ksm_settings_before)
      })`,
    );
    check(same(settings(), ORIG), `settings restored: ${show(settings())}`);
    check(!pathExists(JOURNAL), "no journal left");
    for (const w of [...a, ...b]) {
      const n = a.includes(w) ? NA : NB;
      check(merging(w.pid) >= n, `pid ${w.pid} merged ${merging(w.pid)}`);
      check(
        (await w.command("sum")) === `sum ${w.checksum}`,
        `pid ${w.pid} content intact`,
      );
    }
    console.log(
      `figures: A predicted=${ja.predicted_saveable_pages} achieved=${ja.achieved_pages} end=${ja.ksmd_end}; ` +
        `B predicted=${jb.predicted_saveable_pages} achieved=${jb.achieved_pages} end=${jb.ksmd_end}`,
    );
    await spawn(["unmerge", "--pid", pidList([...a, ...b])]).done();
  } finally {
    for (const w of [...a, ...b]) await w.stop();
  }
}

async function lockTimeout() {
  const ws = await workers(2, 2000, 23);
  const holder = new Deno.Command(deno, {
    args: [
      "run",
      "-A",
      `${repo}tests/helpers/ksm_lock_holder.ts`,
      "/run/mergemem",
    ],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  try {
    const reader = holder.stdout.pipeThrough(new TextDecoderStream())
      .getReader();
    let out = "";
    while (!out.includes("held")) {
      const { value, done } = await reader.read();
      if (done) break;
      out += value;
    }
    check(out.includes("held"), "a helper holds the KSM lock");
    reader.cancel().catch(() => {});
    const r = await spawn([
      "merge",
      "--pid",
      pidList(ws),
      "--lock-timeout",
      "1",
    ]).done();
    check(r.code === 11, `merge exits 11 while the lock is held (${r.code})`);
    check(
      r.err.includes(
        `mergemem: error: gave up after 1 s waiting for pid ${holder.pid} ` +
          `(lock holder test) holding ${LOCK}; nothing was changed`,
      ),
      "a clear message naming the holder",
    );
    check(same(settings(), ORIG), "settings untouched");
    for (const w of ws) {
      check(merging(w.pid) === 0, `pid ${w.pid} not merged`);
    }
  } finally {
    holder.kill("SIGKILL");
    await holder.status;
    for (const w of ws) await w.stop();
  }
}

async function killed() {
  const N = 8192;
  const ws = await workers(3, N, 24);
  try {
    const m = spawn([
      "merge",
      "--pid",
      pidList(ws),
      "--json",
      "--timeout",
      "120",
    ]);
    // The journal is written before the settings change (so that a crash
    // in between is repaired too); run=1 is written last. Stopped there
    // first, so that the kill cannot come after the burst ended.
    check(
      await holdBursting(m.child.pid),
      "merge is bursting (journal written, run=1), held there",
    );
    m.child.kill("SIGKILL");
    const r = await m.done();
    check(r.signal === "SIGKILL", `merge killed by SIGKILL (${r.signal})`);
    const j = JSON.parse(Deno.readTextFileSync(JOURNAL));
    check(j.pid === m.child.pid, "the journal names the killed merge");
    check(
      ksm("run") === "1" && ksm("pages_to_scan") === "10000" &&
        ksm("sleep_millisecs") === "0",
      `the kill left the burst settings (${show(settings())})`,
    );
    const st = await spawn(["status", "--json"]).done();
    check(st.code === 0, "status exits 0");
    const s = JSON.parse(st.out);
    check(
      s.journal?.state === "restored" && s.journal.owner_pid === m.child.pid,
      `status restored the journal of pid ${m.child.pid}`,
    );
    check(
      s.warnings.length === 1 &&
        st.err.includes(
          `mergemem: warning: restored ksmd settings left by pid ${m.child.pid}`,
        ),
      "status said so on stderr",
    );
    check(same(settings(), ORIG), `settings restored: ${show(settings())}`);
    check(same(s.ksm.settings, ORIG), "status reports the restored settings");
    check(!pathExists(JOURNAL), "journal removed");
    for (const w of ws) {
      check(
        (await w.command("sum")) === `sum ${w.checksum}`,
        `pid ${w.pid} content intact`,
      );
    }
    await spawn(["unmerge", "--pid", pidList(ws)]).done();
  } finally {
    for (const w of ws) await w.stop();
  }
}

const host = settings();
try {
  setOrig();
  await overlap();
  setOrig();
  await lockTimeout();
  setOrig();
  await killed();
} catch (err) {
  if (!(err instanceof Failed)) throw err;
  Deno.exitCode = 1;
} finally {
  // A failed step may leave a killed merge's journal: repair it (status
  // does) so that later tests start clean, then put back the host's values.
  if (pathExists(JOURNAL)) await spawn(["status", "--json"]).done();
  setOrig();
  for (const k of ["pages_to_scan", "sleep_millisecs", "smart_scan", "run"]) {
    if (k in host) setKsm(k, host[k]);
  }
}
if (Deno.exitCode === 0) console.log("PASS merge_overlap");
Deno.exit();
