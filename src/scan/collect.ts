/**
 * Scan phase 2, collect pages: for each process, pagemap (present,
 * anonymous, exclusive, PFN) and a content hash per present candidate
 * page from the {@link HashBackend}, into the columnar page table. Pages
 * that vanish before they are hashed are counted and left out; a process
 * that goes away is marked skipped.
 *
 * @module
 */
import { processGone } from "../errors.ts";
import type { MappingRef } from "../dedup/analyze.ts";
import { type PageTable, reserve, setMapIdx, setPfn } from "../dedup/table.ts";
import { PAGE_EXCLUSIVE, PAGE_HASHED, PAGE_PIN_OK } from "../pages/flags.ts";
import {
  PM_EXCLUSIVE_HI,
  PM_FILE_HI,
  PM_PFN_HI_MASK,
  PM_PRESENT_HI,
  PM_SWAPPED_HI,
  readEntries,
} from "../pages/pagemap.ts";
import { openProcFile } from "../pages/procfile.ts";
import { mayHoldThp } from "../pages/thp.ts";
import type { HashBackend, PageRuns } from "./backend.ts";
import type { ProcState } from "./layouts.ts";
import { lap, type ScanProfile } from "./profile.ts";
import { markSkipped, type Strategy } from "./result.ts";

/** Progress of a running scan, reported after each batch of pages. */
export interface ScanProgress {
  /** The process being scanned. */
  pid: number;
  /** Processes finished (scanned or skipped). */
  processesDone: number;
  /** Processes selected. */
  processesTotal: number;
  /** Candidate pages read so far. */
  pagesDone: number;
  /** Expected candidate pages (from smaps; the real number may differ). */
  pagesTotal: number;
}

/** Inputs of {@link collectPages}. */
export interface CollectOptions {
  backend: HashBackend;
  strategy: Strategy;
  pageSize: number;
  /** Real PFNs (else stand-ins: see PageTable.pfn). */
  pfns: boolean;
  /** Pagemap entries per read. */
  chunk: number;
  /** Processes already done (skipped at selection or layout). */
  done: number;
  /** Processes selected. */
  total: number;
  /** Expected candidate pages, for progress. */
  expected: number;
  profile: ScanProfile;
  onProgress?: (p: ScanProgress) => void | Promise<void>;
}

/**
 * Fills `table` with the candidate pages of every process of `states` and
 * `refs` with their mappings (index = the table's mapIdx).
 */
