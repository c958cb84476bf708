/**
 * Which container, pod and Kubernetes namespace a process belongs to, read
 * from /proc/PID/cgroup and the kubelet's log directory, without asking a
 * container runtime or the API server. Containers without user namespaces
 * run different tenants under one host uid (33, 1000, 0), so the uid alone
 * cannot tell tenants apart: src/merge/domain.ts builds trust domains from
 * what this module finds.
 *
 * The cgroup names are the runtimes' standard layouts (cgroup v2 path; the
 * v1 `name=systemd` and `memory` lines where a container shows only there):
 * - podman: `libpod-<id>.scope` (systemd manager; pods in
 *   `machine-libpod_pod_<pod id>.slice`), `/libpod_parent/[<pod id>/]libpod-<id>`
 *   (cgroupfs); `libpod-conmon-<id>.scope` is podman's monitor, a host
 *   process;
 * - Docker: `docker-<id>.scope`, `/docker/<id>`;
 * - Kubernetes (containerd, CRI-O, cri-dockerd): `kubepods[-<qos>]-pod<UID>.slice`
 *   (UID with `_` for `-`) holding `cri-containerd-<id>.scope`,
 *   `crio-<id>.scope` or `docker-<id>.scope`; cgroupfs
 *   `/kubepods[/<qos>]/pod<UID>/<id>`;
 * - systemd-nspawn/machined: `machine-<name>.scope`, `systemd-nspawn@<name>.service`;
 * - LXC: `lxc.payload.<name>` (`/lxc/<name>` before LXC 4).
 *
 * Paths seen from another cgroup namespace (an agent in a container) start
 * with `/..`; the names below are the same, so matching works on the
 * path's components wherever they are.
 *
 * @module
 */

/** A container runtime, as its cgroup names tell it. */
export type ContainerRuntime =
  | "podman"
  | "docker"
  | "containerd"
  | "cri-o"
  | "nspawn"
  | "lxc";

/** A container: its runtime and id (a machine's name for nspawn and LXC). */
export interface ContainerRef {
  /** The runtime whose cgroup layout matched. */
  runtime: ContainerRuntime;
  /** The full container id (64 hex digits), or the machine's name. */
  id: string;
  /** Its name, when a runtime was asked (src/proc/runtime.ts). */
  name?: string;
  /** The image it runs, when a runtime was asked. */
  image?: string;
  /** Its Docker Compose / podman-compose project, when a runtime was asked. */
  project?: string;
}

/** A pod: a Kubernetes pod or a podman pod. */
export interface PodRef {
  /** "kubernetes" or "podman". */
  kind: "kubernetes" | "podman";
  /** The Kubernetes pod UID, or the podman pod id. */
  uid: string;
  /** The pod's name, when known (kubelet's log directory, podman). */
  name?: string;
  /** Kubernetes: the pod's namespace, when known (kubelet's log directory). */
  namespace?: string;
}

/** Where a process runs: container, pod and user namespace. */
export interface Tenancy {
  /** Its container, or null for a host process. */
  container: ContainerRef | null;
  /** Its pod, or null. */
  pod: PodRef | null;
  /**
   * Its user namespace ("user:[4026532xxx]") when that is not the host's
   * (mergemem's own); null in the host's user namespace.
   */
  userns: string | null;
}

const HEX64 = "[0-9a-f]{64}";
const POD_UID =
  "[0-9a-f]{8}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{4}[-_][0-9a-f]{12}";

/** One pattern per container layout, tried on each path component. */
const CONTAINER_NAMES: [RegExp, ContainerRuntime][] = [
  [new RegExp(`^libpod-(${HEX64})(?:\\.scope)?$`), "podman"],
  [new RegExp(`^docker-(${HEX64})\\.scope$`), "docker"],
  [new RegExp(`^cri-containerd-(${HEX64})\\.scope$`), "containerd"],
  [new RegExp(`^crio-(${HEX64})\\.scope$`), "cri-o"],
  [/^machine-(.+)\.scope$/, "nspawn"],
  [/^systemd-nspawn@(.+)\.service$/, "nspawn"],
  [/^lxc\.payload\.(.+)$/, "lxc"],
];
const K8S_POD_SLICE = new RegExp(
  `^kubepods(?:-[a-z]+)?-pod(${POD_UID})\\.slice$`,
);
const K8S_POD_DIR = new RegExp(`^pod(${POD_UID})$`);
const PODMAN_POD_SLICE = new RegExp(`^machine-libpod_pod_(${HEX64})\\.slice$`);
const HEX64_ONLY = new RegExp(`^${HEX64}$`);

