/**
 * The ksmd burst driver against the host's real KSM (needs root). Workers
 * opt in themselves (madvise MADV_MERGEABLE), since the host cannot load
 * the module.
 */
import {
  deepStrictEqual as assertEquals,
  ok as assert,
} from "node:assert/strict";
import { runBurst } from "../../src/ksm/burst.ts";
import { mergingPages } from "../../src/ksm/process.ts";
import { assertIntact } from "../helpers/assert.ts";
import { haveGcc } from "../helpers/gcc.ts";
import { ksmFile, ksmUsable, setKsm } from "../helpers/ksm_sysfs.ts";
import { startWorker } from "../helpers/workers.ts";
import { skipIf } from "../helpers/skip.ts";

const skip = {
  "no usable KSM (needs root and /sys/kernel/mm/ksm)": !ksmUsable(),
  "no gcc": !haveGcc(),
};

const KNOBS = ["run", "pages_to_scan", "sleep_millisecs"];
function snapshot(): Record<string, string> {
  return Object.fromEntries(KNOBS.map((k) => [k, ksmFile(k)]));
}
function restore(s: Record<string, string>) {
  setKsm("pages_to_scan", s.pages_to_scan);
  setKsm("sleep_millisecs", s.sleep_millisecs);
  setKsm("run", s.run);
}

Deno.test({
  ...skipIf("burst merges exactly, restores run=0 and keeps merges", skip),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const orig = snapshot();
    setKsm("run", "0");
    setKsm("pages_to_scan", "111");
    setKsm("sleep_millisecs", "33");
    const N = 2000;
    const a = await startWorker({
      common: N,
      seed: 42,
      uniqueApart: 100,
      optin: true,
    });
    const b = await startWorker({
      common: N,
      seed: 42,
      uniqueApart: 100,
      optin: true,
    });
    try {
      // Progress counted on the workers themselves, not the global
      // pages_sharing, so other KSM users on the host cannot disturb it.
      const r = await runBurst({
        progress: () => mergingPages(a.pid) + mergingPages(b.pid),
        target: 2 * N,
        timeoutMs: 60000,
      });
      assertEquals(r.ended, "target");
      assertEquals(r.progress, 2 * N);
      // restored exactly
      assertEquals(snapshot(), {
        run: "0",
        pages_to_scan: "111",
        sleep_millisecs: "33",
      });
      assertEquals(r.settingsBefore.run, "0");
      assertEquals(r.settingsAfter.run, "0");
      assertEquals(r.settingsAfter.pages_to_scan, "111");
      assertEquals(r.restoreMismatch, {});
      // merges kept with ksmd stopped; unique pages never merge
      await new Promise((res) => setTimeout(res, 300));
      assertEquals(mergingPages(a.pid), N);
      assertEquals(mergingPages(b.pid), N);
      // content unchanged, and a write changes only the writer's view
      await assertIntact([a]);
      const peekB = await b.command("peek 7");
      const wrote = await a.command("write 7");
      assert(wrote !== `wrote ${a.checksum}`);
      assertEquals(await b.command("peek 7"), peekB);
      await assertIntact([b]);
      // (ksm_merging_pages drops only when ksmd next visits the page, and
      // ksmd is stopped now, so it is not checked here.)
    } finally {
      await a.stop();
      await b.stop();
      restore(orig);
    }
  },
});

Deno.test({
  ...skipIf("burst with run=1 before leaves run=1 and the old rate", skip),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const orig = snapshot();
    try {
      setKsm("pages_to_scan", "222");
      setKsm("sleep_millisecs", "44");
      setKsm("run", "1");
      const r = await runBurst({ progress: () => 0, timeoutMs: 300 });
      assert(r.ended === "timeout" || r.ended === "stalled", r.ended);
      assertEquals(snapshot(), {
        run: "1",
        pages_to_scan: "222",
        sleep_millisecs: "44",
      });
    } finally {
      restore(orig);
    }
  },
});

Deno.test({
  ...skipIf("burst restores settings exactly after SIGINT", skip),
  sanitizeResources: false,
  sanitizeOps: false,
  async fn() {
    const orig = snapshot();
    setKsm("run", "0");
    setKsm("pages_to_scan", "123");
    setKsm("sleep_millisecs", "37");
    try {
      const child = new Deno.Command(Deno.execPath(), {
        args: [
          "run",
          "--allow-all",
          new URL("./ksm_burst_child.ts", import.meta.url).pathname,
        ],
        stdout: "piped",
      }).spawn();
      const reader = child.stdout.pipeThrough(new TextDecoderStream())
        .getReader();
      let out = "";
      while (!out.includes("bursting")) {
        const { value, done } = await reader.read();
        if (done) break;
        out += value;
      }
      assert(out.includes("bursting"), out);
      assertEquals(ksmFile("run"), "1");
      assertEquals(ksmFile("pages_to_scan"), "10000");
      child.kill("SIGINT");
      const st = await child.status;
      while (true) {
        const { value, done } = await reader.read();
        if (done) break;
        out += value;
      }
      assertEquals(st.code, 130, out);
      assert(out.includes("interrupted by SIGINT"), out);
      assertEquals(snapshot(), {
        run: "0",
        pages_to_scan: "123",
        sleep_millisecs: "37",
      });
    } finally {
      restore(orig);
    }
  },
});
