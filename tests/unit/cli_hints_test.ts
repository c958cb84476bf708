/** src/cli/hints.ts: the hint line the CLI prints after each error. */
import { deepStrictEqual as assertEquals, ok } from "node:assert/strict";
import {
  hintLine,
  journalHintLine,
  SKIPPED_BY_POLICY_NOTE,
} from "../../src/cli/hints.ts";
import type { JournalStatus } from "../../src/status/status.ts";
import {
  type ErrorDetail,
  ErrorKind,
  type ErrorKindValue,
  ErrorReason,
  MergememError,
} from "../../src/errors.ts";
import { OPTIONS as MERGE } from "../../src/cli/merge.ts";
import { OPTIONS as UNMERGE } from "../../src/cli/unmerge.ts";
import { OPTIONS as SCAN } from "../../src/cli/scan.ts";
import { OPTIONS as STATUS } from "../../src/cli/status.ts";
import { SELECTOR_OPTIONS } from "../../src/cli/args.ts";
import { OPTIONS as MAIN } from "../../src/cli/main.ts";

const R = ErrorReason, K = ErrorKind;

/** An error's kind and reason, and the hint line the CLI prints for it. */
const cases: [ErrorKindValue, ErrorDetail | undefined, string | undefined][] = [
  // By reason.
  [
    K.NoModule,
    { reason: R.DeviceDenied },
    "the module gives /dev/mergemem mode 0666 itself (no udev rule): if " +
    "'ls -l /dev/mergemem' shows less, something changed it; else a " +
    "security module (AppArmor, SELinux) or a container's device rules deny it",
  ],
  [
    K.NoModule,
    { reason: R.PtraceUnsupported },
    "load the mergemem module instead (apt-get install mergemem-dkms, or sudo ./install.sh)",
  ],
  [
    K.ModuleMismatch,
    { reason: R.NotMergemem },
    "is another driver using that name? reinstall: apt-get install mergemem-dkms, or sudo ./install.sh",
  ],
  [
    K.ModuleMismatch,
    { reason: R.ModuleTooOld },
    "upgrade the module: apt-get install mergemem-dkms, or sudo ./install.sh",
  ],
  [
    K.Usage,
    { reason: R.NoMemoryMerge },
    "mark the chosen mappings instead (without --whole-process)",
  ],
  [
    K.Usage,
    { reason: R.WholeProcessEngine },
    "pass --engine ptrace with --whole-process, or leave --whole-process out",
  ],
  [
    K.Refused,
    { reason: R.KsmUnmerging },
    "set /sys/kernel/mm/ksm/run to 0 or 1 first",
  ],
  [
    K.Refused,
    { reason: R.CrossDomain },
    "select one domain (--user, --container, --pod, --k8s-namespace), or widen it (--cross-user, --trust-domain) if they trust each other",
  ],
  [
    K.Refused,
    { reason: R.KsmHeld },
    "unmerge the other domain first (mergemem unmerge --pid PIDS), or widen the domain (--cross-user, --trust-domain host) if they trust each other",
  ],
  [
    K.NothingScannable,
    { reason: R.NoSuchContainer },
    "see 'podman ps', 'docker ps' or /var/log/pods for the names there are",
  ],
  [K.Refused, { reason: R.LowMemory }, "free memory first, or pass --force"],
  [
    K.Failed,
    { reason: R.JournalUnwritable },
    "nothing was changed; the journal lets a later run repair a crash",
  ],
  [
    K.Failed,
    { reason: R.NeedsRoot },
    "changing KSM settings or marking memory needs root",
  ],
  [K.AllDenied, { reason: R.FramesHidden }, "run as root"],
  [
    K.NothingScannable,
    { reason: R.NoCgroup2 },
    "--cgroup and --unit need cgroup v2 (mount -t cgroup2 none /sys/fs/cgroup)",
  ],
  [
    K.NothingScannable,
    { reason: R.NoSuchCgroup },
    "see /proc/PID/cgroup or 'systemctl status UNIT' for a process's cgroup",
  ],
  [
    K.NothingScannable,
    { reason: R.UnitNotRunning, unit: "httpd.service" },
    "check with 'systemctl status httpd.service'",
  ],
  [
    K.NothingScannable,
    { reason: R.OwnProcessesOnly },
    "without root only your own processes are scanned: try sudo",
  ],
  [
    K.Usage,
    { reason: R.UnknownCommand, commands: ["scan", "merge"] },
    "commands: scan, merge; see 'mergemem --help'",
  ],
  // By kind alone.
  [K.Usage, undefined, "see 'mergemem --help'"],
  [
    K.AllDenied,
    undefined,
    "run as root (sudo) or as the processes' owner; Yama ptrace_scope or an LSM may also forbid it",
  ],
  [
    K.NoModule,
    undefined,
    "install it (apt-get install mergemem-dkms, or sudo ./install.sh), then sudo modprobe mergemem",
  ],
  [
    K.ModuleMismatch,
    undefined,
    "install matching versions of the module and the tool (apt-get install mergemem-dkms, or sudo ./install.sh)",
  ],
  [
    K.NoKsm,
    undefined,
    "the kernel was built without CONFIG_KSM; mergemem needs it to merge pages",
  ],
  [
    K.LockBusy,
    undefined,
    "another mergemem run is changing ksmd's settings or marking memory; wait for it, or raise --lock-timeout",
  ],
  [K.NothingScannable, undefined, undefined],
  [K.Partial, undefined, undefined],
  [K.Refused, undefined, undefined],
  [K.Failed, undefined, undefined],
  [K.Interrupted, undefined, undefined],
];

