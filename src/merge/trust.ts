/**
 * Trust domains. Merged pages leak information through copy-on-write
 * timing (CAIN, Dedup Est Machina, Flip Feng Shui, VUsion), and Linux KSM
 * merges globally without salting, so mergemem merges within one uid by
 * default. The uid stays the boundary even inside one server: Apache's
 * mpm-itk and suexec run one uid per customer. A broad selection
 * (--comm, --user, --all) spanning several uids merges the uid holding the
 * most saveable memory and skips the others; explicit pids spanning uids
 * are refused; --cross-user merges across them, warned. It also warns when
 * processes of other uids already have mergeable memory that the marked
 * pages may be merged with.
 *
 * @module
 */
import { ErrorKind, ErrorReason, MergememError } from "../errors.ts";
import { listPids, readComm, readUid } from "../proc/info.ts";

/** The warning given when merging across uids (policy "cross-user"). */
const CROSS_USER_WARNING = "merging across uids lets their processes observe " +
  "each other's memory through copy-on-write timing (dedup side channels: " +
  "CAIN, Dedup Est Machina, Flip Feng Shui, VUsion); do this only within " +
  "one trust domain";

/**
 * What to do with a selection whose processes belong to several uids:
 * "refuse" it, merge the "largest" domain alone, or merge across all of
 * them ("cross-user", warned).
 */
export type DomainPolicy = "refuse" | "largest" | "cross-user";

/** What planning one trust domain alone gives (see {@link chooseDomain}). */
export interface DomainSaving {
  /** Saveable pages. */
  pages: number;
  /** Its processes that the scan could still read. */
  live: number;
}

/** The outcome of {@link chooseDomain}. */
export interface DomainChoice {
  /** How the domain was chosen (for the report). */
  policy: "single-uid" | "largest-domain" | "cross-user";
  /** The uids to merge. */
  chosen: number[];
  /** Notices for the user. */
  warnings: string[];
}

/**
 * Chooses the trust domain to merge. One uid: that one. Several: refused
 * (policy "refuse"), all of them with the side-channel warning
 * ("cross-user"), or the uid whose processes hold the most saveable
 * memory ("largest"): on a server the workers, not the root master.
 * `saveable(uid, pids)` plans one domain and returns its saveable pages
 * and how many of its processes were still there to scan; it is called
 * once per uid, and only for "largest". Ties go to the uid with more live
 * processes: the workers, unless they have all exited meanwhile (a
 * server whose children come and go), when the live master wins.
 *
 * @throws MergememError Refused for several uids under "refuse".
 */
export async function chooseDomain(
  uids: Map<number, number>,
  policy: DomainPolicy,
  saveable: (uid: number, pids: number[]) => Promise<DomainSaving>,
): Promise<DomainChoice> {
  const byUid = new Map<number, number[]>();
  for (const [pid, uid] of uids) {
    byUid.set(uid, [...(byUid.get(uid) ?? []), pid]);
  }
  const distinct = [...byUid.keys()].sort((a, b) => a - b);
  if (distinct.length === 1) {
    return { policy: "single-uid", chosen: distinct, warnings: [] };
  }
  if (policy === "cross-user") {
    return {
      policy: "cross-user",
      chosen: distinct,
      warnings: [CROSS_USER_WARNING],
    };
  }
  if (policy === "refuse") {
    throw new MergememError(
      `the selection spans ${distinct.length} uids (${
        distinct.join(", ")
      }); merging across users opens dedup side channels between them`,
      ErrorKind.Refused,
      { reason: ErrorReason.CrossUser },
    );
  }
  let best = distinct[0], bestPages = -1, bestLive = -1;
  for (const uid of distinct) {
    const { pages, live } = await saveable(uid, byUid.get(uid)!);
    if (pages > bestPages || (pages === bestPages && live > bestLive)) {
      best = uid;
      bestPages = pages;
      bestLive = live;
    }
  }
  const others = distinct.filter((u) => u !== best);
  const left = others.reduce((a, u) => a + byUid.get(u)!.length, 0);
  return {
    policy: "largest-domain",
    chosen: [best],
    warnings: [
      `the selection spans uids ${distinct.join(", ")}: merging uid ${best} ` +
      `(${bestPages} saveable pages, the most); ${left} process(es) of uid ` +
      `${others.join(", ")} skipped by policy (another trust domain)`,
    ],
  };
}

/**
 * Finds processes of other uids that already have KSM activity
 * (ksm_merging_pages > 0 or rmap items, meaning mergeable VMAs ksmd has
 * scanned) and returns one warning for them, or none.
 */
export function otherUidsMergeable(
  ownUids: number[],
  selected: Set<number>,
  proc = "/proc",
): string[] {
  const found: string[] = [];
  let count = 0;
  for (const pid of listPids(proc)) {
    if (selected.has(pid) || !hasKsmActivity(pid, proc)) continue;
    const uid = readUid(pid, proc);
    if (uid === undefined || ownUids.includes(uid)) continue;
    count++;
    if (found.length < 5) {
      found.push(`${pid} (${readComm(pid, proc)}, uid ${uid})`);
    }
  }
  if (count === 0) return [];
  return [
    `${count} process(es) of other uids already have mergeable memory: ` +
    `${found.join(", ")}${count > found.length ? ", ..." : ""}; KSM may ` +
    "merge the marked pages with theirs (a cross-user side channel)",
  ];
}

/**
 * Whether a process has KSM activity: ksm_merging_pages or ksm_rmap_items
 * above 0; false when gone or unreadable. This runs for every process on
 * the host, so it reads one file where it can: ksm_stat, which has both
 * counters since 6.12, and is empty for kernel threads (no mm). On 6.1 to
 * 6.11 it has only ksm_rmap_items, and ksm_merging_pages is read from its
 * own file (5.19+), as it is when ksm_stat cannot be read.
 */
function hasKsmActivity(pid: number, proc: string): boolean {
  let stat: string | undefined;
  try {
    stat = Deno.readTextFileSync(`${proc}/${pid}/ksm_stat`);
  } catch {
    // older kernels or no access: ksm_merging_pages alone may tell
  }
  if (stat === "") return false;
  const rmap = stat === undefined ? undefined : RMAP_ITEMS.exec(stat);
  if (rmap && Number(rmap[1]) > 0) return true;
  const merging = stat === undefined ? undefined : MERGING_PAGES.exec(stat);
  if (merging) return Number(merging[1]) > 0;
  try {
    return Number(
      Deno.readTextFileSync(`${proc}/${pid}/ksm_merging_pages`).trim(),
    ) > 0;
  } catch {
    return false;
  }
}

const RMAP_ITEMS = /^\s*ksm_rmap_items:?\s+(\d+)\s*$/m;
const MERGING_PAGES = /^\s*ksm_merging_pages:?\s+(\d+)\s*$/m;
