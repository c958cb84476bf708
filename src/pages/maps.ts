/**
 * Parsing /proc/PID/maps and /proc/PID/smaps, and classifying mappings by
 * what KSM can do with them.
 *
 * @module
 */
import { processGone } from "../errors.ts";

/** What a mapping is, for mergemem's purposes. */
export type MappingKind =
  /** The brk heap ([heap]). */
  | "heap"
  /** A thread or main stack ([stack]). */
  | "stack"
  /** Private anonymous memory (no path, or a named [anon:...]). */
  | "anon"
  /** A private file-backed mapping (its anonymous, COWed pages count). */
  | "file"
  /** A shared mapping: counted, but KSM cannot merge it. */
  | "shared"
  /** [vvar], [vdso], [vsyscall], ...: never scanned. */
  | "special";

/** One line of maps, with the smaps details when read from smaps. */
export interface Mapping {
  /** Start address (inclusive). Exact below 2^53; [vsyscall] is not. */
  start: number;
  /** End address (exclusive). */
  end: number;
  /** The start address exactly as the kernel printed it, "0x..." form. */
  startHex: string;
  /** The end address exactly, "0x..." form. */
  endHex: string;
  /** "rw-p" and the like. */
  perms: string;
  /** File offset. */
  offset: number;
  /** Device "maj:min". */
  dev: string;
  /** Inode number (0 for anonymous memory). */
  inode: number;
  /** The path or pseudo-name ("[heap]"), without " (deleted)"; "" if none. */
  path: string;
  /** The file was deleted (the kernel appended " (deleted)"). */
  deleted: boolean;
  /** smaps VmFlags ("rd", "wr", "mr", ...); [] when read from maps. */
  vmFlags: string[];
  /** smaps fields in kB (Rss, Anonymous, Swap, ...); {} from maps. */
  kb: Record<string, number>;
  /**
   * smaps THPeligible: the kernel would put transparent huge pages here
   * (its THP mode, the VMA's MADV_(NO)HUGEPAGE, prctl and size all
   * considered); null from maps or a kernel without the line.
   */
  thpEligible: boolean | null;
  /** The classification. */
  kind: MappingKind;
  /** Private and free of every VmFlag that makes ksm_madvise refuse. */
  ksmEligible: boolean;
}

/** Pseudo-files that are not memory to merge. */
const SPECIAL_NAMES: ReadonlySet<string> = new Set([
  "[vvar]",
  "[vvar_vclock]",
  "[vsyscall]",
  "[vdso]",
  "[uprobes]",
]);

/**
 * VmFlags that make a mapping ineligible for KSM (mm/ksm.c, vma_ksm_compatible):
 * sh shared, ms may-share, io I/O, pf PFN map, de don't-expand (special),
 * ht hugetlb, mm mixed map, dx DAX.
 */
const KSM_INCOMPATIBLE_FLAGS: ReadonlySet<string> = new Set([
  "sh",
  "ms",
  "io",
  "pf",
  "de",
  "ht",
  "mm",
  "dx",
]);

const HEADER =
  /^([0-9a-f]+)-([0-9a-f]+) ([r-][w-][x-][sp]) ([0-9a-f]+) ([0-9a-f]+:[0-9a-f]+) (\d+)(?: +(.*))?$/;
const DELETED = " (deleted)";

/** Parses one maps line; null if it is not one. */
function parseMapsLine(line: string): Mapping | null {
  const m = HEADER.exec(line);
  if (!m) return null;
  let path = m[7] ?? "";
  let deleted = false;
  if (path.endsWith(DELETED)) {
    path = path.slice(0, -DELETED.length);
    deleted = true;
  }
  const mapping: Mapping = {
    start: parseInt(m[1], 16),
    end: parseInt(m[2], 16),
    startHex: "0x" + m[1],
    endHex: "0x" + m[2],
    perms: m[3],
    offset: parseInt(m[4], 16),
    dev: m[5],
    inode: Number(m[6]),
    path,
    deleted,
    vmFlags: [],
    kb: {},
    thpEligible: null,
    kind: "anon",
    ksmEligible: false,
  };
  classify(mapping);
  return mapping;
}

/** Sets `kind` and `ksmEligible` from perms, path and VmFlags. */
export function classify(m: Mapping): void {
  const shared = m.perms[3] === "s" || m.vmFlags.includes("sh");
  if (SPECIAL_NAMES.has(m.path)) m.kind = "special";
  else if (shared) m.kind = "shared";
  else if (m.path === "[heap]") m.kind = "heap";
  else if (m.path === "[stack]" || m.path.startsWith("[stack:")) {
    m.kind = "stack";
  } else if (m.inode !== 0 || m.path.startsWith("/")) m.kind = "file";
  else m.kind = "anon";
  m.ksmEligible = m.kind !== "special" && m.kind !== "shared" &&
    !m.vmFlags.some((f) => KSM_INCOMPATIBLE_FLAGS.has(f));
}

/** Parses /proc/PID/maps text. */
export function parseMaps(text: string): Mapping[] {
  const out: Mapping[] = [];
  for (const line of text.split("\n")) {
    if (!line) continue;
    const m = parseMapsLine(line);
    if (!m) throw new Error(`malformed maps line: ${line}`);
    out.push(m);
  }
  return out;
}

const FIELD = /^([A-Za-z_]+):\s+(\d+) kB$/;
const THP_ELIGIBLE = /^THPeligible:\s+(\d+)$/;

/** Parses /proc/PID/smaps text: maps headers plus their fields. */
export function parseSmaps(text: string): Mapping[] {
  const out: Mapping[] = [];
  let cur: Mapping | null = null;
  for (const line of text.split("\n")) {
    if (!line) continue;
    if (line.startsWith("VmFlags:")) {
      if (!cur) throw new Error("VmFlags before any mapping");
      cur.vmFlags = line.slice(8).trim().split(/\s+/).filter(Boolean);
      classify(cur);
      continue;
    }
    const f = FIELD.exec(line);
    if (f && cur) {
      cur.kb[f[1]] = Number(f[2]);
      continue;
    }
    const t = THP_ELIGIBLE.exec(line);
    if (t && cur) {
      cur.thpEligible = t[1] !== "0";
      continue;
    }
    const m = parseMapsLine(line);
    if (m) {
      out.push(m);
      cur = m;
    } else if (!cur || !/^[A-Za-z_]+:/.test(line)) {
      throw new Error(`malformed smaps line: ${line}`);
    }
  }
  return out;
}

/**
 * Reads and parses /proc/PID/smaps.
 *
 * @throws {SyscallError} ESRCH when the process has no address space any
 *   more: a zombie's smaps reads as empty (a live user process always has
 *   mappings; kernel threads are never scanned).
 */
export function readSmaps(pid: number): Mapping[] {
  const maps = parseSmaps(Deno.readTextFileSync(`/proc/${pid}/smaps`));
  if (maps.length === 0) {
    throw processGone("read", `/proc/${pid}/smaps is empty (exited)`);
  }
  return maps;
}
