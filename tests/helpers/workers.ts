/**
 * Test helpers: build tests/helpers/worker.c with gcc and run workers with
 * exactly known memory (see worker.c for the layout and the commands), for
 * the scan, KSM and merge tests and the benchmarks.
 *
 * @module
 */
import { compileC } from "./gcc.ts";
import { runAs, type User } from "./run_as.ts";

/** Pages of each kind in a worker's region, and how it runs. */
export interface WorkerSpec {
  dup?: number;
  unique?: number;
  common?: number;
  zero?: number;
  zeroRead?: number;
  untouched?: number;
  /** Seed of the COMMON pages: workers with the same seed share them (0). */
  seed?: number;
  /** Unique pages in a mapping of their own, which a merge leaves out. */
  uniqueApart?: number;
  /** The worker marks its mappings MADV_MERGEABLE itself. */
  optin?: boolean;
  fork?: boolean;
  /** Region address (default 0x100000000, below every other mapping). */
  addr?: number;
  /** Run as this uid/gid. */
  user?: User;
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
  /** Checksum of the COMMON pages when it started, as `sum` prints it. */
  checksum: string;
  /** Sends one command line (worker.c) and returns the reply line. */
  command(cmd: string): Promise<string>;
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
  const args = [`--addr=${(spec.addr ?? 0x100000000).toString(16)}`];
  const counts: [string, number | undefined][] = [
    ["dup", spec.dup],
    ["unique", spec.unique],
    ["common", spec.common],
    ["zero", spec.zero],
    ["zero-read", spec.zeroRead],
    ["untouched", spec.untouched],
    ["unique-apart", spec.uniqueApart],
    ["seed", spec.seed],
  ];
  for (const [name, n] of counts) if (n) args.push(`--${name}=${n}`);
  if (spec.optin) args.push("--optin");
  if (spec.fork) args.push("--fork");
  const proc = runAs(spec.user, bin, args, {
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const writer = proc.stdin.getWriter();
  const lines = proc.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  const readLine = async (): Promise<string> => {
    while (!buf.includes("\n")) {
      const { value, done } = await lines.read();
      if (done) throw new Error(`worker exited; it said: ${buf}`);
      buf += value;
    }
    const i = buf.indexOf("\n");
    const line = buf.slice(0, i);
    buf = buf.slice(i + 1);
    return line;
  };
  const ready = await readLine();
  const m = /^READY ([0-9a-f]+) (\d+) (\d+) ([0-9a-f]{16})$/.exec(ready);
  if (!m) throw new Error(`bad worker output: ${ready}`);
  const child = Number(m[3]);
  return {
    pid: proc.pid,
    child,
    addr: "0x" + m[1],
    pages: Number(m[2]),
    checksum: m[4],
    async command(c: string) {
      await writer.write(new TextEncoder().encode(c + "\n"));
      return await readLine();
    },
    async stop() {
      try {
        await writer.close();
      } catch { /* already gone */ }
      for (const pid of [child, proc.pid]) {
        try {
          if (pid) Deno.kill(pid, "SIGKILL");
        } catch { /* already gone */ }
      }
      await lines.cancel().catch(() => {});
      await proc.status;
    },
  };
}
