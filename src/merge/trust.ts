/**
 * Trust domains. Merged pages leak information through copy-on-write
 * timing and reads (CAIN, Dedup Est Machina, Flip Feng Shui, VUsion), and
 * Linux KSM merges globally without salting: mergemem merges only within
 * one trust domain.
 *
 * A domain is a tenant and, within it, a uid:
 * - the tenant, at the level chosen (`--trust-domain`, default
 *   "namespace"): the Kubernetes namespace of a pod whose namespace is
 *   known, else its pod (a Kubernetes pod, a podman pod, or a Docker
 *   Compose / podman-compose project where podman or docker reports its
 *   label), else its container, else its user namespace when that is not
 *   the host's, else the host. Without a runtime to ask, a project's
 *   containers stay apart: narrower, never wider. Level "pod" stops at the
 *   pod, "container" at the container,
 *   "host" puts every process in one tenant (warned). A process in a
 *   user namespace of its own is apart from everyone at every level but
 *   "host".
 * - the uid, unless `--cross-user` (warned): apache's mpm-itk, suexec and
 *   shared hosting run one uid per customer, and a compromised web
 *   application must not probe the database's memory.
 *
 * KSM has one stable tree per host, and a marked VMA stays marked until it
 * is unmerged: whatever is marked now can merge with whatever any other
 * domain marked before, by mergemem or not. So a boundary holds across
 * runs only if no two domains ever have mergeable memory at the same time:
 * mergemem marks a domain only while no other domain holds mergeable
 * memory on the host (src/ksm/holders.ts), and refuses otherwise (exit 9),
 * naming the domain that holds it. A broad selection (--comm, --user,
 * --all) spanning domains merges the domain that already holds KSM, if
 * any, else the one with the most saveable memory, and names those it
 * skipped; explicit pids spanning domains are refused.
 *
 * @module
 */
import { ErrorKind, ErrorReason, MergememError } from "../errors.ts";
import { containerLabel, podLabel, type Tenancy } from "../proc/tenant.ts";

/** How wide a tenant is: see the module documentation. */
export type TrustLevel = "container" | "pod" | "namespace" | "host";

/** The levels, narrowest first (for --help and parsing). */
export const TRUST_LEVELS: readonly TrustLevel[] = [
  "container",
  "pod",
  "namespace",
  "host",
];

/** The default level: Kubernetes namespaces, pods, containers, the host. */
export const DEFAULT_TRUST_LEVEL: TrustLevel = "namespace";

/** One trust domain. */
export interface TrustDomain {
  /** Identifies the domain ("container:podman:<id>|uid:33"). */
  key: string;
  /** For people ("container web-1, uid 33"). */
  label: string;
}

/** How domains are drawn. */
export interface DomainRules {
  /** The tenant level. */
  level: TrustLevel;
  /** One domain across the uids of a tenant. */
  crossUser: boolean;
}

/** The tenant part of a process's domain at `level`: key and label. */
export function tenantOf(t: Tenancy, level: TrustLevel): TrustDomain {
  if (level === "host") return { key: "host", label: "host" };
  let tenant: TrustDomain | undefined;
  if (
    level === "namespace" && t.pod?.kind === "kubernetes" && t.pod.namespace
  ) {
    tenant = {
      key: `k8s-namespace:${t.pod.namespace}`,
      label: `Kubernetes namespace ${t.pod.namespace}`,
    };
  } else if (level !== "container" && t.pod) {
    tenant = { key: `pod:${t.pod.kind}:${t.pod.uid}`, label: podLabel(t.pod) };
  } else if (level !== "container" && t.container?.project) {
    const { runtime, project } = t.container;
    tenant = {
      key: `compose:${runtime}:${project}`,
      label: `compose project ${project}`,
    };
  } else if (t.container) {
    tenant = {
      key: `container:${t.container.runtime}:${t.container.id}`,
      label: `container ${containerLabel(t.container)}`,
    };
  }
  if (t.userns === null) return tenant ?? { key: "host", label: "host" };
  // Another user namespace: apart from every other one, inside any tenant.
  return tenant
    ? {
      key: `${tenant.key}+${t.userns}`,
      label: `${tenant.label} (${t.userns})`,
    }
    : { key: t.userns, label: `user namespace ${t.userns}` };
}

