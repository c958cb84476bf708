/** src/merge/trust.ts: which trust domain a merge keeps to. */
import {
  deepStrictEqual as assertEquals,
  ok as assert,
  rejects,
} from "node:assert/strict";
import { chooseDomain, type DomainPolicy } from "../../src/merge/trust.ts";
import { ExitCode, MergememError } from "../../src/errors.ts";

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
          e instanceof MergememError && e.exitCode === ExitCode.Refused &&
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
      assert(r.warnings[0].includes("--cross-user"), r.warnings[0]);
    }
  });
}
