/**
 * Test helper: a server whose children come and go and linger unreaped as
 * zombies, as apache2 prefork's and php-fpm's do
 * (tests/integration/scan_churn_server.c).
 *
 * @module
 */
import { ok } from "node:assert/strict";
import { compileC } from "./gcc.ts";

/** A running churn server. */
export interface ChurnServer {
  /** The parent's pid. */
  pid: number;
  /** The comm every process of the server has. */
  comm: string;
  /**
   * The held children (they live until killed) started so far and not yet
   * taken with {@link ChurnServer.takeHeld}.
   */
  held(): number[];
  /** Forgets a held child (the caller killed it). */
  takeHeld(pid: number): void;
  /** Stops the server and its children. */
  stop(): Promise<void>;
}

/** Compiles the churn server once per test process. */
export function buildChurnServer(): Promise<string> {
  return Promise.resolve(
    compileC(new URL("../integration/scan_churn_server.c", import.meta.url)),
  );
}

/**
 * Starts a churn server with `children` children over `pages` pages, the
 * first `held` of which live until they are killed.
 */
export async function startChurnServer(
  children: number,
  pages: number,
  held = 0,
): Promise<ChurnServer> {
  const bin = await buildChurnServer();
  const proc = new Deno.Command(bin, {
    args: [String(children), String(pages), "7", String(held)],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const heldPids = new Set<number>();
  const lines = proc.stdout.pipeThrough(new TextDecoderStream()).pipeThrough(
    lineSplitter(),
  );
  const reader = lines.getReader();
  const onLine = (line: string): boolean => {
    const m = /^HELD (\d+)$/.exec(line);
    if (m) heldPids.add(Number(m[1]));
    return line.startsWith("READY");
  };
  for (;;) {
    const { value, done } = await reader.read();
    ok(!done, "churn server ended before READY");
    if (onLine(value)) break;
  }
  // The server keeps announcing the held children it starts.
  const pump = (async () => {
    for (;;) {
      const { value, done } = await reader.read();
      if (done) return;
      onLine(value);
    }
  })().catch(() => {});
  const writer = proc.stdin.getWriter();
  return {
    pid: proc.pid,
    comm: bin.split("/").pop()!.slice(0, 15),
    held: () => [...heldPids],
    takeHeld: (pid) => void heldPids.delete(pid),
    async stop() {
      await writer.close().catch(() => {});
      await proc.status;
      await reader.cancel().catch(() => {});
      await pump;
    },
  };
}

/** Splits a text stream into lines (without their newlines). */
function lineSplitter(): TransformStream<string, string> {
  let rest = "";
  return new TransformStream({
    transform(chunk, out) {
      const parts = (rest + chunk).split("\n");
      rest = parts.pop()!;
      for (const p of parts) out.enqueue(p);
    },
    flush(out) {
      if (rest) out.enqueue(rest);
    },
  });
}
