/**
 * The module marker: /dev/mergemem's MERGE/UNMERGE ioctls, which call
 * ksm_madvise() on whole VMAs of another process, with an fd of its
 * /proc/PID/mem as the permission. The contract it implements is
 * src/engine/marker.ts; the other engine is src/ptrace/.
 *
 * @module
 */
import {
  addOutcome,
  emptyOutcome,
  type Marker,
  type MarkOutcome,
  type ThpAction,
  type VmaRange,
} from "../engine/marker.ts";
import {
  closeProcMem,
  type ModuleHandle,
  openModule,
  openProcMemForMarking,
} from "./client.ts";
import {
  MERGEMEM_FEATURE_MERGE,
  MERGEMEM_FEATURE_THP,
  MERGEMEM_FEATURE_UNMERGE,
  MERGEMEM_THP_HUGEPAGE,
  MERGEMEM_THP_NOHUGEPAGE,
  MERGEMEM_THP_RESTORE,
} from "./uapi.ts";

/**
 * The module engine: MERGE/UNMERGE ioctls on /dev/mergemem, one per VMA,
 * with an fd of /proc/PID/mem as the permission; a VMA's ThpAction is the
 * THP ioctl, before MERGE and after UNMERGE (modules without
 * MERGEMEM_FEATURE_THP count it in thpUnsupported).
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
  const thpSupported = (handle.features & MERGEMEM_FEATURE_THP) !== 0n;
  return {
    engine: "module",
    markProcess(pid, vmas, advice, signal) {
      const out = emptyOutcome();
      const fd = openProcMemForMarking(pid);
      try {
        for (const v of vmas) {
          if (signal?.aborted) break;
          // NOHUGEPAGE before marking: ksmd may merge at once, and
          // khugepaged must not collapse what it merged.
          if (advice === "merge") applyThp(handle, fd, v, thpSupported, out);
          const r = advice === "merge"
            ? handle.merge(fd, v.start, v.end)
            : handle.unmerge(fd, v.start, v.end);
          addOutcome(out, {
            ...r,
            holdMs: null,
            thpChanged: [],
            thpUnsupported: 0,
          });
          if (advice === "unmerge") {
            applyThp(handle, fd, v, thpSupported, out);
          }
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

/** The MERGEMEM_THP_* flags of an action. */
const THP_FLAGS: Record<ThpAction, number> = {
  nohugepage: MERGEMEM_THP_NOHUGEPAGE,
  restore: MERGEMEM_THP_RESTORE,
  "restore-hugepage": MERGEMEM_THP_RESTORE | MERGEMEM_THP_HUGEPAGE,
};

/** Carries out v.thp, if any, recording the change in out. */
function applyThp(
  handle: ModuleHandle,
  fd: number,
  v: VmaRange,
  supported: boolean,
  out: MarkOutcome,
): void {
  if (!v.thp) return;
  if (!supported) {
    out.thpUnsupported++;
    return;
  }
  const r = handle.thp(fd, v.start, v.end, THP_FLAGS[v.thp]);
  if (r.vmasChanged > 0) {
    out.thpChanged.push({
      start: v.start,
      end: v.end,
      hadHugepage: r.vmasHugepage > 0,
    });
  }
}
