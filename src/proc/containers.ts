/**
 * Selecting by container, pod and Kubernetes namespace (`--container`,
 * `--pod`, `--k8s-namespace`), image and compose project (`--image`,
 * `--compose-project`): the processes whose /proc/PID/cgroup puts them
 * there (src/proc/tenant.ts). Containers are named by id or id prefix, or
 * by name where a runtime on the host knows it (src/proc/runtime.ts); pods
 * by name (`NAME` or `NAMESPACE/NAME` for Kubernetes, from the kubelet's
 * log directories; podman pods through podman) or UID prefix. Images and
 * compose projects are known only through a runtime (podman, docker).
 *
 * @module
 */
import { ErrorKind, ErrorReason, MergememError } from "../errors.ts";
import { listPids } from "./info.ts";
import {
  installedRuntimes,
  listRuntimeContainers,
  type RuntimeListing,
} from "./runtime.ts";
import {
  containerLabel,
  podLabel,
  type Tenancy,
  TenancyReader,
} from "./tenant.ts";

/** The container selectors of a selection. */
export interface TenantSelectors {
  /** Container names, ids or id prefixes. */
  containers?: string[];
  /** Pod names (`NAME`, `NAMESPACE/NAME`) or UID prefixes. */
  pods?: string[];
  /** Kubernetes namespaces. */
  k8sNamespaces?: string[];
  /** Images: every container running one ({@link imageMatches}). */
  images?: string[];
  /** Docker Compose / podman-compose projects. */
  composeProjects?: string[];
}

/** Whether a selection needs the runtimes' listing (names, images). */
export function needsRuntimeNames(sel: TenantSelectors): boolean {
  return !!(sel.containers?.length || sel.pods?.length ||
    sel.images?.length || sel.composeProjects?.length);
}

/** The processes' tenancies, with names filled in from the runtimes. */
export interface TenancyMap {
  /** Tenancy by pid, for every process whose cgroup could be read. */
  byPid: Map<number, Tenancy>;
  /** The runtimes installed on the host. */
  runtimes: string[];
}

/**
 * The tenancy of every process in `pids` (default: all), container and
 * podman pod names taken from the runtimes when `names` is set.
 * Processes that vanish or cannot be read are left out.
 */
export function readTenancies(
  pids: number[] = listPids(),
  opts: { names?: boolean; reader?: TenancyReader } = {},
): TenancyMap {
  const reader = opts.reader ?? new TenancyReader();
  const byPid = new Map<number, Tenancy>();
  for (const pid of pids) {
    try {
      byPid.set(pid, reader.read(pid));
    } catch {
      // gone, or unreadable: not in any container we can name
    }
  }
  const anyContainer = [...byPid.values()].some((t) => t.container);
  const listing: RuntimeListing = opts.names && anyContainer
    ? listRuntimeContainers()
    : { runtimes: installedRuntimes(), containers: [] };
  nameContainers(byPid, listing);
  return { byPid, runtimes: listing.runtimes };
}

/** Fills in container and podman pod names from a runtime listing. */
export function nameContainers(
  byPid: Map<number, Tenancy>,
  listing: RuntimeListing,
): void {
  const byId = new Map(listing.containers.map((c) => [c.id, c]));
  for (const t of byPid.values()) {
    const known = t.container && byId.get(t.container.id);
    if (!known) continue;
    if (known.names[0]) t.container!.name = known.names[0];
    if (known.image) t.container!.image = known.image;
    if (known.project) t.container!.project = known.project;
    if (known.pod && t.pod?.kind === "podman" && t.pod.uid === known.pod.id) {
      t.pod.name = known.pod.name;
    }
  }
}

/** The pids of `tenancies` matching any of the selectors. */
export function tenantPids(
  sel: TenantSelectors,
  tenancies: TenancyMap,
): Set<number> {
  const picked = new Set<number>();
  const entries = [...tenancies.byPid.entries()];
  const pick = (
    what: string,
    wanted: string,
    match: (t: Tenancy) => boolean,
    known: () => string[],
  ) => {
    const hits = entries.filter(([, t]) => match(t));
    if (hits.length === 0) throw unknown(what, wanted, known(), tenancies);
    for (const [pid] of hits) picked.add(pid);
  };
  for (const c of sel.containers ?? []) {
    pick(
      "container",
      c,
      (t) => containerMatches(t, c),
      () =>
        distinct(
          entries.map(([, t]) => t.container && containerLabel(t.container)),
        ),
    );
    assertUnambiguous(
      "container",
      c,
      entries.map(([, t]) =>
        t.container && containerMatches(t, c) ? t.container.id : null
      ),
    );
  }
  for (const p of sel.pods ?? []) {
    pick(
      "pod",
      p,
      (t) => podMatches(t, p),
      () => distinct(entries.map(([, t]) => t.pod && podLabel(t.pod))),
    );
    assertUnambiguous(
      "pod",
      p,
      entries.map(([, t]) => t.pod && podMatches(t, p) ? t.pod.uid : null),
    );
  }
  for (const img of sel.images ?? []) {
    pick(
      "image",
      img,
      (t) => imageMatches(t.container?.image, img),
      () => distinct(entries.map(([, t]) => t.container?.image ?? null)),
    );
  }
  for (const p of sel.composeProjects ?? []) {
    pick(
      "compose project",
      p,
      (t) => t.container?.project === p,
      () => distinct(entries.map(([, t]) => t.container?.project ?? null)),
    );
  }
  for (const ns of sel.k8sNamespaces ?? []) {
    pick(
      "Kubernetes namespace",
      ns,
      (t) => t.pod?.namespace === ns,
      () => distinct(entries.map(([, t]) => t.pod?.namespace ?? null)),
    );
  }
  return picked;
}

