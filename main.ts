#!/usr/bin/env -S deno run --allow-all
/**
 * The mergemem command line. All the work is in the library (src/mod.ts);
 * this file only runs the CLI.
 *
 * @module
 */
import { main } from "./src/cli/main.ts";
import { TRACER_SUBCOMMAND } from "./src/ptrace/protocol.ts";

if (import.meta.main) {
  if (Deno.args[0] === TRACER_SUBCOMMAND) {
    // The ptrace engine's tracer process, which mergemem starts from its
    // own executable when compiled or bundled (src/ptrace/tracer.ts).
    const { runTracer } = await import("./src/ptrace/tracer.ts");
    Deno.exit(await runTracer());
  }
  Deno.exit(await main(Deno.args));
}