/** systemd's unit-name escaping (`\x2d` for `-`), undone. */
function unescapeUnit(name: string): string {
  return name.replace(
    /\\x([0-9a-f]{2})/g,
    (_, h) => String.fromCharCode(parseInt(h, 16)),
  );
}

/**
 * The container and pod named by one cgroup path, or nulls for a host
 * process. Pure: the table tests feed it every layout above.
 */
export function tenancyFromPath(
  path: string,
): Pick<Tenancy, "container" | "pod"> {
  const parts = path.split("/").filter((p) => p !== "" && p !== "..");
  let container: ContainerRef | null = null;
  let pod: PodRef | null = null;
  const k8s = parts.some((p) => p === "kubepods" || p.startsWith("kubepods"));
  for (let i = 0; i < parts.length; i++) {
    const part = parts[i];
    const k8sPod = K8S_POD_SLICE.exec(part) ?? K8S_POD_DIR.exec(part);
    if (k8sPod && k8s) {
      pod = { kind: "kubernetes", uid: k8sPod[1].replaceAll("_", "-") };
      // cgroupfs driver: the container is the bare id below the pod.
      const next = parts[i + 1];
      if (next && HEX64_ONLY.test(next)) {
        container = { runtime: "containerd", id: next };
        break;
      }
      continue;
    }
    const podmanPod = PODMAN_POD_SLICE.exec(part);
    if (podmanPod) {
      pod = { kind: "podman", uid: podmanPod[1] };
      continue;
    }
    if (part.startsWith("libpod-conmon-")) {
      return { container: null, pod: null };
    }
    // cgroupfs podman: /libpod_parent/[<pod id>/]libpod-<id>
    if (part === "libpod_parent") {
      const maybePod = parts[i + 1];
      if (maybePod && HEX64_ONLY.test(maybePod)) {
        pod = { kind: "podman", uid: maybePod };
        i++;
      }
      continue;
    }
    // Docker's cgroupfs driver and LXC before 4: /docker/<id>, /lxc/<name>
    if (part === "docker" && parts[i + 1] && HEX64_ONLY.test(parts[i + 1])) {
      container = { runtime: "docker", id: parts[i + 1] };
      break;
    }
    if (part === "lxc" && parts[i + 1] && i === 0) {
      container = { runtime: "lxc", id: parts[i + 1] };
      break;
    }
    for (const [re, runtime] of CONTAINER_NAMES) {
      const m = re.exec(part);
      if (!m) continue;
      // machine-libpod_pod_… is a pod slice, handled above; a machine
      // scope is nspawn's.
      const id = runtime === "nspawn" ? unescapeUnit(m[1]) : m[1];
      container = {
        runtime: runtime === "docker" && pod?.kind === "kubernetes"
          ? "docker"
          : runtime,
        id,
      };
      break;
    }
    if (container) break;
  }
  return { container, pod };
}

/**
 * The cgroup paths of a /proc/PID/cgroup text to look for a container in:
 * the v2 line first, then the v1 `name=systemd` and `memory` lines (a
 * hybrid host's v1 runtimes show only there).
 */
export function cgroupPaths(text: string): string[] {
  let v2: string | undefined;
  const v1: string[] = [];
  for (const line of text.split("\n")) {
    const m = /^(\d+):([^:]*):(.*)$/.exec(line);
    if (!m) continue;
    if (m[1] === "0" && m[2] === "") v2 = m[3];
    else if (
      m[2] === "name=systemd" || m[2].split(",").includes("memory")
    ) v1.push(m[3]);
  }
  return [...(v2 === undefined ? [] : [v2]), ...v1];
}

/**
 * The container and pod of a /proc/PID/cgroup text: the first of its
 * paths (see {@link cgroupPaths}) that names one.
 */
