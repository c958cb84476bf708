/**
 * Where the engines are chosen: which marker marks VMAs (the module's or
 * ptrace's) and which back-end hashes pages (the kernel's or the user
 * one). The engines (src/kmod/, src/ptrace/, src/scan/user_backend.ts)
 * only implement the contracts of src/engine/; merge(), unmerge() and the
 * CLI get their engines here. Being the one file that knows every engine
 * keeps the engines and their users from importing one another.
 *
 * @module
 */
import type { HashBackend } from "../engine/hash_backend.ts";
import type { MarkEngine, Marker } from "../engine/marker.ts";
import { ErrorKind, MergememError } from "../errors.ts";
import { createKernelBackend } from "../kmod/backend.ts";
import type { ModuleHandle } from "../kmod/client.ts";
import { createModuleMarker } from "../kmod/marker.ts";

/** Which engine to use: `auto` picks the module when it is loaded. */
export type EngineChoice = "auto" | MarkEngine;

/**
 * Resolves an engine choice: `module` and `ptrace` as given; `auto` the
 * module when /dev/mergemem opens, else ptrace. A module that is present
 * but incompatible is an error even under `auto`: silently falling back
 * would hide a broken install. A module handle given means the module.
 */
export async function openMarker(
  choice: EngineChoice,
  mod?: ModuleHandle,
): Promise<Marker> {
  if (choice === "module" || mod) return createModuleMarker(mod);
  if (choice === "auto") {
    try {
      return createModuleMarker();
    } catch (err) {
      if (
        !(err instanceof MergememError) || err.kind !== ErrorKind.NoModule
      ) throw err;
    }
  }
  // Loaded only when chosen: a run with the module never needs the ptrace
  // engine's code. The injecting runs in a tracer process of its own,
  // which a SIGKILL of this one cannot interrupt (src/ptrace/tracer.ts).
  const { createTracerMarker } = await import("../ptrace/tracer_client.ts");
  return createTracerMarker();
}

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
