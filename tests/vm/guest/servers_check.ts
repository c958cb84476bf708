/**
 * The mergemem side of the real-server tests (t_5*.sh, servers_lib.sh),
 * run in the guest once a server is up, warmed and idle:
 *
 *   $DENO run -A tests/vm/guest/servers_check.ts scan  LABEL SELECTION...
 *   $DENO run -A tests/vm/guest/servers_check.ts merge LABEL SELECTION...
 *   $DENO run -A tests/vm/guest/servers_check.ts both  LABEL SELECTION...
 *
 * SELECTION is what both `mergemem` and the independent counter
 * (count_pages.c) take: `--comm NAME`, `--user NAME`, `--pid PID`.
 *
 * scan: `mergemem scan SELECTION --json` (the default back-end; also the
 * user back-end with MERGEMEM_SERVERS_BOTH_BACKENDS=1) must equal count_pages
 * exactly: pages_scanned, pages_present, pages_zero, pages_duplicate,
 * pages_shared_already and saveable_pages, in total and per process. The
 * figures are only comparable if the processes did not change meanwhile, so
 * the scans are bracketed by two counts that must agree; if they do not
 * (a server's background work touched memory), the round is repeated. A
 * page can also flip to another content and back unseen by those counts,
 * so a live round whose scan disagrees is repeated with the selection
 * stopped (SIGSTOP); a stopped round must agree exactly.
 *
 * merge: `mergemem merge SELECTION --json`, with no other flag, must exit 0
 * and achieve at least 95% of its prediction (achieved_pages /
 * predicted_saveable_pages); an independent count of the selection before,
 * right after must show as many frames freed, and the merged domain's own
 * count must keep >= 95% of its saving through three full scans of a fast
 * khugepaged; every
 * writable file of /sys/kernel/mm/ksm must be as before. Prints `RESULT server=LABEL kernel=... predicted=N
 * achieved=M ...` for the log.
 *
 * Exits 1 with a FAIL line on the first failed check.
 *
 * @module
 */

const repo = new URL("../../../", import.meta.url).pathname;
const deno = Deno.execPath();
const COUNT = `${repo}tests/vm/guest/count_pages`;
const KSM = "/sys/kernel/mm/ksm";
const kernel = Deno.readTextFileSync("/proc/sys/kernel/osrelease").trim();

/** The figures compared, as named by mergemem.scan/1 and count_pages. */
const FIGURES = [
  "pages_scanned",
  "pages_present",
  "pages_zero",
  "pages_duplicate",
  "pages_shared_already",
  "saveable_pages",
] as const;
type Figures = Record<(typeof FIGURES)[number], number> & {
  /** Diagnostics of count_pages (/proc/kpageflags), not compared. */
  pages_thp?: number;
  pages_ksm?: number;
};

/** The part of mergemem.scan/1 that is compared. */
interface ScanJson {
  backend: string;
  totals: Figures & { processes: number; processes_skipped: number };
  processes: { pid: number; totals: Figures }[];
}

interface Count {
  processes:
    ({ pid: number; comm: string; uid: number; gone: boolean } & Figures)[];
  totals: Figures & { processes: number };
}

/** Pids stopped for a still scan round: continued before any exit. */
let stopped: number[] = [];

function check(cond: boolean, what: string): void {
  if (!cond) {
    for (const pid of stopped) Deno.kill(pid, "SIGCONT");
    console.log(`FAIL: ${what}`);
    Deno.exit(1);
  }
  console.log(`ok: ${what}`);
}

function sleep(ms: number) {
  return new Promise((r) => setTimeout(r, ms));
}

async function run(
  cmd: string,
  args: string[],
): Promise<{ code: number; out: string; err: string }> {
  const r = await new Deno.Command(cmd, {
    args,
    stdout: "piped",
    stderr: "piped",
  }).output();
  return {
    code: r.code,
    out: new TextDecoder().decode(r.stdout),
    err: new TextDecoder().decode(r.stderr),
  };
}

async function mergemem(args: string[]) {
  const t0 = performance.now();
  const r = await run(deno, ["run", "-A", `${repo}main.ts`, ...args]);
  const secs = ((performance.now() - t0) / 1000).toFixed(1);
  console.log(`$ mergemem ${args.join(" ")} -> exit ${r.code} (${secs}s)`);
  if (r.err.trim()) console.log(r.err.trimEnd());
  return r;
}

