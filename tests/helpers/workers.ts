/**
 * Test helpers: build tests/helpers/worker.c with gcc and run workers with
 * exactly known memory (see worker.c for the layout).
 *
 * @module
 */
import { compileC } from "./gcc.ts";

/** Pages of each kind in a worker's region. */
export interface WorkerSpec {
  dup?: number;
  unique?: number;
  common?: number;
  zero?: number;
  zeroRead?: number;
  untouched?: number;
  fork?: boolean;
  /** Region address (default 0x100000000, below every other mapping). */
  addr?: number;
  /** Run as this uid/gid (via setpriv). */
  user?: { uid: number; gid: number };
}

/**
 * The layout most scan tests use: pages of each kind per worker. The kinds'
 * sizes differ so that a miscount of one kind cannot pass for another.
 */
export const D = 8, U = 5, C = 6, Z = 4, R = 3, T = 7;

/** {@link D} … {@link T} as a {@link WorkerSpec}. */
export const STANDARD_SPEC: WorkerSpec = {
  dup: D,
  unique: U,
  common: C,
  zero: Z,
  zeroRead: R,
  untouched: T,
};

/** A running worker. */
export interface Worker {
  pid: number;
  /** The forked child's pid, or 0. */
  child: number;
  /** The region's start, "0x..." as in scan results. */
  addr: string;
  pages: number;
  /** Ends the worker (and its child). */
  stop(): Promise<void>;
}

/** Compiles worker.c once per test process; returns the binary's path. */
export function buildWorker(): Promise<string> {
  return Promise.resolve(compileC(new URL("./worker.c", import.meta.url)));
}

/** Starts a worker and waits for its READY line. */
export async function startWorker(spec: WorkerSpec): Promise<Worker> {
  const bin = await buildWorker();
  const args = [
    (spec.addr ?? 0x100000000).toString(16),
    String(spec.dup ?? 0),
    String(spec.unique ?? 0),
    String(spec.common ?? 0),
    String(spec.zero ?? 0),
    String(spec.zeroRead ?? 0),
    String(spec.untouched ?? 0),
    spec.fork ? "1" : "0",
  ];
  const cmd = spec.user
    ? new Deno.Command("setpriv", {
      args: [
        `--reuid=${spec.user.uid}`,
        `--regid=${spec.user.gid}`,
        "--clear-groups",
        bin,
        ...args,
      ],
      stdin: "piped",
      stdout: "piped",
    })
    : new Deno.Command(bin, { args, stdin: "piped", stdout: "piped" });
  const proc = cmd.spawn();
  const reader = proc.stdout.getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error("worker exited before READY");
    text += new TextDecoder().decode(value);
  }
  reader.releaseLock();
  const m = /^READY ([0-9a-f]+) (\d+) (\d+)/.exec(text);
  if (!m) throw new Error(`bad worker output: ${text}`);
  const writer = proc.stdin.getWriter();
  const child = Number(m[3]);
  return {
    pid: proc.pid,
    child,
    addr: "0x" + m[1],
    pages: Number(m[2]),
    async stop() {
      try {
        await writer.close();
      } catch { /* already gone */ }
      for (const pid of [child, proc.pid]) {
        try {
          if (pid) Deno.kill(pid, "SIGKILL");
        } catch { /* already gone */ }
      }
      await proc.stdout.cancel().catch(() => {});
      await proc.status;
    },
  };
}

/** uid and gid of a system user, creating it if missing. */
export async function testUser(
  name = "mergemem-test",
): Promise<{ uid: number; gid: number }> {
  const id = async (flag: string) => {
    const r = await new Deno.Command("id", { args: [flag, name] }).output();
    return r.success ? Number(new TextDecoder().decode(r.stdout).trim()) : NaN;
  };
  if (Number.isNaN(await id("-u"))) {
    const r = await new Deno.Command("useradd", {
      args: [
        "--system",
        "--no-create-home",
        "--shell",
        "/usr/sbin/nologin",
        name,
      ],
    }).output();
    if (!r.success) throw new Error(new TextDecoder().decode(r.stderr));
  }
  return { uid: await id("-u"), gid: await id("-g") };
}
