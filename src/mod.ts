/**
 * mergemem as a library: the typed API the `mergemem` command is built on.
 *
 * ```ts
 * import { scan } from "./src/mod.ts";
 * const r = await scan({ selection: { comms: ["httpd"] } });
 * console.log(`${r.totals.saveable_bytes} bytes saveable`);
 * ```
 *
 * - Scanning: {@link scan}, {@link selectProcesses}, the result types
 *   ("mergemem.scan/1", see docs/json-schema.md) and page-hash back-ends.
 * - The kernel module: {@link openModule} and the kernel back-end.
 * - KSM: reading and driving ksmd ({@link readKsmSettings} and friends).
 * - Merging: {@link merge}, {@link unmerge}; status: {@link getStatus}.
 *
 * Errors meant for users are {@link MergememError}s with an exit code.
 *
 * @module
 */
export * from "./scan/mod.ts";
export * from "./errors.ts";
export { VERSION } from "./version.ts";
