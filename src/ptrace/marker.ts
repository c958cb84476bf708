/**
 * The ptrace marker: marks whole VMAs of a running process mergeable (or
 * unmergeable) by making one of its threads call madvise() itself, or
 * with `markWholeProcess`, prctl(PR_SET_MEMORY_MERGE). For hosts without
 * the module; the injection itself is src/ptrace/session.ts.
 *
 * Like the module path, it marks whole VMAs: each range given is widened
 * to the VMAs it intersects in the target's smaps at the time of marking,
 * and what changed is read back from smaps (VmFlags "mg"). Unlike the
 * module, which holds the target's mmap lock, other threads of the target
 * keep running meanwhile; a VMA that another thread resizes between the
 * smaps read and the call can end up split (the marked part is merged
 * all the same).
 *
 * The calls of one process run in as few holds as possible, each ended
 * once it has lasted `holdBudgetMs` (every hold costs the target one stop,
 * which for example makes an epoll_wait() return EINTR). The longest hold
 * is reported as holdMs. A slow MADV_UNMERGEABLE (it breaks every merged
 * page of the VMA) is interrupted after `callTimeoutMs` and resumed in a
 * new hold, so the target runs in between.
 *
 * SIGINT and SIGTERM are caught while a process is being marked: a hold
 * is never cut short by them; marking stops at the next hold boundary and
 * MergememError(Interrupted) is thrown once the target is detached.
 *
 * @module
 */
import {
  errnoCode,
  ErrorKind,
  ErrorReason,
  MergememError,
  processGone,
} from "../errors.ts";
import {
  emptyOutcome,
  type MarkAdvice,
  type Marker,
  type MarkOutcome,
  type VmaRange,
} from "../engine/marker.ts";
import { parseSmaps } from "../pages/maps.ts";
import { deferSignals } from "./interrupt.ts";
import {
  PtraceSession,
  type SessionOptions,
  settleStragglers,
} from "./session.ts";
import { NR_MADVISE, NR_PRCTL, prctlSelf } from "./sys.ts";
import { requireX86_64Host } from "./target.ts";

/** madvise advice values (asm-generic/mman-common.h). */
export const MADV_MERGEABLE = 12;
export const MADV_UNMERGEABLE = 13;
/** MADV_HUGEPAGE: gives back a VMA's VM_HUGEPAGE (and clears nh). */
export const MADV_HUGEPAGE = 14;
/** MADV_NOHUGEPAGE: keeps khugepaged off the merged pages. */
export const MADV_NOHUGEPAGE = 15;
/** prctl options (linux/prctl.h, 6.4+). */
export const PR_SET_MEMORY_MERGE = 67;
export const PR_GET_MEMORY_MERGE = 68;

const EINTR = -4n;
const EINVAL = -22n;

/** Options of {@link createPtraceMarker}. */
export interface PtraceMarkerOptions
  extends Pick<SessionOptions, "stopTimeoutMs" | "callTimeoutMs"> {
  /** Start no further call in a hold that has lasted this long, ms
   * (default 50). */
  holdBudgetMs?: number;
  /** Holds one slow call may be spread over before giving up (default
   * 120). */
  maxSlices?: number;
}

interface Vma {
  start: bigint;
  end: bigint;
  /** VmFlags mg (VM_MERGEABLE), nh (VM_NOHUGEPAGE), hg (VM_HUGEPAGE). */
  mg: boolean;
  nh: boolean;
  hg: boolean;
}

/** The target's VMAs with their flags; ESRCH when it is gone. */
function readVmas(pid: number): Vma[] {
  let text: string;
  try {
    text = Deno.readTextFileSync(`/proc/${pid}/smaps`);
  } catch (err) {
    const code = errnoCode(err);
    if (code === "ENOENT" || code === "ESRCH") {
      throw processGone("open", `/proc/${pid}/smaps`);
    }
    throw err;
  }
  return parseSmaps(text).map((m) => ({
    start: BigInt(m.start),
    end: BigInt(m.end),
    mg: m.vmFlags.includes("mg"),
    nh: m.vmFlags.includes("nh"),
    hg: m.vmFlags.includes("hg"),
  }));
}

const tick = () => new Promise((r) => setTimeout(r, 0));

/**
 * The ptrace engine (x86-64 only). See the module doc.
 *
 * @throws MergememError (NoModule) on a host that is not x86-64 Linux.
 */