async function count(selection: string[]): Promise<Count> {
  const r = await run(COUNT, selection);
  if (r.code !== 0) {
    console.log(`FAIL: count_pages ${selection.join(" ")}: ${r.err}`);
    Deno.exit(1);
  }
  const c = JSON.parse(r.out) as Count;
  const gone = c.processes.filter((p) => p.gone).map((p) => p.pid);
  check(gone.length === 0, `count_pages read every process (gone: ${gone})`);
  return c;
}

function show(f: Figures): string {
  return FIGURES.map((k) => `${k}=${f[k]}`).join(" ");
}

/** The per-process and total figures, as one comparable string. */
function key(c: Count): string {
  return JSON.stringify([
    c.processes.map((p) => [p.pid, ...FIGURES.map((k) => p[k])]),
    FIGURES.map((k) => c.totals[k]),
  ]);
}

/** Every file of /sys/kernel/mm/ksm: name -> [writable, content]. */
function ksmFiles(): Map<string, [boolean, string]> {
  const m = new Map<string, [boolean, string]>();
  for (
    const e of [...Deno.readDirSync(KSM)].sort((a, b) =>
      a.name < b.name ? -1 : 1
    )
  ) {
    const path = `${KSM}/${e.name}`;
    const writable = ((Deno.statSync(path).mode ?? 0) & 0o200) !== 0;
    m.set(e.name, [writable, Deno.readTextFileSync(path).trim()]);
  }
  return m;
}

async function scan(label: string, selection: string[]) {
  for (let round = 1;; round++) {
    // Live rounds first. A server whose background processes keep
    // rewriting a few pages (PostgreSQL's bgwriter and walwriter wake every
    // 200 ms and flip a page or two between two contents) never stands still
    // for a whole round; from round 3 the selection is stopped (SIGSTOP) for
    // the round, which changes nothing that is counted: scan and count_pages
    // only read /proc. It is continued before the merge.
    const frozen = round >= 3 ? (await count(selection)).processes : [];
    stopped = frozen.map((p) => p.pid);
    for (const p of frozen) Deno.kill(p.pid, "SIGSTOP");
    if (frozen.length) console.log(`round ${round}: selection stopped`);
    try {
      const before = await count(selection);
      const scans: { backend: string; json: ScanJson }[] = [];
      const first = await mergemem(["scan", ...selection, "--json"]);
      check(first.code === 0, `scan exits 0`);
      scans.push({ backend: "default", json: JSON.parse(first.out) });
      // The user back-end too, on request (each scan is a Deno start and a
      // pass over the pages: tens of seconds under TCG).
      if (
        scans[0].json.backend === "kernel" &&
        Deno.env.get("MERGEMEM_SERVERS_BOTH_BACKENDS") === "1"
      ) {
        const u = await mergemem([
          "scan",
          ...selection,
          "--backend",
          "user",
          "--json",
        ]);
        check(u.code === 0, `scan --backend user exits 0`);
        scans.push({ backend: "user", json: JSON.parse(u.out) });
      }
      const after = await count(selection);
      if (key(before) !== key(after)) {
        console.log(
          `round ${round}: the processes changed during the scans, count before: ${
            show(before.totals)
          }; after: ${show(after.totals)}`,
        );
        for (const p of before.processes) {
          const q = after.processes.find((x) => x.pid === p.pid);
          const d = FIGURES.filter((k) => q?.[k] !== p[k]);
          if (d.length) {
            console.log(
              `  pid ${p.pid} (${p.comm}): ${
                d.map((k) => `${k} ${p[k]} -> ${q?.[k]}`).join(", ")
              }`,
            );
          }
        }
        check(
          round < 4,
          "the server's memory stayed still for one round (the last one stopped)",
        );
        await sleep(2000);
        continue;
      }
      console.log(
        `COUNT server=${label} kernel=${kernel} processes=${before.totals.processes} ${
          show(before.totals)
        }`,
      );
      // Every disagreement with the independent count. In a live round a
      // page can flip to another content and back during the scan, unseen
      // by the counts around it (PostgreSQL's background writers do): a
      // disagreement there means "repeat with the selection stopped"; in a
      // stopped round it is a failure.
      const problems: string[] = [];
      const expect = (cond: boolean, what: string) => {
        if (cond) console.log(`ok: ${what}`);
        else problems.push(what);
      };
      for (const { json } of scans) {
        const b = json.backend;
        console.log(
          `SCAN server=${label} kernel=${kernel} backend=${b} processes=${json.totals.processes} ${
            show(json.totals)
          }`,
        );
        expect(
          json.totals.processes_skipped === 0,
          `${b}: no process skipped (${json.totals.processes_skipped})`,
        );
        const pids = json.processes.map((p: { pid: number }) => p.pid).join(
          ",",
        );
        expect(
          pids === before.processes.map((p) => p.pid).join(","),
          `${b}: the same ${before.totals.processes} processes (${pids})`,
        );
        for (const k of FIGURES) {
          expect(
            json.totals[k] === before.totals[k],
            `${b}: total ${k} ${json.totals[k]} == independent ${
              before.totals[k]
            }`,
          );
        }
        const bad = json.processes.flatMap((
          p: { pid: number; totals: Figures },
          i: number,
        ) =>
          FIGURES.filter((k) => p.totals[k] !== before.processes[i]?.[k])
            .map(
              (k) =>
                `pid ${p.pid} ${k} ${p.totals[k]} != ${
                  before.processes[i]?.[k]
                }`,
            )
        );
        expect(
          bad.length === 0,
          `${b}: every process's figures equal the independent count${
            bad.length ? ": " + bad.slice(0, 8).join("; ") : ""
          }`,
        );
      }
      if (problems.length > 0 && frozen.length === 0) {
        console.log(
          `round ${round}: live, the scan disagrees with the counts around it (${
            problems[0]
          }): repeating with the selection stopped`,
        );
        round = Math.max(round, 2);
        continue;
      }
      for (const what of problems) check(false, what);
      return;
    } finally {
      for (const p of frozen) Deno.kill(p.pid, "SIGCONT");
      stopped = [];
    }
  }
}

