/**
 * The scan result: the "mergemem.scan/1" JSON document. Field names are
 * snake_case so that the object IS the JSON (JSON.stringify(result)).
 * Documented in docs/json-schema.md; counting rules in docs/accounting.md.
 *
 * @module
 */
import { messageOf } from "../errors.ts";
import type { MappingKind } from "../pages/maps.ts";
import type { Tenancy } from "../proc/tenant.ts";
import { type SkipReason, skipReasonOf } from "../proc/select.ts";

/** The schema identifier. */
export const SCAN_SCHEMA = "mergemem.scan/1";

/** How duplicates are looked for. */
export type Strategy = "hash" | "equalv";

/** Page counts. Every pages_* figure counts candidate pages only:
 * anonymous pages (pagemap bit 61 clear) in KSM-eligible mappings. */
export interface PageCounts {
  /** Candidate pages present in RAM and read. */
  pages_present: number;
  /** Of those, pages whose content is all zero (not duplicates). */
  pages_zero: number;
  /** Non-zero pages whose content also sits in another frame. */
  pages_duplicate: number;
  /** Pages whose frame another scanned page also maps (fork COW, KSM);
   * null when PFNs are unavailable (no CAP_SYS_ADMIN). */
  pages_shared_already: number | null;
  /** Pages not exclusively mapped (pagemap bit 56 clear): an upper-bound
   * estimate of pages_shared_already that needs no privilege. */
  pages_shared_already_estimate: number;
  /** Frames merging would free: distinct frames minus distinct contents
   * (an estimate when pfns_available is false). */
  saveable_pages: number;
  /**
   * Sampled scans only (ScanResult.sample): pages_duplicate,
   * pages_shared_already and saveable_pages are then estimates, each
   * within ± its error bound (ScanResult.sample.z standard errors) of the
   * exact figure. Absent from exact scans.
   */
  pages_duplicate_error_bound?: number;
  /** See pages_duplicate_error_bound; null with pages_shared_already. */
  pages_shared_already_error_bound?: number | null;
  /** See pages_duplicate_error_bound. */
  saveable_pages_error_bound?: number;
}

/** Per-process and whole-scan totals. */
export interface Totals extends PageCounts {
  /** Pages in the KSM-eligible mappings examined, present or not. */
  pages_scanned: number;
  /** saveable_pages * page_size. */
  saveable_bytes: number;
  /** Sampled scans only: saveable_pages_error_bound * page_size. */
  saveable_bytes_error_bound?: number;
  /** Resident pages of every mapping (smaps Rss), candidates or not. */
  rss_pages: number;
  /** Resident pages that are not candidates (page-cache pages, shared or
   * ineligible mappings). */
  noncandidate_present_pages: number;
  /** Candidate-mapping pages that are swapped out (never read). */
  pages_swapped: number;
  /** Pages present in pagemap that could no longer be read when hashed. */
  pages_vanished: number;
  /** Candidate pages already merged by KSM (kpageflags); null without
   * root. */
  pages_ksm: number | null;
  /** Candidate pages in transparent huge pages; null without root. */
  pages_thp: number | null;
}

/** One mapping of a scanned process. */
export interface MappingResult extends PageCounts {
  /** Start address, "0x..." hex. */
  start: string;
  /** End address (exclusive), "0x..." hex. */
  end: string;
  /** "rw-p" and the like. */
  perms: string;
  /** What the mapping is (heap, stack, anon, file, shared, special). */
  kind: MappingKind;
  /** Path or pseudo-name, without " (deleted)"; "" for anonymous memory. */
  path: string;
  /** The file was deleted. */
  deleted: boolean;
  /** Whether KSM can merge this mapping. */
  ksm_eligible: boolean;
  /** smaps Rss in pages. */
  rss_pages: number;
}

/** Why a process was not scanned. */
export interface Skip {
  /** Why (errno name). */
  reason: SkipReason;
  /** One-line message for the user. */
  message: string;
}