export function createPtraceMarker(opts: PtraceMarkerOptions = {}): Marker {
  requireX86_64Host();
  const budget = opts.holdBudgetMs ?? 50;
  const maxSlices = opts.maxSlices ?? 120;
  const sessionOpts: SessionOptions = {
    stopTimeoutMs: opts.stopTimeoutMs,
    callTimeoutMs: opts.callTimeoutMs ?? 1000,
  };

  /**
   * Runs calls[i] for each i in as few holds as possible; a call cut
   * short by its timeout (-EINTR) is resumed in the next hold.
   */
  async function runCalls(
    pid: number,
    calls: { nr: number; args: bigint[] }[],
    stopped: () => boolean,
  ): Promise<{ results: bigint[]; holdMs: number }> {
    const results: bigint[] = [];
    let holdMs = 0;
    let slices = 0;
    while (results.length < calls.length && !stopped()) {
      const s = PtraceSession.open(pid, sessionOpts);
      try {
        while (results.length < calls.length && s.holdMs < budget) {
          const c = calls[results.length];
          const r = s.call(c.nr, c.args);
          if (r === EINTR) {
            if (++slices > maxSlices) {
              throw new MergememError(
                `pid ${pid}: a marking call did not finish in ${maxSlices} holds`,
                ErrorKind.Failed,
              );
            }
            break; // let the target run, then go on in a new hold
          }
          results.push(r);
        }
      } finally {
        holdMs = Math.max(holdMs, s.close());
      }
      await tick();
    }
    return { results, holdMs };
  }

  return {
    engine: "ptrace",

    async markProcess(
      pid: number,
      vmas: VmaRange[],
      advice: MarkAdvice,
      signal?: AbortSignal,
    ): Promise<MarkOutcome> {
      const out = emptyOutcome();
      const before = readVmas(pid);
      const chosen = before.filter((v) =>
        vmas.some((r) => r.start < v.end && v.start < r.end)
      );
      const want = advice === "merge";
      const todo = chosen.filter((v) => v.mg !== want);
      out.vmasUnchanged = chosen.length - todo.length;
      // Huge pages (VmaRange.thp): MADV_NOHUGEPAGE before marking; after
      // unmarking, MADV_HUGEPAGE gives back a VMA's own VM_HUGEPAGE. No
      // madvise() returns a VMA to having neither flag: "restore" is left
      // to the module (thpUnsupported; its record stays).
      const thpOf = (v: Vma) =>
        vmas.find((r) => r.start < v.end && v.start < r.end)?.thp;
      const nohuge = want
        ? chosen.filter((v) => thpOf(v) === "nohugepage" && !v.nh)
        : [];
      const rehuge = want
        ? []
        : chosen.filter((v) => thpOf(v) === "restore-hugepage" && v.nh);
      out.thpUnsupported = want
        ? 0
        : chosen.filter((v) => thpOf(v) === "restore" && v.nh).length;
      if (todo.length + nohuge.length + rehuge.length === 0) return out;
      const adv = BigInt(want ? MADV_MERGEABLE : MADV_UNMERGEABLE);
      const call = (v: Vma, advice: bigint) => ({
        nr: NR_MADVISE,
        args: [v.start, v.end - v.start, advice],
      });
      const defer = deferSignals();
      try {
        const { holdMs } = await runCalls(
          pid,
          [
            ...nohuge.map((v) => call(v, BigInt(MADV_NOHUGEPAGE))),
            ...todo.map((v) => call(v, adv)),
            ...rehuge.map((v) => call(v, BigInt(MADV_HUGEPAGE))),
          ],
          () => signal?.aborted === true || defer.caught !== undefined,
        );
        out.holdMs = holdMs;
      } finally {
        await defer.release();
      }
      const after = new Map(readVmas(pid).map((v) => [v.start, v]));
      for (const v of todo) {
        const a = after.get(v.start);
        if (a && a.mg === want) {
          out.vmasChanged++;
          out.bytesChanged += Number(a.end - a.start);
        } else out.vmasSkipped++;
      }
      for (const v of [...nohuge, ...rehuge]) {
        const a = after.get(v.start);
        if (a && a.end === v.end && a.nh !== v.nh) {
          out.thpChanged.push({
            start: v.start,
            end: v.end,
            hadHugepage: v.hg || !want,
          });
        }
      }
      return out;
    },

    async markWholeProcess(
      pid: number,
      enable: boolean,
      signal?: AbortSignal,
    ): Promise<MarkOutcome> {
      if (prctlSelf(PR_GET_MEMORY_MERGE) < 0) {
        throw new MergememError(
          "whole-process marking needs PR_SET_MEMORY_MERGE (Linux 6.4+), which this kernel lacks",
          ErrorKind.Usage,
          { reason: ErrorReason.NoMemoryMerge },
        );
      }
      const out = emptyOutcome();
      const before = new Map(readVmas(pid).map((v) => [v.start, v]));
      const defer = deferSignals();
      let result: bigint | undefined;
      try {
        const r = await runCalls(
          pid,
          [{
            nr: NR_PRCTL,
            args: [BigInt(PR_SET_MEMORY_MERGE), enable ? 1n : 0n, 0n, 0n, 0n],
          }],
          () => signal?.aborted === true || defer.caught !== undefined,
        );
        out.holdMs = r.holdMs;
        result = r.results[0];
      } finally {
        await defer.release();
      }
      if (result === EINVAL) {
        throw new MergememError(
          `pid ${pid}: PR_SET_MEMORY_MERGE failed (EINVAL)`,
          ErrorKind.Failed,
        );
      }
      for (const a of readVmas(pid)) {
        const b = before.get(a.start);
        if (a.mg !== enable) out.vmasSkipped++;
        else if (b && b.mg === a.mg) out.vmasUnchanged++;
        else {
          out.vmasChanged++;
          out.bytesChanged += Number(a.end - a.start);
        }
      }
      return out;
    },

    close() {
      settleStragglers();
    },
  };
}
