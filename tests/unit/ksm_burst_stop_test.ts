/**
 * The burst's stop rule (burstStep in src/ksm/burst.ts) as a table: which
 * sample ends a burst as "target", "gone", "stalled" or "timeout", which
 * one counts as a rise, and the order in which the endings win over one
 * another. The burst's loop around it (sampling, sysfs, restore) is tested
 * in ksm_burst_rule_test.ts.
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import {
  type BurstStep,
  burstStep,
  STALL_SCANS,
  type StopRule,
  type StopSample,
  type StopState,
} from "../../src/ksm/burst.ts";

const RULE: StopRule = { target: 100, stallScans: STALL_SCANS, deadline: 1000 };
const FRESH: StopState = { best: Number.NEGATIVE_INFINITY, bestScans: 0 };
const AT_40: StopState = { best: 40, bestScans: 10 };

const s = (progress: number, scans: number, anyLeft = true): StopSample => ({
  progress,
  scans,
  anyLeft,
});

const cases: {
  name: string;
  rule?: StopRule;
  state: StopState;
  now?: number;
  sample?: StopSample;
  want: BurstStep;
}[] = [
  // No sample: only the deadline can end the burst.
  {
    name: "no sample, before the deadline",
    state: AT_40,
    want: { rise: false },
  },
  {
    name: "no sample, at the deadline",
    state: AT_40,
    now: 1000,
    want: { end: "timeout" },
  },
  {
    name: "no sample, past the deadline",
    state: AT_40,
    now: 5000,
    want: { end: "timeout" },
  },
  // The target.
  {
    name: "target reached exactly",
    state: AT_40,
    sample: s(100, 11),
    want: { end: "target" },
  },
  {
    name: "target exceeded",
    state: AT_40,
    sample: s(250, 11),
    want: { end: "target" },
  },
  {
    name: "target 0 and progress 0 (unmerge's refresh)",
    rule: { ...RULE, target: 0 },
    state: FRESH,
    sample: s(0, 0),
    want: { end: "target" },
  },
  {
    name: "just below the target: a rise",
    state: AT_40,
    sample: s(99, 11),
    want: { rise: true },
  },
  {
    name: "no target: a high progress is only a rise",
    rule: { ...RULE, target: undefined },
    state: AT_40,
    sample: s(1e9, 11),
    want: { rise: true },
  },
  // Target wins over gone, stall and timeout.
  {
    name: "target wins over gone",
    state: AT_40,
    sample: s(100, 11, false),
    want: { end: "target" },
  },
  {
    name: "target wins over a stall count",
    state: { best: 100, bestScans: 0 },
    sample: s(100, 50),
    want: { end: "target" },
  },
  {
    name: "target wins over the deadline",
    state: AT_40,
    now: 2000,
    sample: s(100, 11),
    want: { end: "target" },
  },
  // Gone.
  {
    name: "nothing left: gone",
    state: AT_40,
    sample: s(41, 11, false),
    want: { end: "gone" },
  },
  {
    name: "gone wins over stalled",
    state: AT_40,
    sample: s(40, 99, false),
    want: { end: "gone" },
  },
  {
    name: "gone wins over the deadline",
    state: AT_40,
    now: 2000,
    sample: s(40, 11, false),
    want: { end: "gone" },
  },
  // Rises and stalls.
  {
    name: "first sample is a rise",
    state: FRESH,
    sample: s(0, 0),
    want: { rise: true },
  },
  {
    name: "first sample rises even at -1",
    state: FRESH,
    sample: s(-1, 7),
    want: { rise: true },
  },
  {
    name: "a rise however many scans passed",
    state: AT_40,
    sample: s(41, 10 + 100),
    want: { rise: true },
  },
  {
    name: "no rise, fewer than STALL_SCANS scans",
    state: AT_40,
    sample: s(40, 10 + STALL_SCANS - 1),
    want: { rise: false },
  },
  {
    name: "no rise, exactly STALL_SCANS scans: stalled",
    state: AT_40,
    sample: s(40, 10 + STALL_SCANS),
    want: { end: "stalled" },
  },
  {
    name: "a fall counts as no rise: stalled",
    state: AT_40,
    sample: s(12, 10 + STALL_SCANS),
    want: { end: "stalled" },
  },
  {
    name: "smart scan on: 20 scans needed",
    rule: { ...RULE, stallScans: 20 },
    state: AT_40,
    sample: s(40, 29),
    want: { rise: false },
  },
  {
    name: "smart scan on: stalled at 20",
    rule: { ...RULE, stallScans: 20 },
    state: AT_40,
    sample: s(40, 30),
    want: { end: "stalled" },
  },
  {
    name: "stalled wins over the deadline",
    state: AT_40,
    now: 2000,
    sample: s(40, 99),
    want: { end: "stalled" },
  },
  // The deadline after a sample.
  {
    name: "a rise at the deadline still times out",
    state: AT_40,
    now: 1000,
    sample: s(41, 11),
    want: { end: "timeout" },
  },
  {
    name: "no rise, no stall, past the deadline",
    state: AT_40,
    now: 1001,
    sample: s(40, 11),
    want: { end: "timeout" },
  },
];

for (const c of cases) {
  Deno.test(`burstStep: ${c.name}`, () => {
    assertEquals(
      burstStep(c.rule ?? RULE, c.state, c.now ?? 0, c.sample),
      c.want,
    );
  });
}

Deno.test("burstStep is pure: same inputs, same answer; inputs untouched", () => {
  const rule = { ...RULE };
  const state = { ...AT_40 };
  const sample = s(40, 10 + STALL_SCANS);
  const a = burstStep(rule, state, 5, sample);
  const b = burstStep(rule, state, 5, sample);
  assertEquals(a, b);
  assertEquals(rule, RULE);
  assertEquals(state, AT_40);
  assertEquals(sample, s(40, 10 + STALL_SCANS));
});

Deno.test("burstStep over a run of samples: rises, then stalls after STALL_SCANS", () => {
  // The loop's use: a rise records (progress, full_scans).
  let state: StopState = { best: Number.NEGATIVE_INFINITY, bestScans: 0 };
  const progress = [0, 5, 9, 9, 9, 9, 9];
  const scans = [0, 1, 2, 3, 4, 5, 6];
  const ends: (string | undefined)[] = [];
  for (let i = 0; i < progress.length; i++) {
    const step = burstStep(RULE, state, 0, s(progress[i], scans[i]));
    ends.push(step.end);
    if (step.end) break;
    if (step.rise) state = { best: progress[i], bestScans: scans[i] };
  }
  // The last rise at scan 2; stalled once scan 2 + STALL_SCANS is seen.
  const expected: (string | undefined)[] = [];
  for (let i = 0; i < 2 + STALL_SCANS; i++) expected.push(undefined);
  expected.push("stalled");
  assertEquals(ends, expected);
});
