/**
 * Distinct physical frames behind a process's candidate pages, from
 * /proc/PID/pagemap alone: no page content is read, so a measure is cheap
 * enough to repeat every few hundred milliseconds (merge uses it to measure
 * what a selection itself freed, whatever freed it).
 *
 * Candidate pages are those of docs/accounting.md: present (pagemap bit 63)
 * and anonymous (bit 61 clear). The kernel's shared zero page and the huge
 * zero page cost nothing and are left out; they are recognised by
 * KPF_ZERO_PAGE in /proc/kpageflags ({@link ZeroPageFilter}). PFNs need
 * CAP_SYS_ADMIN: without it pagemap reports PFN 0 and {@link FramesHidden}
 * is thrown.
 *
 * @module
 */
import { errnoCode, ErrorKind, ErrorReason, MergememError } from "../errors.ts";
import {
  KPF_ZERO_PAGE,
  lookupKpageflagsOrdered,
  PM_EXCLUSIVE_HI,
  PM_FILE_HI,
  PM_PFN_HI_MASK,
  PM_PRESENT_HI,
  readEntries,
} from "./pagemap.ts";
import { systemPageSize } from "./pagesize.ts";

/** A virtual address range [start, end), page aligned (bigint or number). */
export interface AddressRange {
  /** First byte. */
  start: bigint | number;
  /** One past the last byte. */
  end: bigint | number;
}

/** Thrown when pagemap hides PFNs (the caller lacks CAP_SYS_ADMIN). */
export class FramesHidden extends MergememError {
  /** Builds the error. */
  constructor() {
    super(
      "pagemap shows no physical frame numbers without CAP_SYS_ADMIN",
      ErrorKind.AllDenied,
      { reason: ErrorReason.FramesHidden },
    );
    this.name = "FramesHidden";
  }
}

/**
 * Recognises the zero pages' PFNs through /proc/kpageflags (KPF_ZERO_PAGE).
 * Every answer is cached, so that repeated measures of the same processes
 * look up only new frames: the shared zero page never moves, and the huge
 * zero page is not anonymous in pagemap (bit 61 set), so it never reaches
 * the filter; a frame seen once as not a zero page stays so while it is
 * mapped. Lookups of one call are batched in PFN order, so neighbouring
 * frames share one read. Without a readable kpageflags nothing is taken
 * for a zero page.
 */
export class ZeroPageFilter {
  #file: Deno.FsFile | null | undefined;
  #zero = new Set<number>();
  #notZero = new Set<number>();

  /** `path` is for tests; the default is /proc/kpageflags. */
  constructor(private readonly path = "/proc/kpageflags") {}

