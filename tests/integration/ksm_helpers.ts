/**
 * Shared helpers of the KSM and merge integration tests: compiling and
 * driving tests/integration/ksm_worker.c.
 *
 * @module
 */

import { compileC } from "../helpers/gcc.ts";
export { haveGcc } from "../helpers/gcc.ts";

/** Compiles the worker once per test process; returns its path. */
export function workerBinary(): string {
  return compileC(new URL("ksm_worker.c", import.meta.url));
}

/** A running worker. */
export interface Worker {
  pid: number;
  addr: bigint;
  checksum: string;
  /** Sends one command line and returns the reply line. */
  command(cmd: string): Promise<string>;
  /** Asks the worker to exit and waits for it. */
  stop(): Promise<void>;
}

/**
 * Starts a worker with `pages` cross-process-identical pages of `seed`,
 * `unique` pages of its own, optionally opting in to KSM itself.
 */
export async function startWorker(
  pages: number,
  seed: number,
  opts: { unique?: number; optin?: boolean; uid?: number } = {},
): Promise<Worker> {
  const args = [String(pages), String(seed), String(opts.unique ?? 0)];
  if (opts.optin) args.push("optin");
  const cmd = opts.uid !== undefined
    ? new Deno.Command("setpriv", {
      args: [
        `--reuid=${opts.uid}`,
        `--regid=${opts.uid}`,
        "--clear-groups",
        workerBinary(),
        ...args,
      ],
      stdin: "piped",
      stdout: "piped",
    })
    : new Deno.Command(workerBinary(), {
      args,
      stdin: "piped",
      stdout: "piped",
    });
  const child = cmd.spawn();
  const writer = child.stdin.getWriter();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  const readLine = async (): Promise<string> => {
    while (!buf.includes("\n")) {
      const { value, done } = await lines.read();
      if (done) throw new Error("worker exited");
      buf += value;
    }
    const i = buf.indexOf("\n");
    const line = buf.slice(0, i);
    buf = buf.slice(i + 1);
    return line;
  };
  const ready = (await readLine()).split(" ");
  if (ready[0] !== "ready") throw new Error(`worker said ${ready.join(" ")}`);
  return {
    pid: Number(ready[1]),
    addr: BigInt(ready[2]),
    checksum: ready[3],
    async command(c: string) {
      await writer.write(new TextEncoder().encode(c + "\n"));
      return await readLine();
    },
    async stop() {
      try {
        await writer.write(new TextEncoder().encode("quit\n"));
        await writer.close();
      } catch {
        // already gone
      }
      lines.cancel().catch(() => {});
      await child.status;
    },
  };
}

/** Reads a KSM sysfs file as a trimmed string. */
export function ksmFile(name: string): string {
  return Deno.readTextFileSync(`/sys/kernel/mm/ksm/${name}`).trim();
}

/** Writes a KSM sysfs file. */
export function setKsm(name: string, value: string): void {
  Deno.writeTextFileSync(`/sys/kernel/mm/ksm/${name}`, value);
}

/** True when the host's KSM is usable by this test (root + sysfs). */
export function ksmUsable(): boolean {
  try {
    Deno.statSync("/sys/kernel/mm/ksm/run");
    return Deno.uid() === 0;
  } catch {
    return false;
  }
}