/** The trust domain of a process of `uid` with tenancy `t`. */
export function domainOf(
  uid: number,
  t: Tenancy,
  rules: DomainRules,
): TrustDomain {
  const tenant = tenantOf(t, rules.level);
  if (rules.crossUser) return tenant;
  return {
    key: `${tenant.key}|uid:${uid}`,
    label: tenant.key === "host" ? `uid ${uid}` : `${tenant.label}, uid ${uid}`,
  };
}

/**
 * What to do with a selection spanning domains: "refuse" it (explicit
 * pids), or merge one domain and skip the others ("largest").
 */
export type DomainPolicy = "refuse" | "largest";

/** What planning one domain alone gives (see {@link chooseDomain}). */
export interface DomainSaving {
  /** Saveable pages. */
  pages: number;
  /** Its processes that the scan could still read. */
  live: number;
}

/** A domain that holds mergeable memory on the host. */
export interface HeldDomain {
  /** The domain. */
  domain: TrustDomain;
  /** Its processes with mergeable memory (pid and comm, a few suffice). */
  processes: { pid: number; comm: string }[];
}

/** The outcome of {@link chooseDomain}. */
export interface DomainChoice {
  /** How the domain was chosen: the selection's only one, or one of
   * several (the holder of KSM, or the largest). */
  policy: "single-domain" | "largest-domain";
  /** The domain to merge. */
  chosen: TrustDomain;
  /** Notices for the user. */
  warnings: string[];
}

/**
 * Chooses the trust domain to merge from the selection's processes and
 * their domains. Refused when another domain holds mergeable memory on
 * the host (`held`: the domains of the host's mergeable processes, other
 * than the selection's own), when two or more do, or for several domains
 * under "refuse". Under "largest", the one domain that holds KSM already
 * if the selection has it, else the domain whose processes hold the most
 * saveable memory: on a server the workers, not the root master.
 * `saveable(key, pids)` plans one domain; it is called once per domain,
 * only when sizes decide. Ties go to the domain with more live processes.
 *
 * @throws MergememError Refused (reason cross-domain or ksm-held).
 */
export async function chooseDomain(
  members: ReadonlyMap<number, TrustDomain>,
  policy: DomainPolicy,
  saveable: (key: string, pids: number[]) => Promise<DomainSaving>,
  held: readonly HeldDomain[] = [],
): Promise<DomainChoice> {
  const byKey = new Map<string, { domain: TrustDomain; pids: number[] }>();
  for (const [pid, domain] of members) {
    const g = byKey.get(domain.key) ?? { domain, pids: [] };
    g.pids.push(pid);
    byKey.set(domain.key, g);
  }
  const keys = [...byKey.keys()].sort();
  if (held.length > 1) throw heldByOthers(held, undefined);
  const holder = held[0];
  if (keys.length === 1) {
    const only = byKey.get(keys[0])!.domain;
    if (holder && holder.domain.key !== only.key) {
      throw heldByOthers(held, only);
    }
    return { policy: "single-domain", chosen: only, warnings: [] };
  }
  if (policy === "refuse") {
    throw new MergememError(
      `the selection spans ${keys.length} trust domains (${
        keys.map((k) => byKey.get(k)!.domain.label).join("; ")
      }); merging across them opens dedup side channels between them`,
      ErrorKind.Refused,
      { reason: ErrorReason.CrossDomain },
    );
  }
  let best: string;
  let why: string;
  if (holder) {
    if (!byKey.has(holder.domain.key)) {
      throw heldByOthers(held, {
        key: "",
        label: keys.map((k) => byKey.get(k)!.domain.label).join(" or "),
      });
    }
    best = holder.domain.key;
    why = "it already holds mergeable memory on this host";
  } else {
    best = keys[0];
    let bestPages = -1, bestLive = -1;
    for (const key of keys) {
      const { pages, live } = await saveable(key, byKey.get(key)!.pids);
      if (pages > bestPages || (pages === bestPages && live > bestLive)) {
        best = key;
        bestPages = pages;
        bestLive = live;
      }
    }
    why = bestPages > 0
      ? `${bestPages} saveable pages, the most`
      : "nothing is saveable in any of them; the one with most processes";
  }
  const others = keys.filter((k) => k !== best);
  const left = others.reduce((a, k) => a + byKey.get(k)!.pids.length, 0);
  const chosen = byKey.get(best)!.domain;
  return {
    policy: "largest-domain",
    chosen,
    warnings: [
      `the selection spans ${keys.length} trust domains: merging ${chosen.label} ` +
      `(${why}); ${left} process(es) of ${
        others.map((k) => byKey.get(k)!.domain.label).join("; ")
      } skipped by policy`,
    ],
  };
}