/** count_pages of the selection's processes of each uid, alone. */
async function countByUid(c: Count): Promise<Map<number, Figures>> {
  const m = new Map<number, Figures>();
  for (const uid of new Set(c.processes.map((p) => p.uid))) {
    const pids = c.processes.filter((p) => p.uid === uid).flatMap((p) => [
      "--pid",
      String(p.pid),
    ]);
    m.set(uid, (await count(pids)).totals);
  }
  return m;
}

async function merge(label: string, selection: string[]) {
  const before = await count(selection);
  const uids0 = await countByUid(before);
  const ksm0 = ksmFiles();
  const r = await mergemem(["merge", ...selection, "--json"]);
  const ksm1 = ksmFiles();
  if (r.code === 6 && Deno.env.get("MERGEMEM_KO") === "") {
    // No module built for this kernel, and no other engine could mark.
    console.log("SKIP: merge needs the module, not built for this kernel");
    Deno.exit(77);
  }
  check(r.code === 0, `merge ${selection.join(" ")} exits 0 (got ${r.code})`);
  const m = JSON.parse(r.out);
  const changed: string[] = [];
  for (const [name, [writable, v0]] of ksm0) {
    const v1 = ksm1.get(name)?.[1];
    if (writable && v1 !== v0) changed.push(`${name}: ${v0} -> ${v1}`);
  }
  console.log(
    `ksm settings before/after: ${
      [...ksm0].filter(([, [w]]) => w).map(([n, [, v]]) => `${n}=${v}`).join(
        " ",
      )
    }`,
  );
  console.log(
    `ksm counters before -> after: ${
      [...ksm0].filter(([, [w]]) => !w).map(([n, [, v]]) =>
        `${n}=${v}->${ksm1.get(n)?.[1]}`
      ).join(" ")
    }`,
  );
  check(
    changed.length === 0,
    `every writable file of ${KSM} as before${
      changed.length ? ": " + changed.join(", ") : ""
    }`,
  );
  const after = await count(selection);
  const uids1 = await countByUid(after);
  for (const [uid, f0] of uids0) {
    const f1 = uids1.get(uid)!;
    console.log(
      `count of uid ${uid} alone: saveable_pages ${f0.saveable_pages} -> ${f1.saveable_pages}, ` +
        `pages_shared_already ${f0.pages_shared_already} -> ${f1.pages_shared_already}, ` +
        `pages_present ${f0.pages_present} -> ${f1.pages_present}, ` +
        `pages_thp ${f0.pages_thp} -> ${f1.pages_thp}, pages_ksm ${f0.pages_ksm} -> ${f1.pages_ksm}`,
    );
  }
  // The merged processes' marked VMAs alone: what KSM left unmerged there.
  const merged = m.processes.filter((p: { vmas_marked: number }) =>
    p.vmas_marked > 0
  ).map((p: { pid: number }) => p.pid);
  const markedSelection = [
    "--mergeable-only",
    ...merged.flatMap((p: number) => ["--pid", String(p)]),
  ];
  let leftAfter: Figures | undefined;
  if (merged.length) {
    const left = await count(markedSelection);
    leftAfter = left.totals;
    console.log(
      `left in the marked VMAs: ${
        show(left.totals)
      } pages_thp=${left.totals.pages_thp} pages_ksm=${left.totals.pages_ksm}`,
    );
  }
  for (const p of after.processes) {
    const b = before.processes.find((x) => x.pid === p.pid);
    const mp = m.processes.find((x: { pid: number }) => x.pid === p.pid);
    console.log(
      `  pid ${p.pid} uid ${p.uid}: saveable ${b?.saveable_pages} -> ${p.saveable_pages}, ` +
        `shared_already ${b?.pages_shared_already} -> ${p.pages_shared_already}, ` +
        `predicted ${mp?.predicted_saveable_pages ?? "-"}, merging ${
          mp?.merging_pages_before ?? "-"
        } -> ${mp?.merging_pages_after ?? "-"}`,
    );
  }
  const predicted = m.predicted_saveable_pages as number;
  const achieved = m.achieved_pages as number;
  // What the merge freed, counted independently: the selection's saveable
  // pages (distinct frames - distinct contents) before and after, whoever
  // freed them. Over the whole selection, not the merged uid alone: a frame
  // that a skipped process (the root parent) still maps is not freed.
  const domain = new Set<number>(
    m.processes.map((p: { uid: number }) => p.uid),
  );
  const uidFreed = [...domain].reduce(
    (s, u) =>
      s + (uids0.get(u)?.saveable_pages ?? 0) -
      (uids1.get(u)?.saveable_pages ?? 0),
    0,
  );
  const freed = before.totals.saveable_pages - after.totals.saveable_pages;
  const pct = (x: number) => (100 * x / predicted).toFixed(1);
  console.log(
    `RESULT server=${label} kernel=${kernel} predicted=${predicted} achieved=${achieved} ` +
      `(${pct(achieved)}%) independent_freed=${freed} (${pct(freed)}%) ` +
      `uids=${[...domain].join(",")} uid_alone_freed=${uidFreed} ` +
      `saveable_before=${before.totals.saveable_pages} saveable_after=${after.totals.saveable_pages} ` +
      `ksmd_end=${m.ksmd_end} seconds=${
        m.seconds?.toFixed?.(1)
      } scans=${m.ksmd_full_scans}`,
  );
  const marked =
    m.processes.filter((p: { vmas_marked: number }) => p.vmas_marked > 0)
      .length;
  console.log(
    `merge: ${m.processes.length} processes, ${marked} with VMAs marked; skipped: ${
      JSON.stringify(m.skipped ?? [])
    }; warnings: ${JSON.stringify(m.warnings ?? [])}`,
  );
  // The saving must last: khugepaged (THP=always in Debian's kernels)
  // would collapse the ranges KSM merged back into private huge pages,
  // copying the merged pages out again, which merge's MADV_NOHUGEPAGE
  // prevents (README "Huge pages"). Let a fast khugepaged pass over
  // everything three times, then count the marked VMAs again: what KSM left
  // unmerged there (count_pages --mergeable-only) must not have grown by
  // more than 5% of the prediction. Counts beyond the marked VMAs are
  // printed, not checked: khugepaged also collapses memory no merge
  // touched, the root parent's (shared with its workers since the fork) and
  // a worker's unchosen sparse heap, filling its empty entries with
  // zero-filled frames (measured in an apache2 worker on 6.12: 408 kB of
  // anonymous memory became 2048 kB), which move those counts whatever the
  // merge did.
  const scans = await khugepagedPasses(3);
  const leftLater = merged.length
    ? (await count(markedSelection)).totals
    : undefined;
  const later = await count(selection);
  const uids2 = await countByUid(later);
  const domainFreed = (after: Map<number, Figures>) =>
    [...domain].reduce(
      (s, u) =>
        s + (uids0.get(u)?.saveable_pages ?? 0) -
        (after.get(u)?.saveable_pages ?? 0),
      0,
    );
  const domainLater = domainFreed(uids2);
  const freedLater = before.totals.saveable_pages -
    later.totals.saveable_pages;
  console.log(
    `LATER server=${label} kernel=${kernel} after ${scans} full khugepaged scans: uid_alone_freed=${domainLater} (${
      pct(domainLater)
    }%) independent_freed=${freedLater} (${
      pct(freedLater)
    }%) pages_thp=${later.totals.pages_thp}`,
  );
  check(predicted >= 100, `a real prediction (${predicted} pages)`);
  check(
    achieved >= 0.95 * predicted,
    `achieved ${achieved} >= 95% of predicted ${predicted}`,
  );
  check(
    freed >= 0.95 * predicted,
    `frames freed in the selection, counted independently, ${freed} >= 95% of predicted ${predicted}`,
  );
  // achieved_pages counts the chosen VMAs' frames and, beyond them, the
  // frames of huge pages the merge split (achieved_outside_chosen_pages):
  // it must agree with what the independent count saw freed in the whole
  // selection (issue: fork-shared huge pages counted by their own PFNs).
  console.log(
    `achieved_outside_chosen_pages=${m.achieved_outside_chosen_pages}`,
  );
  check(
    Math.abs(achieved - freed) <= 0.05 * Math.max(freed, achieved),
    `achieved ${achieved} within 5% of the frames the independent count saw freed in the selection (${freed})`,
  );
  const regained = (leftLater?.saveable_pages ?? 0) -
    (leftAfter?.saveable_pages ?? 0);
  console.log(
    `LATER server=${label} kernel=${kernel} marked VMAs: unmerged saveable ${leftAfter?.saveable_pages} -> ${leftLater?.saveable_pages}`,
  );
  check(
    regained <= 0.05 * predicted,
    `after khugepaged's passes the marked VMAs hold ${regained} more saveable pages than right after the merge: <= 5% of predicted ${predicted}, so >= 95% of it is still freed`,
  );
}