for (const [kind, detail, want] of cases) {
  Deno.test(`hint: ${kind}${detail ? ` / ${detail.reason}` : ""}`, () => {
    const err = new MergememError("the message", kind, detail);
    assertEquals(err.reason, detail?.reason);
    assertEquals(
      hintLine(err),
      want === undefined ? undefined : `mergemem: hint: ${want}`,
    );
  });
}

Deno.test("hint: anything else thrown is a bug", () => {
  assertEquals(
    hintLine(new TypeError("x is undefined")),
    "mergemem: hint: this is a bug; rerun with MERGEMEM_DEBUG=1 for details and report it",
  );
});

Deno.test("the cases cover every reason and every kind", () => {
  const reasons = new Set(cases.map(([, d]) => d?.reason));
  for (const r of Object.values(ErrorReason)) ok(reasons.has(r), r);
  const bare = new Set(cases.filter(([, d]) => !d).map(([k]) => k));
  for (const k of Object.values(ErrorKind)) ok(bare.has(k), k);
});

/** The flags a line names (--name), each an option of some command. */
function assertRealFlags(line: string): string[] {
  const known = new Set(
    [MAIN, SELECTOR_OPTIONS, SCAN, MERGE, UNMERGE, STATUS].flatMap((o) =>
      Object.keys(o)
    ),
  );
  const flags = [...line.matchAll(/(?<![\w-])--[a-z][a-z0-9-]*/g)].map((m) =>
    m[0]
  );
  for (const flag of flags) {
    ok(known.has(flag.slice(2)), `${line} names ${flag}`);
  }
  return flags;
}

Deno.test("every flag a hint names is an option of some command", () => {
  for (const [kind, detail] of cases) {
    assertRealFlags(hintLine(new MergememError("m", kind, detail)) ?? "");
  }
});

Deno.test("the note on processes skipped by policy names the widening flags", () => {
  assertEquals(assertRealFlags(SKIPPED_BY_POLICY_NOTE), [
    "--cross-user",
    "--trust-domain",
  ]);
});

Deno.test("the device-denied hint gives the mode the module sets (kmod/main.c) and no udev rule", () => {
  const main = Deno.readTextFileSync(
    new URL("../../kmod/main.c", import.meta.url),
  );
  const misc = /static struct miscdevice \w+ = \{([^}]*)\}/.exec(main);
  ok(misc, "kmod/main.c declares its miscdevice");
  const mode = /\.mode = (0[0-7]+),/.exec(misc[1]);
  ok(mode, "the miscdevice sets its mode");
  const hint = hintLine(
    new MergememError("m", K.NoModule, { reason: R.DeviceDenied }),
  ) ?? "";
  ok(hint.includes(`mode ${mode[1]} itself`), hint);
  // Neither install path installs a udev rule.
  for (const f of ["install.sh", "debian/rules"]) {
    const text = Deno.readTextFileSync(new URL(`../../${f}`, import.meta.url));
    ok(!/udev/.test(text), `${f} mentions udev`);
  }
});

Deno.test("a stale journal's hint follows why status could not restore it", () => {
  const journal = (
    state: JournalStatus["state"],
    stale_reason: JournalStatus["stale_reason"],
  ): JournalStatus => ({
    path: "/run/mergemem/journal.json",
    state,
    owner_pid: 1,
    owner_command: "mergemem merge",
    created: "",
    settings: {},
    restore_mismatch: {},
    stale_reason,
    message: "m",
  });
  assertEquals(journalHintLine(null), undefined);
  assertEquals(journalHintLine(journal("active", null)), undefined);
  assertEquals(journalHintLine(journal("restored", null)), undefined);
  assertEquals(journalHintLine(journal("stale", "lock-held")), undefined);
  assertEquals(
    journalHintLine(journal("stale", "needs-root")),
    "mergemem: hint: run 'sudo mergemem status' to restore them (a merge or unmerge as root does too)",
  );
  assertEquals(
    journalHintLine(journal("stale", "failed")),
    "mergemem: hint: 'mergemem status --json' shows the settings to restore (journal.settings)",
  );
  for (const why of ["needs-root", "failed"] as const) {
    assertRealFlags(journalHintLine(journal("stale", why))!);
  }
});
