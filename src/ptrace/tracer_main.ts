/**
 * Entry point of the ptrace tracer process when mergemem runs from its
 * sources (`deno run main.ts`, tests, library users): tracer_client.ts
 * starts `deno run ... tracer_main.ts`. A compiled mergemem and the
 * bundled one start themselves with the hidden subcommand instead
 * (main.ts). Never imported: it only runs.
 *
 * @module
 */
import { runTracer } from "./tracer.ts";

if (import.meta.main) Deno.exit(await runTracer());
