/**
 * What an error thrown by a Marker (./marker.ts) while marking (or unmarking)
 * one process means: one classification shared by merge() and unmerge(),
 * which word and act on it each in their own way.
 *
 * @module
 */
import { errnoCode, ErrorKind, MergememError } from "../errors.ts";
import { ProcessSkipped } from "./marker.ts";

/**
 * An error of Marker.markProcess (or markWholeProcess), sorted:
 * - `skipped`: the engine cannot mark this process ({@link ProcessSkipped});
 *   `reason` is the engine's own;
 * - `denied`: permission denied: a MergememError AllDenied (its message)
 *   or EACCES/EPERM ("permission denied (EPERM)");
 * - `exited`: the process went away: ESRCH/ENOENT (no message), or a
 *   MergememError NothingScannable (its message);
 * - `interrupted`: a MergememError Interrupted (SIGINT/SIGTERM);
 * - `failed`: any other MergememError (its message);
 * - `other`: anything else, with its errno name when it has one (a bug,
 *   ENOMEM, EINTR, ...).
 */
export type MarkFailure =
  | { kind: "skipped"; reason: string }
  | { kind: "denied"; reason: string }
  | { kind: "exited"; message?: string }
  | { kind: "interrupted" }
  | { kind: "failed"; message: string }
  | { kind: "other"; code?: string };

/** Sorts an error met while marking one process; see {@link MarkFailure}. */
export function classifyMarkError(err: unknown): MarkFailure {
  if (err instanceof ProcessSkipped) {
    return { kind: "skipped", reason: err.reason };
  }
  if (err instanceof MergememError) {
    switch (err.kind) {
      case ErrorKind.AllDenied:
        return { kind: "denied", reason: err.message };
      case ErrorKind.NothingScannable:
        return { kind: "exited", message: err.message };
      case ErrorKind.Interrupted:
        return { kind: "interrupted" };
      default:
        return { kind: "failed", message: err.message };
    }
  }
  const code = errnoCode(err);
  if (code === "ESRCH" || code === "ENOENT") return { kind: "exited" };
  if (code === "EACCES" || code === "EPERM") {
    return { kind: "denied", reason: `permission denied (${code})` };
  }
  return { kind: "other", code };
}