  /**
   * The zero-page PFNs among `candidates` (distinct, in ascending order),
   * in ascending order.
   */
  zeroAmong(candidates: Float64Array): number[] {
    const found: number[] = [];
    const unknown: number[] = [];
    for (const p of candidates) {
      if (this.#zero.has(p)) found.push(p);
      else if (!this.#notZero.has(p)) unknown.push(p);
    }
    if (unknown.length === 0) return found;
    if (this.#file === undefined) {
      try {
        this.#file = Deno.openSync(this.path);
      } catch {
        this.#file = null;
      }
    }
    if (this.#file === null) return found;
    const pfns = Float64Array.from(unknown);
    const order = new Uint32Array(pfns.length);
    for (let i = 0; i < order.length; i++) order[i] = i;
    // Bounded: a long-lived filter forgets, and looks up again.
    if (this.#notZero.size > NOT_ZERO_MAX) this.#notZero.clear();
    lookupKpageflagsOrdered(this.#file, pfns, order, pfns.length, (i, lo) => {
      if (lo & (1 << KPF_ZERO_PAGE)) {
        this.#zero.add(pfns[i]);
        found.push(pfns[i]);
      } else this.#notZero.add(pfns[i]);
    }, 16);
    return found.sort((a, b) => a - b);
  }

  /** Closes kpageflags. The filter can be used again afterwards. */
  close(): void {
    this.#file?.close();
    this.#file = undefined;
  }
}

/** Frames remembered as not zero pages, at most (about 40 MiB). */
const NOT_ZERO_MAX = 1 << 22;

/** pagemap entries read per call. */
const CHUNK = 65536;

/**
 * The PFNs behind the present anonymous pages of `ranges` in process
 * `pid`, without the zero pages (see the module documentation), in
 * address order: a frame mapped twice is there twice. Only pagemap (and,
 * for pages that are not exclusively mapped, kpageflags) is read. Cost:
 * one pagemap read per 256 MiB of address range and a few operations per
 * present page; no sort, so that a caller uniting several processes sorts
 * once ({@link distinctUnion}).
 *
 * Returns undefined when the process is gone (exited, exec'd away, or a
 * zombie: ESRCH/ENOENT on open or read, or its address space vanished).
 *
 * @throws {FramesHidden} when pagemap hides PFNs (no CAP_SYS_ADMIN).
 * @throws {Deno.errors.PermissionDenied} when pagemap cannot be opened.
 */
export function presentFrames(
  pid: number,
  ranges: readonly AddressRange[],
  zero: ZeroPageFilter,
): Float64Array | undefined {
  const ps = systemPageSize();
  let frames: Float64Array = new Float64Array(1024), n = 0;
  // PFNs that may be a zero page: only pages not exclusively mapped.
  let shared: Float64Array = new Float64Array(64), ns = 0;
  let file: Deno.FsFile;
  try {
    file = Deno.openSync(`/proc/${pid}/pagemap`);
  } catch (err) {
    if (gone(err)) return undefined;
    throw err;
  }
  const buf = new Uint32Array(2 * CHUNK);
  try {
    for (const r of ranges) {
      const first = Number(r.start) / ps, last = Number(r.end) / ps;
      for (let i = first; i < last; i += CHUNK) {
        const want = Math.min(CHUNK, last - i);
        const got = readEntries(file, i, want, buf);
        if (got < want) return undefined; // the address space is gone
        if (frames.length - n < got) frames = grow(frames, n + got);
        for (let k = 0; k < got; k++) {
          const hi = buf[2 * k + 1];
          if ((hi & PM_PRESENT_HI) === 0 || (hi & PM_FILE_HI) !== 0) continue;
          const pfn = (hi & PM_PFN_HI_MASK) * 0x100000000 + buf[2 * k];
          if (pfn === 0) throw new FramesHidden();
          frames[n++] = pfn;
          if ((hi & PM_EXCLUSIVE_HI) === 0) {
            if (ns === shared.length) shared = grow(shared, ns + 1);
            shared[ns++] = pfn;
          }
        }
      }
    }
  } catch (err) {
    if (gone(err)) return undefined;
    throw err;
  } finally {
    file.close();
  }
  const out = frames.subarray(0, n);
  if (ns === 0) return out;
  const zeros = new Set(zero.zeroAmong(unique(shared.subarray(0, ns).sort())));
  if (zeros.size === 0) return out;
  let w = 0;
  for (let r = 0; r < n; r++) if (!zeros.has(out[r])) out[w++] = out[r];
  return out.subarray(0, w);
}

/** The distinct values of a sorted array, in place: a view of its start. */
function unique(a: Float64Array): Float64Array {
  let w = 0;
  for (let r = 0; r < a.length; r++) {
    if (r === 0 || a[r] !== a[w - 1]) a[w++] = a[r];
  }
  return a.subarray(0, w);
}

function grow(a: Float64Array, atLeast: number): Float64Array {
  const b = new Float64Array(Math.max(atLeast, 2 * a.length));
  b.set(a);
  return b;
}

/**
 * The distinct values of several arrays (in any order, repeats allowed),
 * sorted: concatenated and sorted natively, cheaper than Sets or a k-way
 * merge in JavaScript.
 */
export function distinctUnion(arrays: readonly Float64Array[]): Float64Array {
  const all = new Float64Array(arrays.reduce((a, x) => a + x.length, 0));
  let at = 0;
  for (const x of arrays) {
    all.set(x, at);
    at += x.length;
  }
  return unique(all.sort());
}

function gone(err: unknown): boolean {
  const c = errnoCode(err);
  return c === "ESRCH" || c === "ENOENT";
}