/** One selected process. */
export interface ProcessResult {
  /** Process id. */
  pid: number;
  /** Command name (/proc/PID/comm). */
  comm: string;
  /** Real uid (-1 if unknown because the process was gone). */
  uid: number;
  /** Executable path; null if unreadable. */
  exe: string | null;
  /** Its container, or null (src/proc/tenant.ts). */
  container: Tenancy["container"];
  /** Its pod (Kubernetes: with namespace and name when known), or null. */
  pod: Tenancy["pod"];
  /** null when scanned; otherwise why not (its counts are then all 0). */
  skipped: Skip | null;
  /** The process's totals over its mappings (all 0 when skipped). */
  totals: Totals;
  /** Its mappings in address order; [] when skipped. */
  mappings: MappingResult[];
}

/** Whole-scan totals. */
export interface ScanTotals extends Totals {
  /** Processes scanned (not skipped). */
  processes: number;
  /** Processes skipped. */
  processes_skipped: number;
}

/** The result of a scan: the "mergemem.scan/1" document. */
export interface ScanResult {
  /** The schema identifier, "mergemem.scan/1". */
  schema: typeof SCAN_SCHEMA;
  /** Page size in bytes. */
  page_size: number;
  /** How duplicates were looked for. */
  strategy: Strategy;
  /** The checksum used ("none" for equalv, which compares directly). */
  checksum: string;
  /** The page-hash back-end ("user" or "kernel"). */
  backend: "user" | "kernel";
  /** Whether the scan's reads marked the pages accessed (README "Page
   * aging"): true for the user back-end, false for a current module. */
  marks_pages_accessed: boolean;
  /** false without CAP_SYS_ADMIN: pages_shared_already is null and
   * pages_duplicate and saveable_pages are estimates. */
  pfns_available: boolean;
  /** Seconds the scan took. */
  elapsed_seconds: number;
  /** Totals over every selected process. */
  totals: ScanTotals;
  /** Every selected process, by ascending pid. */
  processes: ProcessResult[];
  /** Notes for the user (missing privileges, selection notes, ...). */
  warnings: string[];
  /**
   * Present (false) only when the scan trusted the 64-bit hash instead of
   * confirming matches byte by byte (ScanOptions.confirm false, for
   * predictions such as merge planning). Absent: every match confirmed.
   */
  confirmed?: false;
  /**
   * Present only for a sampled scan (ScanOptions.sample, `scan --sample
   * N`): the contents kept (slice `slice` of `slices`, by content hash),
   * and the error bounds' width in standard errors (`z`). pages_present,
   * pages_zero, pages_scanned and the other page counts are exact;
   * pages_duplicate, pages_shared_already and saveable_pages (and bytes)
   * are estimates with *_error_bound fields; pages_ksm and pages_thp are
   * null (not counted) when slices > 1.
   */
  sample?: { slices: number; slice: number; z: number };
  /**
   * Present only when an exact scan ran in more than one pass, each
   * keeping one content slice (ScanOptions.maxMemory): how many.
   */
  passes?: number;
}

/** Zeroed {@link Totals}. */
export function emptyTotals(pfns: boolean, root: boolean): Totals {
  return {
    pages_scanned: 0,
    pages_present: 0,
    pages_zero: 0,
    pages_duplicate: 0,
    pages_shared_already: pfns ? 0 : null,
    pages_shared_already_estimate: 0,
    saveable_pages: 0,
    saveable_bytes: 0,
    rss_pages: 0,
    noncandidate_present_pages: 0,
    pages_swapped: 0,
    pages_vanished: 0,
    pages_ksm: root ? 0 : null,
    pages_thp: root ? 0 : null,
  };
}

/** Adds `b` into `a` (nulls stay null). */
export function addTotals(a: Totals, b: Totals): void {
  for (const k of Object.keys(b) as (keyof Totals)[]) {
    const x = a[k], y = b[k];
    // An error bound absent from `a` starts at 0; bounds add up (the
    // bound of a sum is at most the sum of the bounds).
    if (x !== null && y !== null && y !== undefined) {
      (a as unknown as Record<string, number>)[k] = (x ?? 0) + y;
    }
  }
}

/** Marks a process skipped, or rethrows an error that is not about it. */
export function markSkipped(r: ProcessResult, err: unknown): void {
  const reason = skipReasonOf(err);
  if (!reason) throw err;
  r.skipped = {
    reason,
    message: messageOf(err),
  };
  r.mappings = [];
  const t: Totals = r.totals;
  for (const k of Object.keys(t) as (keyof Totals)[]) {
    if (t[k] !== null) (t as unknown as Record<string, number>)[k] = 0;
  }
}
