/**
 * Trust domains. Merged pages leak information through copy-on-write
 * timing (CAIN, Dedup Est Machina, Flip Feng Shui, VUsion), and Linux KSM
 * merges globally without salting, so mergemem merges within one uid by
 * default: a selection spanning several uids is refused unless the caller
 * says --cross-user, and it warns when processes of other uids already
 * have mergeable memory that the marked pages may be merged with.
 *
 * @module
 */
import { ExitCode, MergememError } from "../errors.ts";
import { readProcessKsm } from "../ksm/process.ts";
import { listPids, readComm, readUid } from "../proc/info.ts";

/** The warning printed with --cross-user. */
export const CROSS_USER_WARNING =
  "--cross-user: merging pages across uids lets their processes observe " +
  "each other's memory through copy-on-write timing (dedup side channels: " +
  "CAIN, Dedup Est Machina, Flip Feng Shui, VUsion); do this only within " +
  "one trust domain";

/**
 * Checks that the selected processes share one uid, or that crossUser was
 * given (then returns the side-channel warning). Returns the uids seen.
 *
 * @throws MergememError Refused for a cross-uid selection without crossUser.
 */
export function checkTrustDomain(
  uids: Map<number, number>,
  crossUser: boolean,
): { uids: number[]; warnings: string[] } {
  const distinct = [...new Set(uids.values())].sort((a, b) => a - b);
  const warnings: string[] = [];
  if (distinct.length > 1) {
    if (!crossUser) {
      throw new MergememError(
        `the selection spans ${distinct.length} uids (${
          distinct.join(", ")
        }); ` +
          "merging across users opens dedup side channels between them",
        ExitCode.Refused,
        "select processes of one user (--user), or pass --cross-user if they trust each other",
      );
    }
    warnings.push(CROSS_USER_WARNING);
  }
  return { uids: distinct, warnings };
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
    if (selected.has(pid)) continue;
    const k = readProcessKsm(pid, proc);
    if (!k) continue;
    const rmap = typeof k.stat.ksm_rmap_items === "number"
      ? k.stat.ksm_rmap_items
      : 0;
    if (k.mergingPages <= 0 && rmap <= 0) continue;
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
