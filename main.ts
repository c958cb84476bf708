#!/usr/bin/env -S deno run --allow-all
/**
 * The mergemem command line. All the work is in the library (src/mod.ts);
 * this file only runs the CLI.
 *
 * @module
 */
import { main } from "./src/cli/main.ts";

if (import.meta.main) {
  Deno.exit(await main(Deno.args));
}
