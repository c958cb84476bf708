/**
 * Markers: the ways mergemem can make whole VMAs of another process
 * mergeable (or unmergeable). KSM only scans memory its owner marked with
 * madvise(MADV_MERGEABLE), and no system call marks another process's
 * memory, so there are two engines:
 *
 * - `module`: /dev/mergemem's MERGE/UNMERGE ioctls (ksm_madvise() in the
 *   kernel), authorised by an fd of /proc/PID/mem;
 * - `ptrace`: the target itself is made to call madvise() through ptrace,
 *   as a debugger would (src/ptrace/), for hosts without the module.
 *
 * Both hold the same right: opening /proc/PID/mem and PTRACE_SEIZE run the
 * same ptrace-attach check. Everything after marking (the burst, predicted
 * against achieved, restoring ksmd) is shared.
 *
 * @module
 */
import { ErrorKind, MergememError } from "../errors.ts";
import {
  closeProcMem,
  type ModuleHandle,
  openModule,
  openProcMemForMarking,
} from "../kmod/client.ts";
import {
  MERGEMEM_FEATURE_MERGE,
  MERGEMEM_FEATURE_UNMERGE,
} from "../kmod/uapi.ts";

/** The marking engines. */
export type MarkEngine = "module" | "ptrace";

/** What to do to the VMAs. */
export type MarkAdvice = "merge" | "unmerge";

/** One whole VMA, [start, end). */
export interface VmaRange {
  /** First byte. */
  start: bigint;
  /** One past the last byte. */
  end: bigint;
}

/** What marking one process did. */
export interface MarkOutcome {
  /** VMAs newly marked (merge) or unmarked (unmerge). */
  vmasChanged: number;
  /** Total size of those VMAs, in bytes. */
  bytesChanged: number;
  /** VMAs that already were in the requested state. */
  vmasUnchanged: number;
  /** VMAs KSM cannot handle (shared, VM_IO, ...), left untouched. */
  vmasSkipped: number;
  /** ptrace: the longest time the target was held stopped, in ms;
   * null for engines that never stop it. */
  holdMs: number | null;
}

/** A process that cannot be marked by this engine, and why. */
export class ProcessSkipped extends Error {
  /** The process. */
  readonly pid: number;
  /** Why, for the report ("already traced", "seccomp filter", ...). */
  readonly reason: string;

  /** Builds the error from the pid and a short reason. */
  constructor(pid: number, reason: string) {
    super(`pid ${pid}: ${reason}`);
    this.name = "ProcessSkipped";
    this.pid = pid;
    this.reason = reason;
  }
}

/** An engine that marks whole VMAs of other processes. */
export interface Marker {
  /** Which engine this is. */
  readonly engine: MarkEngine;
  /**
   * Marks (merge) or unmarks (unmerge) the given whole VMAs of pid.
   *
   * @throws SyscallError ESRCH when the process is gone;
   *   {@link ProcessSkipped} when this engine cannot mark it;
   *   MergememError for permission denied.
   */
  markProcess(
    pid: number,
    vmas: VmaRange[],
    advice: MarkAdvice,
    signal?: AbortSignal,
  ): Promise<MarkOutcome>;
  /**
   * Marks every present and future mapping of pid at once
   * (PR_SET_MEMORY_MERGE, 6.4+), where the engine supports it.
   */
  markWholeProcess?(
    pid: number,
    enable: boolean,
    signal?: AbortSignal,
  ): Promise<MarkOutcome>;
  /** Releases what the engine holds (the module's fd). */
  close(): void;
}

/** Adds b's counts into a. */
export function addOutcome(a: MarkOutcome, b: MarkOutcome): void {
  a.vmasChanged += b.vmasChanged;
  a.bytesChanged += b.bytesChanged;
  a.vmasUnchanged += b.vmasUnchanged;
  a.vmasSkipped += b.vmasSkipped;
  if (b.holdMs !== null) a.holdMs = Math.max(a.holdMs ?? 0, b.holdMs);
}

/** An outcome with nothing done. */
export function emptyOutcome(): MarkOutcome {
  return {
    vmasChanged: 0,
    bytesChanged: 0,
    vmasUnchanged: 0,
    vmasSkipped: 0,
    holdMs: null,
  };
}

/**
 * The module engine: MERGE/UNMERGE ioctls on /dev/mergemem, one per VMA,
 * with an fd of /proc/PID/mem as the permission.
 *
 * @param mod an open module handle (default: open /dev/mergemem with the
 *   MERGE and UNMERGE features); closed by close() only when opened here.
 */
export function createModuleMarker(mod?: ModuleHandle): Marker {
  const own = mod === undefined;
  const handle = mod ??
    openModule({
      features: MERGEMEM_FEATURE_MERGE | MERGEMEM_FEATURE_UNMERGE,
    });
  return {
    engine: "module",
    markProcess(pid, vmas, advice, signal) {
      const out = emptyOutcome();
      const fd = openProcMemForMarking(pid);
      try {
        for (const v of vmas) {
          if (signal?.aborted) break;
          const r = advice === "merge"
            ? handle.merge(fd, v.start, v.end)
            : handle.unmerge(fd, v.start, v.end);
          addOutcome(out, { ...r, holdMs: null });
        }
      } finally {
        closeProcMem(fd);
      }
      return Promise.resolve(out);
    },
    close() {
      if (own) handle.close();
    },
  };
}

/** Which engine to use: `auto` picks the module when it is loaded. */
export type EngineChoice = "auto" | MarkEngine;

/**
 * Resolves an engine choice: `module` and `ptrace` as given; `auto` the
 * module when /dev/mergemem opens, else ptrace. A module that is present
 * but incompatible is an error even under `auto`: silently falling back
 * would hide a broken install.
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
  const { createPtraceMarker } = await import("../ptrace/marker.ts");
  return createPtraceMarker();
}
