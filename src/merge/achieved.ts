/**
 * What a merge achieved, measured on the selection itself: the distinct
 * physical frames behind the candidate pages of the chosen VMAs, before
 * and after. The difference is the memory this selection freed, whatever
 * freed it (a KSM merge, a KSM zero page, a THP split onto the shared zero
 * page) and whatever other KSM users on the host did meanwhile, which the
 * global pages_sharing delta cannot tell apart.
 *
 * Candidate pages are those of the accounting (docs/accounting.md):
 * present and anonymous (pagemap bit 61 clear). The shared zero page, and
 * the huge zero page, cost nothing and are not frames of the selection;
 * they are recognised by KPF_ZERO_PAGE. Only pagemap and kpageflags are
 * read, never page contents, so a measure is cheap enough to repeat during
 * the ksmd burst. PFNs need CAP_SYS_ADMIN (see {@link FramesUnavailable}).
 *
 * Processes that exit between two measures are left out of both: the
 * figure is over the survivors.
 *
 * @module
 */
import { errnoCode } from "../errors.ts";
import {
  KPF_ZERO_PAGE,
  PM_EXCLUSIVE_HI,
  PM_FILE_HI,
  PM_PFN_HI_MASK,
  PM_PRESENT_HI,
  readEntries,
} from "../pages/pagemap.ts";
import { systemPageSize } from "../pages/pagesize.ts";
import type { VmaRange } from "./marker.ts";

/** Thrown when pagemap hides PFNs (no CAP_SYS_ADMIN). */
export class FramesUnavailable extends Error {
  /** Builds the error. */
  constructor() {
    super("pagemap shows no PFNs without CAP_SYS_ADMIN");
    this.name = "FramesUnavailable";
  }
}

/** The frames of each process, by pid; a pid that is gone is absent. */
export type FrameSets = Map<number, Set<number>>;

const CHUNK = 65536;

/**
 * Reads the distinct frames behind the present anonymous pages of `vmas`
 * in `pid`, without the zero pages. Returns undefined when the process is
 * gone (ESRCH/ENOENT, or its address space vanished mid-read).
 *
 * @throws FramesUnavailable when PFNs are hidden.
 */
export function readFrames(
  pid: number,
  vmas: VmaRange[],
  zero: ZeroPages,
): Set<number> | undefined {
  const ps = BigInt(systemPageSize());
  const frames = new Set<number>();
  const shared: number[] = [];
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(`/proc/${pid}/pagemap`);
  } catch (err) {
    if (gone(err)) return undefined;
    throw err;
  }
  const buf = new Uint32Array(2 * CHUNK);
  try {
    for (const v of vmas) {
      const first = Number(v.start / ps), last = Number(v.end / ps);
      for (let i = first; i < last; i += CHUNK) {
        const want = Math.min(CHUNK, last - i);
        const got = readEntries(file, i, want, buf);
        if (got < want && got === 0) return undefined;
        for (let k = 0; k < got; k++) {
          const hi = buf[2 * k + 1];
          if ((hi & PM_PRESENT_HI) === 0 || (hi & PM_FILE_HI) !== 0) continue;
          const pfn = (hi & PM_PFN_HI_MASK) * 0x100000000 + buf[2 * k];
          if (pfn === 0) throw new FramesUnavailable();
          if (frames.has(pfn)) continue;
          frames.add(pfn);
          // An exclusively mapped page is never a zero page; the others
          // (fork-shared, KSM, zero) are checked in kpageflags.
          if ((hi & PM_EXCLUSIVE_HI) === 0) shared.push(pfn);
        }
      }
    }
  } catch (err) {
    if (gone(err)) return undefined;
    throw err;
  } finally {
    file.close();
  }
  for (const pfn of shared) if (zero.isZero(pfn)) frames.delete(pfn);
  return frames;
}

/** Recognises zero-page PFNs through /proc/kpageflags, with a cache. */
export class ZeroPages {
  #file: Deno.FsFile | undefined;
  #zero = new Set<number>();
  #word = new Uint32Array(2);

  /** Opens /proc/kpageflags lazily; without it nothing is a zero page. */
  constructor(private readonly path = "/proc/kpageflags") {}

  /** Whether pfn is the shared zero page or part of the huge zero page. */
  isZero(pfn: number): boolean {
    if (this.#zero.has(pfn)) return true;
    try {
      this.#file ??= Deno.openSync(this.path);
    } catch {
      return false;
    }
    if (readEntries(this.#file, pfn, 1, this.#word) !== 1) return false;
    // The zero pages never change PFN while they exist: cache hits only.
    const z = (this.#word[0] & (1 << KPF_ZERO_PAGE)) !== 0;
    if (z) this.#zero.add(pfn);
    return z;
  }

  /** Closes kpageflags. */
  close(): void {
    this.#file?.close();
    this.#file = undefined;
  }
}

/** Reads the frames of every process; gone processes are left out. */
export function readSelectionFrames(
  vmas: Map<number, VmaRange[]>,
  zero: ZeroPages,
): FrameSets {
  const out: FrameSets = new Map();
  for (const [pid, ranges] of vmas) {
    const f = readFrames(pid, ranges, zero);
    if (f) out.set(pid, f);
  }
  return out;
}

/** Distinct frames in the union of the sets of `pids`. */
export function unionSize(sets: FrameSets, pids: Iterable<number>): number {
  const all = new Set<number>();
  for (const pid of pids) {
    for (const f of sets.get(pid) ?? []) all.add(f);
  }
  return all.size;
}

/**
 * Frames freed between two measures, over the processes present in both:
 * distinct frames before minus distinct frames after.
 */
export function framesFreed(before: FrameSets, after: FrameSets): {
  before: number;
  after: number;
  freed: number;
} {
  const survivors = [...before.keys()].filter((p) => after.has(p));
  const b = unionSize(before, survivors);
  const a = unionSize(after, survivors);
  return { before: b, after: a, freed: b - a };
}

function gone(err: unknown): boolean {
  const c = errnoCode(err);
  return c === "ESRCH" || c === "ENOENT";
}
