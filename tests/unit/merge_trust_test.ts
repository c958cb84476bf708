/** src/merge/trust.ts and src/ksm/holders.ts: which trust domain a merge
 * keeps to, and who holds mergeable memory on the host. */
import {
  deepStrictEqual as assertEquals,
  ok as assert,
  rejects,
  throws,
} from "node:assert/strict";
import {
  assertSoleHolder,
  chooseDomain,
  domainOf,
  type DomainPolicy,
  type HeldDomain,
  type TrustDomain,
  type TrustLevel,
  wideningWarnings,
} from "../../src/merge/trust.ts";
import { ksmHolders } from "../../src/ksm/holders.ts";
import type { Tenancy } from "../../src/proc/tenant.ts";
import { ErrorKind, ErrorReason, MergememError } from "../../src/errors.ts";

const HOST: Tenancy = { container: null, pod: null, userns: null };
const ctr = (id: string, pod?: Tenancy["pod"]): Tenancy => ({
  container: { runtime: "podman", id: id.repeat(64).slice(0, 64) },
  pod: pod ?? null,
  userns: null,
});
const k8s = (ns: string, uid: string): Tenancy => ({
  container: { runtime: "containerd", id: uid.repeat(64).slice(0, 64) },
  pod: { kind: "kubernetes", uid, namespace: ns, name: `web-${uid}` },
  userns: null,
});
const ALL = { level: "namespace" as TrustLevel, crossUser: false };

Deno.test("domainOf: tenants at each level, uids within, user namespaces apart", () => {
  const cases: [string, number, Tenancy, TrustLevel, boolean, string][] = [
    ["host process", 33, HOST, "namespace", false, "host|uid:33"],
    ["host, --cross-user", 33, HOST, "namespace", true, "host"],
    [
      "container",
      33,
      ctr("a"),
      "namespace",
      false,
      `container:podman:${"a".repeat(64)}|uid:33`,
    ],
    [
      "k8s: the namespace",
      1000,
      k8s("shop", "1"),
      "namespace",
      false,
      "k8s-namespace:shop|uid:1000",
    ],
    [
      "k8s at pod level: the pod",
      1000,
      k8s("shop", "1"),
      "pod",
      false,
      "pod:kubernetes:1|uid:1000",
    ],
    [
      "k8s at container level",
      1000,
      k8s("shop", "1"),
      "container",
      false,
      `container:containerd:${"1".repeat(64)}|uid:1000`,
    ],
    [
      "k8s pod without log dir: the pod",
      0,
      { ...k8s("x", "2"), pod: { kind: "kubernetes", uid: "2" } },
      "namespace",
      false,
      "pod:kubernetes:2|uid:0",
    ],
    [
      "podman pod",
      33,
      ctr("b", { kind: "podman", uid: "p1" }),
      "namespace",
      false,
      "pod:podman:p1|uid:33",
    ],
    [
      "compose project: one tenant",
      33,
      { ...ctr("d"), container: { ...ctr("d").container!, project: "shop" } },
      "namespace",
      false,
      "compose:podman:shop|uid:33",
    ],
    [
      "compose project at container level: the container",
      33,
      { ...ctr("d"), container: { ...ctr("d").container!, project: "shop" } },
      "container",
      false,
      `container:podman:${"d".repeat(64)}|uid:33`,
    ],
    [
      "compose project inside a podman pod: the pod",
      33,
      {
        ...ctr("e", { kind: "podman", uid: "p2" }),
        container: { ...ctr("e").container!, project: "shop" },
      },
      "pod",
      false,
      "pod:podman:p2|uid:33",
    ],
    ["--trust-domain host", 33, k8s("shop", "1"), "host", true, "host"],
    [
      "own user namespace, no container",
      0,
      { ...HOST, userns: "user:[42]" },
      "namespace",
      false,
      "user:[42]|uid:0",
    ],
    [
      "container in its own user namespace",
      0,
      { ...ctr("c"), userns: "user:[43]" },
      "namespace",
      false,
      `container:podman:${"c".repeat(64)}+user:[43]|uid:0`,
    ],
  ];
  for (const [name, uid, t, level, crossUser, key] of cases) {
    assertEquals(domainOf(uid, t, { level, crossUser }).key, key, name);
  }
  assertEquals(
    domainOf(1000, k8s("shop", "1"), ALL).label,
    "Kubernetes namespace shop, uid 1000",
  );
  assertEquals(domainOf(33, HOST, ALL).label, "uid 33");
  assertEquals(
    domainOf(33, {
      ...ctr("d"),
      container: { ...ctr("d").container!, project: "shop" },
    }, ALL).label,
    "compose project shop, uid 33",
  );
});

// pid -> domain of an apache2-like server: root master, www-data workers.
const d = (key: string): TrustDomain => ({ key, label: `d-${key}` });
const APACHE = new Map([[100, d("0")], [101, d("33")], [102, d("33")], [
  103,
  d("33"),
]]);
// Saveable pages if each domain were merged alone.
const SAVEABLE: Record<string, number> = { "0": 40, "33": 9000, "44": 0 };
const held = (key: string, pid = 900): HeldDomain => ({
  domain: d(key),
  processes: [{ pid, comm: "qemu" }],
});

