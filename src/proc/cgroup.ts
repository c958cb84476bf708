/**
 * Selecting a service: the processes of a cgroup v2 (`--cgroup PATH`) or of
 * a systemd unit (`--unit NAME`, through the unit's cgroup). Many hosts run
 * the same program in several services or containers; a cgroup names one
 * of them exactly, whatever its processes' names and uids.
 *
 * A cgroup's processes are those in its cgroup.procs and in the
 * cgroup.procs of every cgroup below it, as systemd counts a unit's tasks.
 *
 * @module
 */
import { errnoCode, ErrorKind, ErrorReason, MergememError } from "../errors.ts";

/** Where a cgroup v2 hierarchy is mounted, from mountinfo (first one). */
export function cgroup2Root(mountinfo = "/proc/self/mountinfo"): string {
  let text = "";
  try {
    text = Deno.readTextFileSync(mountinfo);
  } catch {
    // reported below
  }
  const root = parseCgroup2Mount(text);
  if (root === undefined) {
    throw new MergememError(
      "no cgroup v2 hierarchy is mounted",
      ErrorKind.NothingScannable,
      { reason: ErrorReason.NoCgroup2 },
    );
  }
  return root;
}

/**
 * The mount point of the first cgroup2 file system in a mountinfo text
 * (proc(5): fields, then " - ", then fstype), or undefined.
 */
export function parseCgroup2Mount(mountinfo: string): string | undefined {
  for (const line of mountinfo.split("\n")) {
    const sep = line.indexOf(" - ");
    if (sep < 0) continue;
    const fstype = line.slice(sep + 3).split(" ")[0];
    if (fstype !== "cgroup2") continue;
    const mountPoint = line.slice(0, sep).split(" ")[4];
    // mountinfo escapes spaces and the like as \ooo.
    return mountPoint.replace(
      /\\([0-7]{3})/g,
      (_, o) => String.fromCharCode(parseInt(o, 8)),
    );
  }
  return undefined;
}

/**
 * Resolves a cgroup path as an admin writes it: relative to the cgroup v2
 * root ("system.slice/apache2.service", "/system.slice/x"), or absolute
 * under the mount ("/sys/fs/cgroup/system.slice/x").
 *
 * @throws MergememError NothingScannable when no such cgroup exists.
 */
export function resolveCgroup(path: string, root = cgroup2Root()): string {
  const inside = path.startsWith(root + "/") || path === root
    ? path
    : `${root}/${path.replace(/^\/+/, "")}`;
  const clean = inside.replace(/\/+$/, "");
  if (clean.split("/").includes("..")) {
    throw new MergememError(
      `cgroup path '${path}' must not contain '..'`,
      ErrorKind.Usage,
    );
  }
  try {
    Deno.statSync(`${clean}/cgroup.procs`);
  } catch {
    throw new MergememError(
      `no such cgroup: ${path} (looked for ${clean}/cgroup.procs)`,
      ErrorKind.NothingScannable,
      { reason: ErrorReason.NoSuchCgroup },
    );
  }
  return clean;
}

/** The pids in a cgroup directory and every cgroup below it. */
export function cgroupPids(dir: string): number[] {
  const pids = new Set<number>();
  const walk = (d: string) => {
    let text = "";
    try {
      text = Deno.readTextFileSync(`${d}/cgroup.procs`);
    } catch (err) {
      // A child cgroup removed while walking is simply empty.
      if (errnoCode(err) === "ENOENT" || errnoCode(err) === "ENODEV") return;
      throw err;
    }
    for (const line of text.split("\n")) {
      if (/^\d+$/.test(line)) pids.add(Number(line));
    }
    try {
      for (const e of Deno.readDirSync(d)) {
        if (e.isDirectory) walk(`${d}/${e.name}`);
      }
    } catch (err) {
      if (errnoCode(err) !== "ENOENT") throw err;
    }
  };
  walk(dir);
  return [...pids].sort((a, b) => a - b);
}

/** A unit name with its type: "apache2" means "apache2.service". */
export function unitName(name: string): string {
  return /\.(service|scope|slice|socket|mount|automount|swap|target|timer|path|device)$/
      .test(name)
    ? name
    : `${name}.service`;
}

/**
 * The cgroup directory of a systemd unit. Where systemd is PID 1 it asks
 * it (`systemctl show -P ControlGroup`); elsewhere (containers, test VMs)
 * it looks for a cgroup named after the unit under the v2 root.
 *
 * @throws MergememError NothingScannable when the unit has no cgroup (not
 *   running, or unknown).
 */
export function unitCgroup(name: string, root = cgroup2Root()): string {
  const unit = unitName(name);
  const fromSystemd = systemdControlGroup(unit);
  if (fromSystemd) return resolveCgroup(fromSystemd, root);
  const found = findCgroupNamed(root, unit, 4);
  if (found) return found;
  throw new MergememError(
    `unit ${unit} has no cgroup (is it running?)`,
    ErrorKind.NothingScannable,
    { reason: ErrorReason.UnitNotRunning, unit },
  );
}

function systemdControlGroup(unit: string): string | undefined {
  let comm = "";
  try {
    comm = Deno.readTextFileSync("/proc/1/comm").trim();
  } catch {
    return undefined;
  }
  if (comm !== "systemd") return undefined;
  try {
    const out = new Deno.Command("systemctl", {
      args: ["show", "-P", "ControlGroup", "--", unit],
      stdout: "piped",
      stderr: "null",
    }).outputSync();
    const cg = new TextDecoder().decode(out.stdout).trim();
    return out.success && cg ? cg : undefined;
  } catch {
    return undefined;
  }
}

function findCgroupNamed(
  dir: string,
  name: string,
  depth: number,
): string | undefined {
  if (depth < 0) return undefined;
  let entries: Deno.DirEntry[];
  try {
    entries = [...Deno.readDirSync(dir)];
  } catch {
    return undefined;
  }
  for (const e of entries) {
    if (e.isDirectory && e.name === name) return `${dir}/${e.name}`;
  }
  for (const e of entries) {
    if (!e.isDirectory) continue;
    const f = findCgroupNamed(`${dir}/${e.name}`, name, depth - 1);
    if (f) return f;
  }
  return undefined;
}