/**
 * Checked again right before marking, under the KSM lock: another run may
 * have marked another domain since the plan was made.
 *
 * @throws MergememError Refused (ksm-held) when a domain other than
 *   `chosen` holds mergeable memory.
 */
export function assertSoleHolder(
  held: readonly HeldDomain[],
  chosen: TrustDomain,
): void {
  const others = held.filter((h) => h.domain.key !== chosen.key);
  if (others.length > 0) throw heldByOthers(others, chosen);
}

/** How many holder processes a refusal names. */
const NAMED_HOLDERS = 3;

/**
 * The refusal when other domains hold mergeable memory on the host:
 * names them, a few of their processes, and the ways out.
 */
function heldByOthers(
  held: readonly HeldDomain[],
  wanted: TrustDomain | undefined,
): MergememError {
  const who = held.map((h) =>
    `${h.domain.label} (${
      h.processes.slice(0, NAMED_HOLDERS).map((p) => `${p.pid} ${p.comm}`)
        .join(", ")
    }${h.processes.length > NAMED_HOLDERS ? ", ..." : ""})`
  ).join("; ");
  const what = wanted ? `merging ${wanted.label}` : "merging any domain";
  return new MergememError(
    `KSM on this host already holds mergeable memory of ${
      held.length > 1 ? "other trust domains" : "another trust domain"
    }: ${who}; ${what} would let KSM merge their pages with it`,
    ErrorKind.Refused,
    { reason: ErrorReason.KsmHeld },
  );
}

/** The warning given when a merge spans uids of one tenant. */
export const CROSS_USER_WARNING =
  "merging across uids lets their processes observe " +
  "each other's memory through copy-on-write timing (dedup side channels: " +
  "CAIN, Dedup Est Machina, Flip Feng Shui, VUsion); do this only within " +
  "one trust domain";

/** The warning given when a merge spans tenants (--trust-domain host, ...). */
export const CROSS_TENANT_WARNING =
  "merging across containers, pods or namespaces lets " +
  "their tenants observe each other's memory through dedup side channels; " +
  "do this only when they trust each other";

/**
 * The warnings for a chosen domain that the rules widened: several uids
 * (--cross-user), or several tenants of the default level (--trust-domain
 * host).
 */
export function wideningWarnings(
  members: readonly { uid: number; tenancy: Tenancy }[],
  rules: DomainRules,
): string[] {
  const warnings: string[] = [];
  if (rules.crossUser && new Set(members.map((m) => m.uid)).size > 1) {
    warnings.push(CROSS_USER_WARNING);
  }
  const tenants = new Set(
    members.map((m) => tenantOf(m.tenancy, DEFAULT_TRUST_LEVEL).key),
  );
  if (tenants.size > 1) warnings.push(CROSS_TENANT_WARNING);
  return warnings;
}
