/** src/proc/cgroup.ts: the cgroup v2 mount and systemd unit names. */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import { parseCgroup2Mount, unitName } from "../../src/proc/cgroup.ts";

// /proc/self/mountinfo excerpts (proc(5)): mount id, parent id, maj:min,
// root, mount point, options, optional fields, "-", fstype, source, ...
const SYSFS =
  "22 28 0:20 / /sys rw,nosuid,nodev,noexec,relatime shared:7 - sysfs sysfs rw";
const HYBRID = [
  SYSFS,
  "31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755",
  "32 31 0:29 / /sys/fs/cgroup/cpu rw,relatime - cgroup cgroup rw,cpu",
  "35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory",
  "40 31 0:37 / /sys/fs/cgroup/systemd rw,relatime - cgroup cgroup rw,name=systemd",
  "41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw",
].join("\n");

const MOUNTS: [string, string, string | undefined][] = [
  [
    "unified hierarchy (Debian 12)",
    SYSFS + "\n" +
    "30 22 0:26 / /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate,memory_recursiveprot\n",
    "/sys/fs/cgroup",
  ],
  [
    "hybrid: v1 controllers first, v2 under unified",
    HYBRID,
    "/sys/fs/cgroup/unified",
  ],
  [
    "container: root is not /, source is not cgroup2",
    "1203 1201 0:27 /system.slice/docker-4f2a.scope /sys/fs/cgroup ro,nosuid,nodev,noexec,relatime - cgroup2 cgroup rw,nsdelegate",
    "/sys/fs/cgroup",
  ],
  [
    "mount point with an escaped space",
    "45 30 0:40 / /mnt/cg\\040two rw,relatime shared:20 - cgroup2 none rw",
    "/mnt/cg two",
  ],
  [
    "two cgroup2 mounts: the first",
    "30 22 0:26 / /sys/fs/cgroup rw,relatime shared:4 - cgroup2 cgroup2 rw\n" +
    "45 30 0:26 / /mnt/cg rw,relatime shared:4 - cgroup2 cgroup2 rw",
    "/sys/fs/cgroup",
  ],
  [
    "v1 only",
    HYBRID.split("\n").slice(0, -1).join("\n"),
    undefined,
  ],
  ["empty", "", undefined],
];
for (const [what, text, want] of MOUNTS) {
  Deno.test(`parseCgroup2Mount: ${what}`, () => {
    assertEquals(parseCgroup2Mount(text), want);
  });
}

const UNITS: [string, string][] = [
  ["apache2", "apache2.service"],
  ["php8.2-fpm", "php8.2-fpm.service"],
  ["getty@tty1", "getty@tty1.service"],
  ["apache2.service", "apache2.service"],
  ["user-1000.slice", "user-1000.slice"],
  ["session-3.scope", "session-3.scope"],
  ["docker.socket", "docker.socket"],
  ["home.mount", "home.mount"],
  ["dev-sda2.swap", "dev-sda2.swap"],
  ["multi-user.target", "multi-user.target"],
  ["logrotate.timer", "logrotate.timer"],
  ["cups.path", "cups.path"],
  ["proc-sys-fs-binfmt_misc.automount", "proc-sys-fs-binfmt_misc.automount"],
  ["dev-sda1.device", "dev-sda1.device"],
];
for (const [name, want] of UNITS) {
  Deno.test(`unitName(${name}) = ${want}`, () => {
    assertEquals(unitName(name), want);
  });
}
