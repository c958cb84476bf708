/** src/merge/trust.ts: which trust domain a merge keeps to. */
import {
  deepStrictEqual as assertEquals,
  ok as assert,
  rejects,
} from "node:assert/strict";
import {
  chooseDomain,
  type DomainPolicy,
  otherUidsMergeable,
} from "../../src/merge/trust.ts";
import { ErrorKind, MergememError } from "../../src/errors.ts";

// pid -> uid of an apache2-like server: root master, www-data workers.
const APACHE = new Map([[100, 0], [101, 33], [102, 33], [103, 33]]);
// Saveable pages if each uid were merged alone.
const SAVEABLE: Record<number, number> = { 0: 40, 33: 9000, 44: 0 };

const cases: {
  name: string;
  uids: Map<number, number>;
  policy: DomainPolicy;
  chosen?: number[];
  policyOut?: string;
  planned?: number[];
  refused?: boolean;
}[] = [
  {
    name: "one uid: merged whatever the policy",
    uids: new Map([[1, 33], [2, 33]]),
    policy: "refuse",
    chosen: [33],
    policyOut: "single-uid",
    planned: [],
  },
  {
    name: "explicit pids across uids: refused",
    uids: APACHE,
    policy: "refuse",
    refused: true,
  },
  {
    name: "a service's master and workers: the workers' uid",
    uids: APACHE,
    policy: "largest",
    chosen: [33],
    policyOut: "largest-domain",
    planned: [0, 33],
  },
  {
    name: "--cross-user: every uid, nothing planned twice",
    uids: APACHE,
    policy: "cross-user",
    chosen: [0, 33],
    policyOut: "cross-user",
    planned: [],
  },
  {
    name: "a tie goes to the uid with more live processes",
    uids: new Map([[1, 5], [2, 6], [3, 6]]),
    policy: "largest",
    chosen: [6],
    policyOut: "largest-domain",
    planned: [5, 6],
  },
  {
    // A server whose workers all exited during the scan: nothing to save
    // anywhere, and the live master, not the vanished workers, is chosen.
    name: "a tie between a live master and vanished workers: the master",
    uids: new Map([[100, 44], [201, 66], [202, 66], [203, 66]]),
    policy: "largest",
    chosen: [44],
    policyOut: "largest-domain",
    planned: [44, 66],
  },
];
// Processes of each uid the scan could still read (all, unless listed).
const GONE: Record<number, boolean> = { 66: true };

for (const c of cases) {
  Deno.test(`chooseDomain: ${c.name}`, async () => {
    const planned: number[] = [];
    const saveable = (uid: number, pids: number[]) => {
      planned.push(uid);
      return Promise.resolve({
        pages: GONE[uid] ? 0 : SAVEABLE[uid] ?? 7,
        live: GONE[uid] ? 0 : pids.length,
      });
    };
    if (c.refused) {
      await rejects(
        chooseDomain(c.uids, c.policy, saveable),
        (e: unknown) =>
          e instanceof MergememError && e.kind === ErrorKind.Refused &&
          /2 uids \(0, 33\)/.test(e.message),
      );
      return;
    }
    const r = await chooseDomain(c.uids, c.policy, saveable);
    assertEquals(r.chosen, c.chosen);
    assertEquals(r.policy, c.policyOut);
    assertEquals(planned, c.planned);
    if (c.policy === "cross-user") {
      assert(r.warnings[0].includes("side channel"));
    }
    if (r.policy === "largest-domain") {
      assert(r.warnings[0].includes("skipped by policy"), r.warnings[0]);
    }
    // The library names no CLI flag; the CLI adds its own advice.
    for (const w of r.warnings) assert(!/--[a-z]/.test(w), w);
  });
}

Deno.test("otherUidsMergeable: every ksm_stat format, kernel threads, own uid, selected", () => {
  // A /proc tree as the kernels write it (the files otherUidsMergeable
  // reads: ksm_stat, ksm_merging_pages, status, comm).
  const proc = Deno.makeTempDirSync();
  const K612 = (rmap: number, merging: number) =>
    `ksm_rmap_items ${rmap}\nksm_zero_pages 0\nksm_merging_pages ${merging}\n` +
    `ksm_process_profit 0\n`;
  const pids: Record<number, {
    uid: number;
    stat?: string;
    merging?: string;
  }> = {
    // 6.12+: both counters in ksm_stat.
    100: { uid: 1000, stat: K612(0, 3), merging: "3\n" },
    101: { uid: 1000, stat: K612(9, 0), merging: "0\n" },
    // 6.18: yes/no lines with a colon; nothing mergeable.
    102: {
      uid: 1001,
      stat: K612(0, 0) + "ksm_merge_any: no\nksm_mergeable: no\n",
      merging: "0\n",
    },
    // 6.1: only ksm_rmap_items; ksm_merging_pages in its own file.
    103: { uid: 1002, stat: "ksm_rmap_items 0\n", merging: "4\n" },
    104: { uid: 1002, stat: "ksm_rmap_items 7\n", merging: "0\n" },
    105: { uid: 1003, stat: "ksm_rmap_items 0\n", merging: "0\n" },
    // No ksm_stat (5.19 to 6.0).
    106: { uid: 1004, merging: "2\n" },
    // A kernel thread: both files empty.
    107: { uid: 0, stat: "", merging: "" },
    // Own uid, and a selected process of another uid.
    108: { uid: 0, stat: K612(5, 5), merging: "5\n" },
    109: { uid: 1005, stat: K612(5, 5), merging: "5\n" },
  };
  try {
    for (const [pid, p] of Object.entries(pids)) {
      const d = `${proc}/${pid}`;
      Deno.mkdirSync(d);
      Deno.writeTextFileSync(`${d}/comm`, `w${pid}\n`);
      Deno.writeTextFileSync(
        `${d}/status`,
        `Name:\tw${pid}\nUid:\t${p.uid}\t${p.uid}\t${p.uid}\t${p.uid}\n`,
      );
      if (p.stat !== undefined) Deno.writeTextFileSync(`${d}/ksm_stat`, p.stat);
      if (p.merging !== undefined) {
        Deno.writeTextFileSync(`${d}/ksm_merging_pages`, p.merging);
      }
    }
    assertEquals(otherUidsMergeable([0], new Set([109]), proc), [
      "5 process(es) of other uids already have mergeable memory: " +
      "100 (w100, uid 1000), 101 (w101, uid 1000), 103 (w103, uid 1002), " +
      "104 (w104, uid 1002), 106 (w106, uid 1004); KSM may merge the " +
      "marked pages with theirs (a cross-user side channel)",
    ]);
    assertEquals(otherUidsMergeable([0, 1000, 1002, 1004], new Set(), proc), [
      "1 process(es) of other uids already have mergeable memory: " +
      "109 (w109, uid 1005); KSM may merge the marked pages with theirs " +
      "(a cross-user side channel)",
    ]);
  } finally {
    Deno.removeSync(proc, { recursive: true });
  }
});