/** A container selector: its name, its id, or an id prefix (≥ 4 digits). */
function containerMatches(t: Tenancy, wanted: string): boolean {
  const c = t.container;
  if (!c) return false;
  return c.id === wanted || c.name === wanted ||
    (/^[0-9a-f]{4,}$/.test(wanted) && c.id.startsWith(wanted));
}

/**
 * An image selector: the image as the runtime lists it, or the same
 * without its tag or digest, its default registry (docker.io, localhost)
 * or Docker's "library/": `php:8.2-fpm`, `php` and `docker.io/library/php`
 * all match a container running `docker.io/library/php:8.2-fpm`.
 */
export function imageMatches(
  image: string | undefined,
  wanted: string,
): boolean {
  if (!image) return false;
  if (image === wanted) return true;
  const short = (x: string) =>
    x.replace(/^(docker\.io|localhost)\//, "").replace(/^library\//, "");
  const repo = (x: string) => x.replace(/@.*$/, "").replace(/:[^/:]*$/, "");
  const w = short(wanted), i = short(image);
  if (w === i) return true;
  // A wanted image without tag or digest matches every tag of it.
  return repo(w) === w && repo(i) === w;
}

/** A pod selector: NAME, NAMESPACE/NAME, or a UID prefix (≥ 4). */
function podMatches(t: Tenancy, wanted: string): boolean {
  const p = t.pod;
  if (!p) return false;
  return p.name === wanted || p.uid === wanted ||
    (p.namespace !== undefined && `${p.namespace}/${p.name}` === wanted) ||
    (/^[0-9a-f-]{4,}$/.test(wanted) && p.uid.startsWith(wanted));
}

/** A prefix that names two containers (or pods) is refused. */
function assertUnambiguous(
  what: string,
  wanted: string,
  ids: (string | null)[],
): void {
  const found = distinct(ids);
  if (found.length > 1) {
    throw new MergememError(
      `${what} '${wanted}' is ambiguous: it matches ${
        found.map((id) => id.slice(0, 12)).join(", ")
      }`,
      ErrorKind.Usage,
    );
  }
}

function distinct(xs: (string | null)[]): string[] {
  return [...new Set(xs.filter((x): x is string => x !== null))].sort();
}

/** The error for a selector that matched nothing: what there is instead. */
function unknown(
  what: string,
  wanted: string,
  known: string[],
  tenancies: TenancyMap,
): MergememError {
  const anyContainer = [...tenancies.byPid.values()].some((t) =>
    t.container || t.pod
  );
  if (!anyContainer) {
    return new MergememError(
      `no ${what} '${wanted}': no process on this host runs in a container ${
        tenancies.runtimes.length
          ? `(runtimes installed: ${tenancies.runtimes.join(", ")})`
          : "and no container runtime (podman, docker) is installed"
      }`,
      ErrorKind.NothingScannable,
      { reason: ErrorReason.NoSuchContainer },
    );
  }
  if (
    (what === "image" || what === "compose project") &&
    tenancies.runtimes.length === 0
  ) {
    return new MergememError(
      `no ${what} '${wanted}': images and compose projects are known only ` +
        "through a container runtime, and none (podman, docker) is installed",
      ErrorKind.NothingScannable,
      { reason: ErrorReason.NoSuchContainer },
    );
  }
  const shown = known.slice(0, 10).join(", ");
  return new MergememError(
    `no ${what} '${wanted}' is running${
      known.length
        ? ` (${what}s: ${shown}${known.length > 10 ? ", ..." : ""})`
        : ` (no process is in any ${what})`
    }`,
    ErrorKind.NothingScannable,
    { reason: ErrorReason.NoSuchContainer },
  );
}