export async function collectPages(
  states: ProcState[],
  table: PageTable,
  refs: MappingRef[],
  o: CollectOptions,
): Promise<void> {
  const { backend, strategy, pfns, chunk } = o;
  const ps = o.pageSize;
  const kbPerPage = ps / 1024;
  const prof = o.profile;
  const expected = o.expected;
  const total = o.total;
  let done = o.done;
  const keyIds = new Map<string, number>();
  const pm = new Uint32Array(2 * chunk);
  const bits = new Uint8Array(chunk);
  const runs: PageRuns = {
    count: 0,
    addr: new Float64Array(chunk),
    pages: new Uint32Array(chunk),
  };
  let standIn = 1;
  for (const st of states) {
    const pid = st.info.pid;
    const rowStart = table.length;
    st.firstMap = refs.length;
    for (const m of st.maps) refs.push({ pid, start: m.start });
    let file: Deno.FsFile | null = null;
    let target = null;
    try {
      file = openProcFile(pid, "pagemap");
      target = backend.open(pid);
      const ordinal = new Map<string, number>();
      for (let mi = 0; mi < st.maps.length; mi++) {
        const m = st.maps[mi];
        const g = st.firstMap + mi;
        const rss = (m.kb.Rss ?? 0) / kbPerPage;
        if (!m.ksmEligible) {
          st.noncandidate += rss;
          continue;
        }
        const npages = Math.round((m.end - m.start) / ps);
        st.scanned += npages;
        let keyId = 0;
        if (strategy === "equalv") {
          const k = `${m.kind}\0${m.path}`;
          const ord = ordinal.get(k) ?? 0;
          ordinal.set(k, ord + 1);
          const key = `${st.info.exe ?? st.info.comm}\0${k}\0${ord}`;
          keyId = keyIds.get(key) ?? keyIds.size;
          keyIds.set(key, keyId);
        }
        if (m.kb.Rss === 0 && (m.kb.Swap ?? 0) === 0) continue;
        // A pin of a small page of a fork-shared THP unshares it (copies it
        // in the target and splits the huge page) even when pagemap calls
        // it exclusive: never pin pages of a mapping that may hold THPs.
        const pinOk = !mayHoldThp(m);
        const vpn0 = Math.round(m.start / ps);
        for (let off = 0; off < npages; off += chunk) {
          const n = Math.min(chunk, npages - off);
          let tq = performance.now();
          if (readEntries(file, vpn0 + off, n, pm) < n) {
            throw processGone("read", "address space gone");
          }
          tq = lap(prof, "2.pagemap", tq);
          reserve(table, n);
          const row0 = table.length;
          // Pages that may be pinned first, then the others, as own runs:
          // the two are read differently (see PageRuns.noPin).
          let cnt = 0;
          let nx = 0;
          for (let k = 0; k < n; k++) {
            const hi = pm[2 * k + 1];
            if ((hi & PM_PRESENT_HI) === 0) {
              if (hi & PM_SWAPPED_HI) st.swapped++;
              continue;
            }
            if (hi & PM_FILE_HI) {
              st.noncandidate++;
              continue;
            }
            if (!pinOk || (hi & PM_EXCLUSIVE_HI) === 0) nx++;
            cnt++;
          }
          if (cnt === 0) continue;
          for (const pinned of [true, false]) {
            const rowA = pinned ? row0 : row0 + cnt - nx;
            let row = rowA;
            runs.count = 0;
            runs.noPin = !pinned;
            let lastPage = -2;
            for (let k = 0; k < n; k++) {
              const hi = pm[2 * k + 1];
              if ((hi & PM_PRESENT_HI) === 0 || (hi & PM_FILE_HI)) continue;
              const exclusive = (hi & PM_EXCLUSIVE_HI) !== 0;
              if ((pinOk && exclusive) !== pinned) continue;
              setMapIdx(table, row, g);
              table.pageIdx[row] = off + k;
              setPfn(
                table,
                row,
                pfns
                  ? (hi & PM_PFN_HI_MASK) * 0x100000000 + pm[2 * k]
                  : exclusive
                  ? standIn++
                  : 0,
              );
              bits[row - row0] = (exclusive ? PAGE_EXCLUSIVE : 0) |
                (pinned ? PAGE_PIN_OK : 0);
              row++;
              if (lastPage === k - 1) runs.pages[runs.count - 1]++;
              else {
                runs.addr[runs.count] = m.start + (off + k) * ps;
                runs.pages[runs.count] = 1;
                runs.count++;
              }
              lastPage = k;
            }
            if (runs.count === 0) continue;
            tq = lap(prof, "2.decode", tq);
            await backend.hashPages(target, runs, {
              hashLo: table.hashLo,
              hashHi: table.hashHi,
              flags: table.flags,
              offset: rowA,
            });
            tq = lap(prof, pinned ? "2.readv+hash" : "2.mem+hash", tq);
          }
          // Keep the rows that were read; drop the vanished ones.
          let w = row0;
          for (let k = 0; k < cnt; k++) {
            const r = row0 + k;
            if (!(table.flags[r] & PAGE_HASHED)) {
              st.vanished++;
              continue;
            }
            if (w !== r) {
              table.mapIdx[w] = table.mapIdx[r];
              table.pageIdx[w] = table.pageIdx[r];
              table.pfn[w] = table.pfn[r];
              table.hashLo[w] = table.hashLo[r];
              table.hashHi[w] = table.hashHi[r];
            }
            table.flags[w] = table.flags[r] | bits[k];
            if (strategy === "equalv") {
              table.hashHi[w] = keyId;
              table.hashLo[w] = table.pageIdx[w];
            }
            w++;
          }
          table.length = w;
          if (o.onProgress) {
            await o.onProgress({
              pid,
              processesDone: done,
              processesTotal: total,
              pagesDone: table.length,
              pagesTotal: Math.round(expected),
            });
          }
        }
      }
    } catch (err) {
      table.length = rowStart;
      markSkipped(st.result, err);
    } finally {
      file?.close();
      if (target) backend.close(target);
    }
    done++;
  }
}
