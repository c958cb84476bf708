/**
 * --cgroup and --unit on a real cgroup v2: a cgroup made for the test,
 * with a worker moved into it (and a child cgroup holding another), is
 * selected exactly, by path and by unit name. Run as root on a host with a
 * cgroup v2 hierarchy mounted.
 */
import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
import { cgroup2Root } from "../../src/proc/cgroup.ts";
import { selectProcesses } from "../../src/proc/select.ts";
import { ErrorKind } from "../../src/errors.ts";
import { isMergememError } from "../helpers/assert.ts";
import { skipIf } from "../helpers/skip.ts";

function root(): string | undefined {
  try {
    return cgroup2Root();
  } catch {
    return undefined;
  }
}
const cg2 = root();

Deno.test({
  ...skipIf(
    "--cgroup and --unit select a cgroup's processes, children included",
    { "no cgroup v2": cg2 === undefined, "not root": Deno.uid() !== 0 },
  ),
  async fn() {
    const unit = `mergemem-test-${Deno.pid}.service`;
    const dir = `${cg2}/${unit}`;
    const sleepers = [0, 1].map(() =>
      new Deno.Command("sleep", { args: ["60"] }).spawn()
    );
    try {
      Deno.mkdirSync(`${dir}/sub`, { recursive: true });
      Deno.writeTextFileSync(`${dir}/cgroup.procs`, String(sleepers[0].pid));
      Deno.writeTextFileSync(
        `${dir}/sub/cgroup.procs`,
        String(sleepers[1].pid),
      );
      const want = sleepers.map((s) => s.pid).sort((a, b) => a - b);
      const pids = (sel: Parameters<typeof selectProcesses>[0]) =>
        selectProcesses(sel).processes.map((p) => p.pid);
      assertEquals(pids({ cgroups: [unit] }), want);
      assertEquals(pids({ cgroups: [dir] }), want);
      assertEquals(pids({ cgroups: [`${unit}/sub`] }), [sleepers[1].pid]);
      // Without systemd as PID 1 the unit is found by its cgroup's name.
      if (Deno.readTextFileSync("/proc/1/comm").trim() !== "systemd") {
        assertEquals(pids({ units: [unit.replace(/\.service$/, "")] }), want);
      }
      throws(
        () => selectProcesses({ cgroups: ["no/such/cgroup"] }),
        (e: unknown) =>
          isMergememError(e, ErrorKind.NothingScannable, /no such cgroup/),
      );
    } finally {
      for (const s of sleepers) {
        s.kill();
        await s.status;
      }
      // Empty now; a cgroup directory is removed with rmdir.
      for (const d of [`${dir}/sub`, dir]) {
        try {
          Deno.removeSync(d);
        } catch {
          // already gone
        }
      }
    }
  },
});