const cases: {
  name: string;
  members: Map<number, TrustDomain>;
  policy: DomainPolicy;
  held?: HeldDomain[];
  chosen?: string;
  policyOut?: string;
  planned?: string[];
  refused?: RegExp;
  reason?: string;
}[] = [
  {
    name: "one domain: merged whatever the policy",
    members: new Map([[1, d("33")], [2, d("33")]]),
    policy: "refuse",
    chosen: "33",
    policyOut: "single-domain",
    planned: [],
  },
  {
    name: "explicit pids across domains: refused",
    members: APACHE,
    policy: "refuse",
    refused: /spans 2 trust domains \(d-0; d-33\)/,
    reason: ErrorReason.CrossDomain,
  },
  {
    name: "a service's master and workers: the workers' domain",
    members: APACHE,
    policy: "largest",
    chosen: "33",
    policyOut: "largest-domain",
    planned: ["0", "33"],
  },
  {
    name: "a tie goes to the domain with more live processes",
    members: new Map([[1, d("5")], [2, d("6")], [3, d("6")]]),
    policy: "largest",
    chosen: "6",
    policyOut: "largest-domain",
    planned: ["5", "6"],
  },
  {
    // A server whose workers all exited during the scan: nothing to save
    // anywhere, and the live master, not the vanished workers, is chosen.
    name: "a tie between a live master and vanished workers: the master",
    members: new Map([[100, d("44")], [201, d("66")], [202, d("66")], [
      203,
      d("66"),
    ]]),
    policy: "largest",
    chosen: "44",
    policyOut: "largest-domain",
    planned: ["44", "66"],
  },
  {
    name: "the domain holding KSM wins over a larger one, unplanned",
    members: APACHE,
    policy: "largest",
    held: [held("0")],
    chosen: "0",
    policyOut: "largest-domain",
    planned: [],
  },
  {
    name: "its own domain holds KSM: merged again",
    members: new Map([[1, d("33")]]),
    policy: "refuse",
    held: [held("33", 1)],
    chosen: "33",
    policyOut: "single-domain",
    planned: [],
  },
  {
    name: "another domain holds KSM: one domain selected, refused",
    members: new Map([[1, d("33")]]),
    policy: "largest",
    held: [held("26")],
    refused:
      /already holds mergeable memory of another trust domain: d-26 \(900 qemu\); merging d-33 would/,
    reason: ErrorReason.KsmHeld,
  },
  {
    name: "another domain holds KSM: none of the selection's, refused",
    members: APACHE,
    policy: "largest",
    held: [held("26")],
    refused: /d-26 \(900 qemu\)/,
    reason: ErrorReason.KsmHeld,
  },
  {
    name: "two domains hold KSM: nothing may be marked",
    members: new Map([[1, d("33")]]),
    policy: "largest",
    held: [held("33", 1), held("26")],
    refused:
      /of other trust domains: d-33 \(1 qemu\); d-26 \(900 qemu\); merging any domain/,
    reason: ErrorReason.KsmHeld,
  },
];
// Processes of each domain the scan could still read (all, unless listed).
const GONE: Record<string, boolean> = { "66": true };

for (const c of cases) {
  Deno.test(`chooseDomain: ${c.name}`, async () => {
    const planned: string[] = [];
    const saveable = (key: string, pids: number[]) => {
      planned.push(key);
      return Promise.resolve({
        pages: GONE[key] ? 0 : SAVEABLE[key] ?? 7,
        live: GONE[key] ? 0 : pids.length,
      });
    };
    if (c.refused) {
      await rejects(
        chooseDomain(c.members, c.policy, saveable, c.held),
        (e: unknown) =>
          e instanceof MergememError && e.kind === ErrorKind.Refused &&
          e.detail?.reason === c.reason && c.refused!.test(e.message),
      );
      return;
    }
    const r = await chooseDomain(c.members, c.policy, saveable, c.held);
    assertEquals(r.chosen.key, c.chosen);
    assertEquals(r.policy, c.policyOut);
    assertEquals(planned, c.planned);
    if (r.policy === "largest-domain") {
      assert(r.warnings[0].includes("skipped by policy"), r.warnings[0]);
    }
    // The library names no CLI flag; the CLI adds its own advice.
    for (const w of r.warnings) assert(!/--[a-z]/.test(w), w);
  });
}

Deno.test("assertSoleHolder: refuses a holder that is not the chosen domain", () => {
  assertSoleHolder([], d("33"));
  assertSoleHolder([held("33")], d("33"));
  throws(
    () => assertSoleHolder([held("33"), held("26")], d("33")),
    (e: unknown) =>
      e instanceof MergememError &&
      /d-26 \(900 qemu\); merging d-33/.test(e.message),
  );
});

