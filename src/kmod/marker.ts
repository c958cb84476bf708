/**
 * The module marker: /dev/mergemem's MERGE/UNMERGE ioctls, which call
 * ksm_madvise() on whole VMAs of another process, with an fd of its
 * /proc/PID/mem as the permission. The contract it implements is
 * src/engine/marker.ts; the other engine is src/ptrace/.
 *
 * @module
 */
import { addOutcome, emptyOutcome, type Marker } from "../engine/marker.ts";
import {
  closeProcMem,
  type ModuleHandle,
  openModule,
  openProcMemForMarking,
} from "./client.ts";
import { MERGEMEM_FEATURE_MERGE, MERGEMEM_FEATURE_UNMERGE } from "./uapi.ts";

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
