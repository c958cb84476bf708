/** src/proc/info.ts: the fields of /proc/PID/stat and /proc/PID/status. */
import { deepStrictEqual as assertEquals, throws } from "node:assert/strict";
import {
  isKernelThread,
  parseStat,
  parseStatusUids,
  type ProcInfo,
} from "../../src/proc/info.ts";

type Stat = ReturnType<typeof parseStat>;

// Lines as the kernel prints them (fs/proc/array.c: "%d (%s) %c" then the
// rest); the comm is whatever the process set, up to 15 bytes.
const STATS: [string, string, Stat][] = [
  [
    "plain, with the final newline",
    "22534 (cat) R 22529 22529 21041 0 -1 4194304 101 0 0 0 0 0 0 0 20 0 1 0 1443264 3133440 390\n",
    {
      pid: 22534,
      comm: "cat",
      state: "R",
      flags: 4194304,
      startTime: "1443264",
    },
  ],
  [
    "comm containing ') ' and a space",
    "1234 (a) b) S 1 1234 1234 0 -1 4194368 52 0 0 0 0 0 0 0 20 0 1 0 5000",
    {
      pid: 1234,
      comm: "a) b",
      state: "S",
      flags: 4194368,
      startTime: "5000",
    },
  ],
  [
    "comm that looks like more fields",
    "77 (x) 9 ) S 1 77 77 0 -1 64 0 0 0 0 0 0 0 0 20 0 1 0 6000",
    { pid: 77, comm: "x) 9 ", state: "S", flags: 64, startTime: "6000" },
  ],
  [
    "comm in parentheses (systemd's sd-pam)",
    "1580 ((sd-pam)) S 1579 1579 1579 0 -1 1077936448 41 0 0 0 0 0 0 0 20 0 1 0 1810",
    {
      pid: 1580,
      comm: "(sd-pam)",
      state: "S",
      flags: 1077936448,
      startTime: "1810",
    },
  ],
  [
    "kernel thread",
    "2 (kthreadd) S 0 0 0 0 -1 2129984 0 0 0 0 0 0 0 0 20 0 1 0 8 0 0",
    {
      pid: 2,
      comm: "kthreadd",
      state: "S",
      flags: 2129984,
      startTime: "8",
    },
  ],
  [
    "zombie",
    "4321 (php-fpm8.2) Z 4300 4300 4300 0 -1 4227148 803 0 0 0 1 0 0 0 20 0 1 0 9100",
    {
      pid: 4321,
      comm: "php-fpm8.2",
      state: "Z",
      flags: 4227148,
      startTime: "9100",
    },
  ],
];
for (const [what, line, want] of STATS) {
  Deno.test(`parseStat: ${what}`, () => {
    assertEquals(parseStat(line), want);
  });
}

Deno.test("parseStat counts the start time (field 22) from the last ')'", () => {
  const rest = Array.from({ length: 50 }, (_, i) => String(i + 3));
  // field 3 is "3", ..., field 22 is "22"
  const at = (line: string) => parseStat(line).startTime;
  assertEquals(at(`42 (a) b) c) ${rest.join(" ")}\n`), "22");
  assertEquals(at(`42 (sh) ${rest.join(" ")}`), "22");
  // A line cut short has none.
  assertEquals(at("42 (sh) R 1 2"), undefined);
});

for (const bad of ["", "1234 cat R 1 1 1 0 -1 64", "1234 )cat( R 1 1"]) {
  Deno.test(`parseStat rejects ${JSON.stringify(bad)}`, () => {
    throws(() => parseStat(bad), /malformed stat line/);
  });
}

Deno.test("isKernelThread reads PF_KTHREAD from the stat flags", () => {
  const proc = (line: string): ProcInfo => ({
    ...parseStat(line),
    uid: 0,
    euid: 0,
    exe: null,
  });
  assertEquals(isKernelThread(proc(STATS[4][1])), true);
  // A user process that has no readable exe is still not a kernel thread.
  assertEquals(isKernelThread(proc(STATS[0][1])), false);
});

// /proc/PID/status excerpts: "Uid:" is real, effective, saved, fs.
const STATUSES: [string, string, { uid: number; euid: number }][] = [
  [
    "www-data worker",
    "Name:\tapache2\nUmask:\t0022\nState:\tS (sleeping)\nTgid:\t5101\n" +
    "Pid:\t5101\nPPid:\t5100\nTracerPid:\t0\nUid:\t33\t33\t33\t33\n" +
    "Gid:\t33\t33\t33\t33\n",
    { uid: 33, euid: 33 },
  ],
  [
    "setuid program (real 1000, effective root)",
    "Name:\tsudo\nState:\tS (sleeping)\nPid:\t5000\nPPid:\t4999\n" +
    "Gid:\t1000\t1000\t1000\t1000\nUid:\t1000\t0\t0\t0\n",
    { uid: 1000, euid: 0 },
  ],
];
for (const [what, text, want] of STATUSES) {
  Deno.test(`parseStatusUids: ${what}`, () => {
    assertEquals(parseStatusUids(text), want);
  });
}

Deno.test("parseStatusUids rejects status text without a Uid line", () => {
  throws(
    () => parseStatusUids("Name:\tcat\nGid:\t0\t0\t0\t0\n"),
    /no Uid line/,
  );
});
