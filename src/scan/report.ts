/**
 * Scan phase 5, build results: the analysis's per-mapping counters as
 * mapping, process and total figures (they add up: docs/accounting.md).
 *
 * @module
 */
import type { MappingCounters } from "../dedup/analyze.ts";
import type { ProcState } from "./layouts.ts";
import {
  addTotals,
  emptyTotals,
  type MappingResult,
  type ProcessResult,
  type Totals,
} from "./result.ts";

/** Fills each scanned process's mappings and totals; returns the totals. */
export function buildResults(
  states: ProcState[],
  results: ProcessResult[],
  c: MappingCounters,
  pageSize: number,
  pfns: boolean,
  root: boolean,
  ksmFlag: boolean,
): Totals & { processes: number; processes_skipped: number } {
  const ps = pageSize;
  const kbPerPage = ps / 1024;
  const totals = {
    ...emptyTotals(pfns, root),
    processes: 0,
    processes_skipped: 0,
  };
  for (const st of states) {
    const r = st.result;
    if (r.skipped) continue;
    const t = r.totals;
    st.maps.forEach((m, mi) => {
      const g = st.firstMap + mi;
      const mr: MappingResult = {
        start: m.startHex,
        end: m.endHex,
        perms: m.perms,
        kind: m.kind,
        path: m.path,
        deleted: m.deleted,
        ksm_eligible: m.ksmEligible,
        rss_pages: (m.kb.Rss ?? 0) / kbPerPage,
        pages_present: c.present[g],
        pages_zero: c.zero[g],
        pages_duplicate: c.duplicate[g],
        pages_shared_already: pfns ? c.sharedAlready[g] : null,
        pages_shared_already_estimate: c.sharedEstimate[g],
        saveable_pages: c.saveable[g],
      };
      r.mappings.push(mr);
      t.rss_pages += mr.rss_pages;
      t.pages_present += mr.pages_present;
      t.pages_zero += mr.pages_zero;
      t.pages_duplicate += mr.pages_duplicate;
      if (t.pages_shared_already !== null) {
        t.pages_shared_already += c.sharedAlready[g];
      }
      t.pages_shared_already_estimate += mr.pages_shared_already_estimate;
      t.saveable_pages += mr.saveable_pages;
      if (t.pages_ksm !== null) t.pages_ksm += c.ksm[g];
      if (!ksmFlag) t.pages_ksm = null;
      if (t.pages_thp !== null) t.pages_thp += c.thp[g];
    });
    t.pages_scanned = st.scanned;
    t.noncandidate_present_pages = st.noncandidate;
    t.pages_swapped = st.swapped;
    t.pages_vanished = st.vanished;
    t.saveable_bytes = t.saveable_pages * ps;
  }
  for (const r of results) {
    if (r.skipped) totals.processes_skipped++;
    else {
      totals.processes++;
      addTotals(totals, r.totals);
    }
  }
  if (!ksmFlag) totals.pages_ksm = null;
  return totals;
}