Deno.test("wideningWarnings: only when the rules joined uids or tenants", () => {
  const m = (uid: number, t: Tenancy) => ({ uid, tenancy: t });
  assertEquals(wideningWarnings([m(33, HOST), m(33, HOST)], ALL), []);
  assertEquals(
    wideningWarnings([m(33, HOST), m(0, HOST)], { ...ALL, crossUser: true })
      .length,
    1,
  );
  // Two replicas of one namespace are one tenant by default: no warning.
  assertEquals(
    wideningWarnings([m(1, k8s("shop", "1")), m(1, k8s("shop", "2"))], ALL),
    [],
  );
  const w = wideningWarnings([m(1, ctr("a")), m(1, ctr("b"))], {
    level: "host",
    crossUser: false,
  });
  assertEquals(w.length, 1);
  assert(w[0].includes("containers, pods or namespaces"));
});

Deno.test("ksmHolders: every ksm_stat format, smaps VmFlags, kernel threads", () => {
  // A /proc tree as the kernels write it (the files ksmHolders reads:
  // ksm_stat, smaps, status, comm).
  const proc = Deno.makeTempDirSync();
  const K612 = (rmap: number, merging: number) =>
    `ksm_rmap_items ${rmap}\nksm_zero_pages 0\nksm_merging_pages ${merging}\n` +
    `ksm_process_profit 0\n`;
  const smaps = (flags: string) =>
    `7f0000000000-7f0000001000 rw-p 00000000 00:00 0\nSize: 4 kB\nVmFlags: ${flags}\n`;
  const pids: Record<
    number,
    { uid: number; stat?: string; smaps?: string; merging?: string }
  > = {
    // 6.12+: merged pages in ksm_stat; rmap items alone (left by an
    // unmerge until ksmd's next pass) are not mergeable memory.
    100: { uid: 1000, stat: K612(0, 3) },
    101: { uid: 1000, stat: K612(9, 0), smaps: smaps("rd wr") },
    // 6.12, marked while ksmd was stopped: only smaps tells.
    102: { uid: 1001, stat: K612(0, 0), smaps: smaps("rd wr mr mw me ac mg") },
    103: { uid: 1001, stat: K612(0, 0), smaps: smaps("rd wr mr mw me ac") },
    // 6.18: yes/no lines decide, smaps is not read.
    104: {
      uid: 1002,
      stat: K612(0, 0) + "ksm_merge_any: no\nksm_mergeable: yes\n",
    },
    105: {
      uid: 1002,
      stat: K612(0, 0) + "ksm_merge_any: no\nksm_mergeable: no\n",
      smaps: smaps("mg"),
    },
    106: {
      uid: 1003,
      stat: K612(0, 0) + "ksm_merge_any: yes\nksm_mergeable: no\n",
    },
    // 6.1: only ksm_rmap_items; ksm_merging_pages in its own file.
    107: { uid: 1004, stat: "ksm_rmap_items 7\n", merging: "5\n" },
    111: {
      uid: 1004,
      stat: "ksm_rmap_items 7\n",
      merging: "0\n",
      smaps: smaps("rd wr mg"),
    },
    112: {
      uid: 1004,
      stat: "ksm_rmap_items 7\n",
      merging: "0\n",
      smaps: smaps("rd wr"),
    },
    // No ksm_stat (5.19 to 6.0): smaps.
    108: { uid: 1005, smaps: smaps("rd mg wr") },
    // A kernel thread: ksm_stat empty.
    109: { uid: 0, stat: "" },
    // Excluded (the caller).
    110: { uid: 0, stat: K612(5, 5) },
  };
  try {
    for (const [pid, p] of Object.entries(pids)) {
      const dir = `${proc}/${pid}`;
      Deno.mkdirSync(dir);
      Deno.writeTextFileSync(`${dir}/comm`, `w${pid}\n`);
      Deno.writeTextFileSync(
        `${dir}/status`,
        `Name:\tw${pid}\nUid:\t${p.uid}\t${p.uid}\t${p.uid}\t${p.uid}\n`,
      );
      if (p.stat !== undefined) {
        Deno.writeTextFileSync(`${dir}/ksm_stat`, p.stat);
      }
      if (p.smaps !== undefined) {
        Deno.writeTextFileSync(`${dir}/smaps`, p.smaps);
      }
      if (p.merging !== undefined) {
        Deno.writeTextFileSync(`${dir}/ksm_merging_pages`, p.merging);
      }
    }
    const r = ksmHolders(new Set([110]), proc);
    assertEquals(
      r.holders.map((h) => [h.pid, h.uid, h.seen]),
      [
        [100, 1000, "ksmd"],
        [102, 1001, "smaps"],
        [104, 1002, "ksm_stat"],
        [106, 1003, "ksm_stat"],
        [107, 1004, "ksmd"],
        [108, 1005, "smaps"],
        [111, 1004, "smaps"],
      ],
    );
    assertEquals(r.unreadable, 0);
  } finally {
    Deno.removeSync(proc, { recursive: true });
  }
});