export function tenancyFromCgroupFile(
  text: string,
): Pick<Tenancy, "container" | "pod"> {
  for (const path of cgroupPaths(text)) {
    const t = tenancyFromPath(path);
    if (t.container || t.pod) return t;
  }
  return { container: null, pod: null };
}

/** A pod's namespace and name (the kubelet's log directory). */
export interface PodName {
  /** Its namespace. */
  namespace: string;
  /** Its name. */
  name: string;
}

/**
 * Kubernetes pods by UID, from the kubelet's log directories
 * `<namespace>_<pod>_<uid>` (namespaces and pod names are DNS labels and
 * subdomains: no `_`). Empty when the directory does not exist.
 */
export function kubeletPods(logDir = "/var/log/pods"): Map<string, PodName> {
  const pods = new Map<string, PodName>();
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(logDir)];
  } catch {
    return pods;
  }
  for (const e of entries) {
    const m = /^([^_]+)_([^_]+)_([0-9a-f-]{36})$/.exec(e.name);
    if (m) pods.set(m[3], { namespace: m[1], name: m[2] });
  }
  return pods;
}

/** Where {@link TenancyReader} reads from (tests point it at fixtures). */
export interface TenancyOptions {
  /** The proc mount (default /proc). */
  proc?: string;
  /** The kubelet's pod log directory (default /var/log/pods). */
  podLogDir?: string;
}

/**
 * Reads the tenancy of processes; the kubelet's pod list and the host's
 * user namespace are read once per reader.
 */
export class TenancyReader {
  #proc: string;
  #podLogDir: string;
  #pods?: Map<string, PodName>;
  #hostUserns?: string | null;

  constructor(opts: TenancyOptions = {}) {
    this.#proc = opts.proc ?? "/proc";
    this.#podLogDir = opts.podLogDir ?? "/var/log/pods";
  }

  /**
   * The tenancy of `pid`.
   *
   * @throws the read error of /proc/PID/cgroup or /proc/PID/ns/user (gone:
   *   NotFound; denied: PermissionDenied): a process whose tenancy is
   *   unknown must not be merged with anyone.
   */
  read(pid: number): Tenancy {
    const text = Deno.readTextFileSync(`${this.#proc}/${pid}/cgroup`);
    const { container, pod } = tenancyFromCgroupFile(text);
    if (pod?.kind === "kubernetes") {
      this.#pods ??= kubeletPods(this.#podLogDir);
      const named = this.#pods.get(pod.uid);
      if (named) Object.assign(pod, named);
    }
    const userns = Deno.readLinkSync(`${this.#proc}/${pid}/ns/user`);
    return {
      container,
      pod,
      userns: userns === this.#hostNs() ? null : userns,
    };
  }

  /**
   * The reference user namespace: mergemem's own. Marking other
   * processes needs the host's privileges, so mergemem runs in the host's
   * user namespace (a privileged agent container does too); PID 1's link
   * may be unreadable even to root (a non-dumpable init).
   */
  #hostNs(): string | null {
    if (this.#hostUserns === undefined) {
      try {
        this.#hostUserns = Deno.readLinkSync(`${this.#proc}/self/ns/user`);
      } catch {
        this.#hostUserns = null;
      }
    }
    return this.#hostUserns;
  }
}

/** A short label for a container: "podman 3f2a9c1b4d5e" or its name. */
export function containerLabel(c: ContainerRef): string {
  if (c.name) return c.name;
  return HEX64_ONLY.test(c.id) ? `${c.runtime} ${c.id.slice(0, 12)}` : c.id;
}

/** A short label for a pod: "pod shop/web-7d9f", "pod tenant-a",
 * "pod 5d0c5f43-…" (a Kubernetes UID), "podman pod 0a1b2c3d4e5f". */
export function podLabel(p: PodRef): string {
  if (p.namespace && p.name) return `pod ${p.namespace}/${p.name}`;
  if (p.name) return `pod ${p.name}`;
  return p.kind === "kubernetes"
    ? `pod ${p.uid}`
    : `podman pod ${p.uid.slice(0, 12)}`;
}