const KHUGEPAGED = "/sys/kernel/mm/transparent_hugepage/khugepaged";

/**
 * Runs khugepaged fast (100 ms sleeps, 4096 pages a pass) until it has
 * made `n` more full scans of every process it tracks, then restores its
 * settings; returns the scans made. Bounded against a hang only: the test
 * waits for khugepaged's progress, however slow the machine.
 */
async function khugepagedPasses(n: number): Promise<number> {
  const knobs = [
    "scan_sleep_millisecs",
    "alloc_sleep_millisecs",
    "pages_to_scan",
  ];
  const saved = knobs.map((k) =>
    Deno.readTextFileSync(`${KHUGEPAGED}/${k}`).trim()
  );
  const full = () =>
    Number(Deno.readTextFileSync(`${KHUGEPAGED}/full_scans`).trim());
  const from = full();
  try {
    Deno.writeTextFileSync(`${KHUGEPAGED}/scan_sleep_millisecs`, "100");
    Deno.writeTextFileSync(`${KHUGEPAGED}/alloc_sleep_millisecs`, "100");
    Deno.writeTextFileSync(`${KHUGEPAGED}/pages_to_scan`, "4096");
    const end = Date.now() + 900_000;
    while (full() < from + n && Date.now() < end) await sleep(500);
  } finally {
    knobs.forEach((k, i) =>
      Deno.writeTextFileSync(`${KHUGEPAGED}/${k}`, saved[i])
    );
  }
  check(
    full() >= from + n,
    `khugepaged made ${n} full scans (${full() - from})`,
  );
  return full() - from;
}

/**
 * Waits until two counts of the selection 2 s apart agree (at most `tries`
 * times): right after the test's sessions the server is still settling
 * (PostgreSQL backends fault in and free pages for a few seconds: 146
 * pages appeared during one merge on 7.2, and the independent count then
 * charged them to the merge). The scan rounds of "both" wait the same way.
 * A server that never stands still is merged anyway, after saying so.
 */
async function settle(selection: string[], tries = 10): Promise<void> {
  let last = key(await count(selection));
  for (let i = 1; i <= tries; i++) {
    await sleep(2000);
    const now = key(await count(selection));
    if (now === last) {
      console.log(`settled: two counts 2 s apart agree (after ${i})`);
      return;
    }
    last = now;
  }
  console.log(`not settled after ${tries} tries: merging a live server`);
}

const [cmd, label, ...selection] = Deno.args;
if (
  !label || selection.length === 0 || !["scan", "merge", "both"].includes(cmd)
) {
  console.error("usage: servers_check.ts scan|merge|both LABEL SELECTION...");
  Deno.exit(2);
}
if (cmd !== "merge") await scan(label, selection);
if (cmd === "merge") await settle(selection);
if (cmd !== "scan") await merge(label, selection);
