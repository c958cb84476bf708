/**
 * Test helpers of the ptrace engine: builds the C targets in tests/ptrace/
 * and runs them with their first stdout line parsed.
 *
 * @module
 */
import { compileC } from "../helpers/gcc.ts";
export { haveGcc } from "../helpers/gcc.ts";

/** Compiles tests/ptrace/NAME.c once per test process; returns its path. */
export function buildTarget(name: string): string {
  return compileC(new URL(`${name}.c`, import.meta.url));
}

/** A running C target. */
export interface Target {
  pid: number;
  /** The words of its first line ("ready ..."). */
  ready: string[];
  /** Sends one line to its stdin. */
  send(line: string): Promise<void>;
  /** Reads its next stdout line (null at end of output). */
  line(): Promise<string | null>;
  /** Waits for it to exit. */
  status: Promise<Deno.CommandStatus>;
  /** Kills it (SIGKILL) if still running and waits. */
  kill(): Promise<void>;
}

/** Starts tests/ptrace/NAME.c with args and waits for its "ready" line. */
export async function startTarget(
  name: string,
  args: string[] = [],
): Promise<Target> {
  const child = new Deno.Command(buildTarget(name), {
    args,
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const writer = child.stdin.getWriter();
  const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  let ended = false;
  const line = async (): Promise<string | null> => {
    while (!buf.includes("\n")) {
      if (ended) return null;
      const { value, done } = await lines.read();
      if (done) {
        ended = true;
        if (buf === "") return null;
        const l = buf;
        buf = "";
        return l;
      }
      buf += value;
    }
    const i = buf.indexOf("\n");
    const l = buf.slice(0, i);
    buf = buf.slice(i + 1);
    return l;
  };
  const first = await line();
  if (!first?.startsWith("ready")) {
    throw new Error(`target ${name} said ${first}`);
  }
  return {
    pid: child.pid,
    ready: first.split(" "),
    async send(l: string) {
      await writer.write(new TextEncoder().encode(l + "\n"));
    },
    line,
    status: child.status,
    async kill() {
      try {
        child.kill("SIGKILL");
      } catch { /* already gone */ }
      try {
        await writer.close();
      } catch { /* already gone */ }
      await lines.cancel().catch(() => {});
      await child.status;
    },
  };
}

/** Named tids of the torture target's ready line ("role=tid"). */
export function tortureTids(ready: string[]): Map<string, number> {
  const out = new Map<string, number>();
  for (const w of ready) {
    const m = /^(\w+)=(\d+)$/.exec(w);
    if (m) out.set(m[1], Number(m[2]));
  }
  return out;
}

/** The torture target's regions: [start, end) of each. */
export function tortureRegions(
  ready: string[],
): { start: bigint; end: bigint }[] {
  const bytes = BigInt(ready[3]);
  const n = Number(ready[4]);
  const starts = [ready[2], ...ready.slice(5, 5 + n - 1)].map((a) => BigInt(a));
  return starts.map((s) => ({ start: s, end: s + bytes }));
}

/** The "mg" flag of the VMA starting at addr (undefined if none). */
export function mergeableAt(pid: number, addr: bigint): boolean | undefined {
  const text = Deno.readTextFileSync(`/proc/${pid}/smaps`);
  let cur: bigint | undefined;
  for (const l of text.split("\n")) {
    const m = /^([0-9a-f]+)-[0-9a-f]+ /.exec(l);
    if (m) cur = BigInt("0x" + m[1]);
    else if (cur === addr && l.startsWith("VmFlags:")) {
      return l.split(/\s+/).includes("mg");
    }
  }
  return undefined;
}
