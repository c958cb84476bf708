/**
 * Test helper: a server whose children come and go and linger unreaped as
 * zombies, as apache2 prefork's and php-fpm's do
 * (tests/integration/scan_churn_server.c).
 *
 * @module
 */
import { ok } from "node:assert/strict";

/** A running churn server. */
export interface ChurnServer {
  /** The parent's pid. */
  pid: number;
  /** The comm every process of the server has. */
  comm: string;
  /** Stops the server and its children. */
  stop(): Promise<void>;
}

let built: string | undefined;

/** Compiles the churn server once per test process. */
export async function buildChurnServer(): Promise<string> {
  if (built) return built;
  const dir = await Deno.makeTempDir({ prefix: "mergemem-churn-" });
  const out = `${dir}/scan_churn_server`;
  const src =
    new URL("../integration/scan_churn_server.c", import.meta.url).pathname;
  const r = await new Deno.Command("gcc", {
    args: ["-O2", "-Wall", "-o", out, src],
  }).output();
  if (!r.success) throw new Error(new TextDecoder().decode(r.stderr));
  built = out;
  return out;
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
