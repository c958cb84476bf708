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
  /** Stops the server and its children. */
  stop(): Promise<void>;
}

/** Compiles the churn server once per test process. */
export function buildChurnServer(): Promise<string> {
  return Promise.resolve(
    compileC(new URL("../integration/scan_churn_server.c", import.meta.url)),
  );
}

/** Starts a churn server with `children` children over `pages` pages. */
export async function startChurnServer(
  children: number,
  pages: number,
): Promise<ChurnServer> {
  const bin = await buildChurnServer();
  const proc = new Deno.Command(bin, {
    args: [String(children), String(pages), "7"],
    stdin: "piped",
    stdout: "piped",
  }).spawn();
  const reader = proc.stdout.getReader();
  const { value } = await reader.read();
  reader.releaseLock();
  ok(new TextDecoder().decode(value).startsWith("READY"));
  const writer = proc.stdin.getWriter();
  return {
    pid: proc.pid,
    comm: bin.split("/").pop()!.slice(0, 15),
    async stop() {
      await writer.close().catch(() => {});
      await proc.stdout.cancel().catch(() => {});
      await proc.status;
    },
  };
}
