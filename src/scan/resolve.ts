/**
 * Choosing the page-hash back-end of a scan (`--backend`): the kernel one
 * (src/kmod/backend.ts) or the user one (user_backend.ts).
 *
 * @module
 */
import { MergememError } from "../errors.ts";
import { createKernelBackend } from "../kmod/backend.ts";
import type { HashBackend } from "./backend.ts";

/** The back-end choice of `--backend`. */
export type BackendChoice = "kernel" | "user" | "auto";

/**
 * Resolves `--backend`: "kernel" requires the module (NoModule or
 * ModuleMismatch errors otherwise), "user" never touches it, "auto" uses
 * the module when /dev/mergemem handshakes with PAGEINFO and falls back to
 * the user back-end otherwise (including on a version mismatch, since a
 * scan needs nothing from the module). `makeUser` builds the user
 * back-end (with the caller's checksum).
 */
export function resolveBackend(
  choice: BackendChoice,
  makeUser: () => HashBackend,
): { backend: HashBackend; why: string } {
  if (choice === "user") return { backend: makeUser(), why: "requested: user" };
  if (choice === "kernel") {
    return { backend: createKernelBackend(), why: "requested: kernel" };
  }
  try {
    return {
      backend: createKernelBackend(),
      why: "auto: /dev/mergemem is loaded",
    };
  } catch (err) {
    if (!(err instanceof MergememError)) throw err;
    return {
      backend: makeUser(),
      why: `auto: ${err.message}; using the user back-end`,
    };
  }
}
