/**
 * Markers: the ways mergemem can make whole VMAs of another process
 * mergeable (or unmergeable). KSM only scans memory its owner marked with
 * madvise(MADV_MERGEABLE), and no system call marks another process's
 * memory, so there are two engines:
 *
 * - `module`: /dev/mergemem's MERGE/UNMERGE ioctls (ksm_madvise() in the
 *   kernel), authorised by an fd of /proc/PID/mem (src/kmod/marker.ts);
 * - `ptrace`: the target itself is made to call madvise() through ptrace,
 *   as a debugger would (src/ptrace/), for hosts without the module.
 *
 * Both hold the same right: opening /proc/PID/mem and PTRACE_SEIZE run the
 * same ptrace-attach check. Everything after marking (the burst, predicted
 * against achieved, restoring ksmd) is shared.
 *
 * This file is only the contract between the engines and their users
 * (src/merge/); it imports nothing, so that each engine and each user can
 * depend on it without depending on one another. src/compose/engines.ts
 * chooses the engine.
 *
 * @module
 */

/** The marking engines. */
export type MarkEngine = "module" | "ptrace";

/** What to do to the VMAs. */
export type MarkAdvice = "merge" | "unmerge";

/**
 * What to do about transparent huge pages on a VMA, besides marking it:
 * "nohugepage" (merge) sets MADV_NOHUGEPAGE first, so that khugepaged does
 * not collapse the merged pages back into a private huge page; "restore"
 * (unmerge) clears it again, and "restore-hugepage" also gives back the
 * MADV_HUGEPAGE the VMA had before.
 */
export type ThpAction = "nohugepage" | "restore" | "restore-hugepage";

/** One whole VMA, [start, end). */
export interface VmaRange {
  /** First byte. */
  start: bigint;
  /** One past the last byte. */
  end: bigint;
  /** Huge pages: see {@link ThpAction}; nothing when absent. */
  thp?: ThpAction;
}

/** A VMA whose huge-page flags a {@link ThpAction} changed. */
export interface ThpChange {
  /** First byte. */
  start: bigint;
  /** One past the last byte. */
  end: bigint;
  /** It had MADV_HUGEPAGE before (set by its owner), now cleared. */
  hadHugepage: boolean;
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
  /** The VMAs whose huge-page flags changed as their {@link ThpAction} asked. */
  thpChanged: ThpChange[];
  /** VMAs whose ThpAction the engine could not carry out (an older module). */
  thpUnsupported: number;
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
  a.thpChanged.push(...b.thpChanged);
  a.thpUnsupported += b.thpUnsupported;
}

/** An outcome with nothing done. */
export function emptyOutcome(): MarkOutcome {
  return {
    vmasChanged: 0,
    bytesChanged: 0,
    vmasUnchanged: 0,
    vmasSkipped: 0,
    holdMs: null,
    thpChanged: [],
    thpUnsupported: 0,
  };
}
