/**
 * Scan phase 1, read layouts: every selected process's mappings from
 * /proc/PID/smaps (VmFlags, sizes). A process that cannot be read is
 * marked skipped with its reason.
 *
 * @module
 */
import type { Mapping } from "../pages/maps.ts";
import { readSmaps } from "../pages/maps.ts";
import type { ProcInfo } from "../proc/info.ts";
import type { SelectionResult } from "../proc/select.ts";
import { emptyTotals, markSkipped, type ProcessResult } from "./result.ts";

/** A process being scanned: its result and what the phases learn. */
export interface ProcState {
  info: ProcInfo;
  result: ProcessResult;
  maps: Mapping[];
  /** Global index of this process's first mapping. */
  firstMap: number;
  noncandidate: number;
  swapped: number;
  vanished: number;
  scanned: number;
}

/** What {@link readLayouts} found. */
export interface Layouts {
  /** The processes whose smaps could be read, by ascending pid. */
  states: ProcState[];
  /** One result per selected process, skipped ones included. */
  results: ProcessResult[];
  /** Candidate pages expected (smaps Anonymous of eligible mappings). */
  expected: number;
}

/** Reads the smaps of every selected process. */
export function readLayouts(
  sel: SelectionResult,
  pageSize: number,
  pfns: boolean,
  root: boolean,
): Layouts {
  const kbPerPage = pageSize / 1024;
  const states: ProcState[] = [];
  const results: ProcessResult[] = [];
  for (const s of sel.skipped) {
    results.push({
      pid: s.pid,
      comm: "",
      uid: -1,
      exe: null,
      container: null,
      pod: null,
      skipped: { reason: s.reason, message: s.message },
      totals: emptyTotals(pfns, root),
      mappings: [],
    });
  }
  let expected = 0;
  for (const info of sel.processes) {
    const result: ProcessResult = {
      pid: info.pid,
      comm: info.comm,
      uid: info.uid,
      exe: info.exe,
      container: null,
      pod: null,
      skipped: null,
      totals: emptyTotals(pfns, root),
      mappings: [],
    };
    results.push(result);
    try {
      const maps = readSmaps(info.pid);
      for (const m of maps) {
        if (m.ksmEligible) expected += (m.kb.Anonymous ?? 0) / kbPerPage;
      }
      states.push({
        info,
        result,
        maps,
        firstMap: 0,
        noncandidate: 0,
        swapped: 0,
        vanished: 0,
        scanned: 0,
      });
    } catch (err) {
      markSkipped(result, err);
    }
  }
  return { states, results, expected };
}
