/**
 * The scan library: find pages with identical content across processes.
 *
 * ```ts
 * import { scan } from "./src/scan/mod.ts";
 * const r = await scan({ selection: { comms: ["httpd"] } });
 * console.log(r.totals.saveable_bytes);
 * ```
 *
 * @module
 */
export { scan } from "./scan.ts";
export type {
  ScanOptions,
  ScanPages,
  ScanProfile,
  ScanProgress,
} from "./scan.ts";
export * from "./result.ts";
export * from "../engine/hash_backend.ts";
export { createUserBackend } from "./user_backend.ts";
export type { UserBackendOptions } from "./user_backend.ts";
export type { Selection, SkipReason } from "../proc/select.ts";
export { selectProcesses } from "../proc/select.ts";
export {
  CHECKSUM_NAMES,
  type ChecksumName,
  getChecksum,
  isChecksumName,
} from "../hash/mod.ts";
