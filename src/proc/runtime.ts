/**
 * Container names, from the container runtimes installed on the host
 * (`podman ps`, `docker ps`). Only names need a runtime: ids, pods and
 * Kubernetes namespaces come from /proc and the kubelet's directories
 * (src/proc/tenant.ts). A runtime that is missing, slow or fails is
 * simply not asked.
 *
 * @module
 */
import type { ContainerRuntime } from "./tenant.ts";

/** A running container as its runtime lists it. */
export interface RuntimeContainer {
  /** podman or docker. */
  runtime: ContainerRuntime;
  /** Full id. */
  id: string;
  /** Its names. */
  names: string[];
  /** podman: its pod's id and name, if in one. */
  pod?: { id: string; name: string };
  /** The image it runs. */
  image?: string;
  /** Docker Compose / podman-compose project, from its labels. */
  project?: string;
}

/** How long a runtime may take to list its containers, in seconds. */
const LIST_TIMEOUT_S = 20;

/** Whether an executable `cmd` is in one of `path`'s directories. */
function onPath(cmd: string, path: string): boolean {
  return path.split(":").some((dir) => {
    try {
      return (Deno.statSync(`${dir || "."}/${cmd}`).mode ?? 0) & 0o111;
    } catch {
      return false;
    }
  });
}

/** Parses `podman ps --pod --format json` (one JSON array). */
export function parsePodmanPs(text: string): RuntimeContainer[] {
  const list = JSON.parse(text) as {
    Id: string;
    Names?: string[];
    Pod?: string;
    PodName?: string;
    Image?: string;
    Labels?: Record<string, string> | null;
  }[];
  return list.map((c) => ({
    runtime: "podman" as const,
    id: c.Id,
    names: c.Names ?? [],
    ...(c.Pod && c.PodName ? { pod: { id: c.Pod, name: c.PodName } } : {}),
    ...(c.Image ? { image: c.Image } : {}),
    ...(projectOf(c.Labels) ? { project: projectOf(c.Labels) } : {}),
  }));
}

/** Parses `docker ps --no-trunc --format '{{json .}}'` (one object a line). */
export function parseDockerPs(text: string): RuntimeContainer[] {
  return text.split("\n").filter((l) => l.trim()).map((l) => {
    const c = JSON.parse(l) as {
      ID: string;
      Names?: string;
      Image?: string;
      Labels?: string;
    };
    const labels = Object.fromEntries(
      (c.Labels ?? "").split(",").filter((kv) => kv.includes("=")).map((
        kv,
      ) => [kv.slice(0, kv.indexOf("=")), kv.slice(kv.indexOf("=") + 1)]),
    );
    return {
      runtime: "docker" as const,
      id: c.ID,
      names: (c.Names ?? "").split(",").filter((n) => n),
      ...(c.Image ? { image: c.Image } : {}),
      ...(projectOf(labels) ? { project: projectOf(labels) } : {}),
    };
  });
}

function projectOf(
  labels: Record<string, string> | null | undefined,
): string | undefined {
  return labels?.["com.docker.compose.project"] ??
    labels?.["io.podman.compose.project"];
}

/** One runtime's listing command and parser. */
const RUNTIMES: [string, string[], (out: string) => RuntimeContainer[]][] = [
  // --pod: without it podman leaves PodName empty.
  ["podman", ["ps", "--pod", "--format", "json"], parsePodmanPs],
  [
    "docker",
    ["ps", "--no-trunc", "--format", "{{json .}}"],
    parseDockerPs,
  ],
];

/** The runtimes found on this host's PATH and what they list. */
export interface RuntimeListing {
  /** The runtimes whose command exists. */
  runtimes: string[];
  /** The containers they listed. */
  containers: RuntimeContainer[];
}

/** The container runtimes (podman, docker) on `path`, without running them. */
export function installedRuntimes(
  path = Deno.env.get("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin",
): string[] {
  return RUNTIMES.map(([cmd]) => cmd).filter((cmd) => onPath(cmd, path));
}

/**
 * Lists the running containers of every runtime installed. Synchronous,
 * as process selection is: coreutils' timeout(1) bounds a runtime that
 * hangs (a held storage lock).
 */
export function listRuntimeContainers(
  path = Deno.env.get("PATH") ?? "/usr/sbin:/usr/bin:/sbin:/bin",
): RuntimeListing {
  const listing: RuntimeListing = { runtimes: [], containers: [] };
  for (const [cmd, args, parse] of RUNTIMES) {
    if (!onPath(cmd, path)) continue;
    listing.runtimes.push(cmd);
    let out: Deno.CommandOutput;
    try {
      out = new Deno.Command("timeout", {
        args: ["-k", "1", String(LIST_TIMEOUT_S), cmd, ...args],
        stdout: "piped",
        stderr: "null",
        stdin: "null",
      }).outputSync();
    } catch {
      continue;
    }
    if (!out.success) continue;
    try {
      listing.containers.push(...parse(new TextDecoder().decode(out.stdout)));
    } catch {
      // an output format of another version: names stay unknown
    }
  }
  return listing;
}
