/**
 * The estimator of a sampled scan (src/dedup/sample.ts): the accountant's
 * sums for known contents, the estimate and its bound, and, by
 * enumerating every outcome of Bernoulli sampling of a few contents, that
 * the estimate is unbiased with variance (N−1)·Σ w², and that the
 * variance estimate (N−1)·N·Σ_sampled w² is unbiased.
 */
import {
  deepStrictEqual as assertEquals,
  ok,
  strictEqual,
} from "node:assert/strict";
import {
  BOUND_Z,
  contentKey,
  errorBound,
  estimate,
  HeavyHitters,
  KeyCounts,
  newSampleSums,
  processIndexes,
  sampleAccountant,
  sliceOf,
} from "../../src/dedup/sample.ts";
import { passesFor, ROW_BYTES } from "../../src/scan/scan.ts";

Deno.test("processIndexes: a new process wherever the pid changes", () => {
  assertEquals([...processIndexes([5, 5, 7, 9, 9, 9])], [0, 0, 1, 2, 2, 2]);
  assertEquals([...processIndexes([])], []);
});

Deno.test("sliceOf: in range, a function of the hash word alone, spread", () => {
  const n = 7;
  const seen = new Uint32Array(n);
  for (let h = 0; h < 70000; h++) {
    const s = sliceOf(h * 2654435761 >>> 0, n);
    ok(s >= 0 && s < n);
    seen[s]++;
  }
  strictEqual(sliceOf(12345, n), sliceOf(12345, n));
  for (const c of seen) ok(c > 9000 && c < 11000, `slice sizes ${seen}`);
  strictEqual(sliceOf(0xdeadbeef, 1), 0);
});

/**
 * Rows of one table: [mapping, page, frame]; the contents are given as
 * lists of row numbers in (frame, row) order.
 */
function account(
  procOf: number[],
  rows: [number, number, number][],
  contents: { rows: number[]; zero?: boolean }[],
) {
  const sums = newSampleSums(Uint32Array.from(procOf));
  const cols = {
    mapping: Uint32Array.from(rows.map((r) => r[0])),
    page: Uint32Array.from(rows.map((r) => r[1])),
    frame: Uint32Array.from(rows.map((r) => r[2])),
  };
  const acc = sampleAccountant(sums);
  for (const c of contents) acc(cols, c.rows, 0, c.rows.length, !!c.zero);
  return sums;
}

Deno.test("sampleAccountant: weights, squares by mapping, process and total", () => {
  // Mappings 0, 1 of process 0; mapping 2 of process 1.
  const procOf = [0, 0, 1];
  const rows: [number, number, number][] = [
    // content A: frames 10 (mapping 0 and 1: shared already), 11 (m 2)
    [0, 0, 10], // 0
    [1, 0, 10], // 1
    [2, 0, 11], // 2
    // content B: frames 20 (m 1), 21 (m 1), 22 (m 2)
    [1, 1, 20], // 3
    [1, 2, 21], // 4
    [2, 1, 22], // 5
    // zero content: frames 30 (m 0), 31 (m 2)
    [0, 5, 30], // 6
    [2, 5, 31], // 7
  ];
  const s = account(procOf, rows, [
    { rows: [0, 1, 2] },
    { rows: [3, 4, 5] },
    { rows: [6, 7], zero: true },
  ]);
  // A: duplicate m0 1, m1 1, m2 1; shared m0 1, m1 1; saveable m2 1
  //    (keeper: frame 10, first page in mapping 0).
  // B: duplicate m1 2, m2 1; saveable m1 1 (frame 21), m2 1 (frame 22).
  assertEquals([...s.sampled.duplicate], [1, 3, 2]);
  assertEquals([...s.sampled.sharedAlready], [1, 1, 0]);
  assertEquals([...s.sampled.saveable], [0, 1, 2]);
  // Squares per mapping: A's and B's weights squared.
  assertEquals([...s.sqMapping.duplicate], [1, 1 + 4, 1 + 1]);
  assertEquals([...s.sqMapping.saveable], [0, 1, 1 + 1]);
  // Per process: A gives p0 duplicate 2, p1 1; B gives p0 2, p1 1.
  assertEquals([...s.sqProcess.duplicate], [4 + 4, 1 + 1]);
  assertEquals([...s.sqProcess.sharedAlready], [4, 0]);
  assertEquals([...s.sqProcess.saveable], [0 + 1, 1 + 1]);
  // In total: A duplicate 3, B 3; shared 2, 0; saveable 1, 2.
  assertEquals([...s.sqTotal.duplicate], [18]);
  assertEquals([...s.sqTotal.sharedAlready], [4]);
  assertEquals([...s.sqTotal.saveable], [5]);
  // The zero content apart, exact: saveable 1 (m2), no duplicates.
  assertEquals([...s.exact.saveable], [0, 0, 1]);
  assertEquals([...s.exact.duplicate], [0, 0, 0]);
});

Deno.test("estimate: exact part + N x sampled, bound z standard errors", () => {
  assertEquals(estimate(5, 10, 0, 1), { estimate: 15, errorBound: 0 });
  assertEquals(estimate(0, 10, 50, 1), { estimate: 10, errorBound: 0 });
  // N = 4, Σ w² = 50: SE = √(3·4·50) = √600 = 24.49…
  assertEquals(estimate(7, 10, 50, 4), {
    estimate: 47,
    errorBound: Math.ceil(BOUND_Z * Math.sqrt(600)),
  });
  strictEqual(estimate(0, 0, 0, 16).errorBound, 0);
});

Deno.test("errorBound: one unseen content more, capped by what the error can be", () => {
  strictEqual(errorBound(50, 1, 10, 100), 0);
  // N = 4: √(3·4·(50 + 1)) = 24.7…
  strictEqual(errorBound(50, 4, 40, 1000), Math.ceil(BOUND_Z * Math.sqrt(612)));
  // Nothing sampled: not 0, but one content's worth…
  strictEqual(
    errorBound(0, 64, 0, 1000),
    Math.ceil(BOUND_Z * Math.sqrt(63 * 64)),
  );
  // …and no more than the mapping's non-zero pages (the error's range).
  strictEqual(errorBound(0, 64, 0, 10), 10);
  // An estimate above every page there: the error is at most the estimate.
  strictEqual(errorBound(1, 64, 64, 10), 64);
});

Deno.test("the estimator is unbiased, with variance (N-1)·Σw² and an unbiased variance estimate", () => {
  // Every outcome of keeping each content with p = 1/N, weighted by its
  // probability.
  const cases: { w: number[]; n: number }[] = [
    { w: [3, 1, 1, 7], n: 2 },
    { w: [2, 2, 2, 2, 2], n: 4 },
    { w: [100, 1, 0, 5, 9, 2], n: 8 },
  ];
  for (const { w, n } of cases) {
    const p = 1 / n;
    const x = w.reduce((a, b) => a + b, 0);
    const sq = w.reduce((a, b) => a + b * b, 0);
    let mean = 0, second = 0, varEst = 0;
    for (let mask = 0; mask < 1 << w.length; mask++) {
      let prob = 1, sampled = 0, sampledSq = 0;
      w.forEach((wc, c) => {
        if (mask & (1 << c)) {
          prob *= p;
          sampled += wc;
          sampledSq += wc * wc;
        } else prob *= 1 - p;
      });
      const est = estimate(0, sampled, sampledSq, n);
      mean += prob * est.estimate;
      second += prob * est.estimate ** 2;
      varEst += prob * (n - 1) * n * sampledSq;
    }
    const close = (a: number, b: number) => Math.abs(a - b) < 1e-9 * (1 + b);
    ok(close(mean, x), `mean ${mean} vs ${x}`);
    ok(close(second - mean * mean, (n - 1) * sq), `variance, ${w} / ${n}`);
    ok(close(varEst, (n - 1) * sq), `variance estimate, ${w} / ${n}`);
  }
});

Deno.test("HeavyHitters: every content above 1/(k+1) of the stream is kept", () => {
  const h = new HeavyHitters(8);
  // Distinct light contents, and two heavy ones (1/8 of the stream each:
  // above 1/9) spread through it.
  let light = 1000;
  for (let i = 0; i < 1600; i++) {
    if (i % 8 === 3) h.add(1e12);
    else if (i % 8 === 5) h.add(2e12);
    else h.add(light++);
  }
  const keys = h.keys();
  strictEqual(keys.get(1e12), 1);
  strictEqual(keys.get(2e12), 1);
  ok(keys.size <= 8);
});

Deno.test("KeyCounts: counts by key and tag, grows, decrements", () => {
  const k = new KeyCounts(16);
  for (let i = 0; i < 1000; i++) k.add(2 ** 52 + i, i % 3, 1 + (i % 2));
  strictEqual(k.size, 1000);
  strictEqual(k.get(2 ** 52 + 7, 1), 2);
  strictEqual(k.get(2 ** 52 + 7, 0), 0);
  strictEqual(k.get(2 ** 52 + 8, 2), 1);
  k.add(2 ** 52 + 8, 2);
  strictEqual(k.get(2 ** 52 + 8, 2), 2);
  k.decrementAll();
  // The 499 entries of count 1 went (entry 8 was raised to 2); the 501
  // others are 1 lower.
  strictEqual(k.size, 501);
  strictEqual(k.get(2 ** 52 + 7, 1), 1);
  strictEqual(k.get(2 ** 52 + 8, 2), 1);
  strictEqual(k.get(2 ** 52 + 6, 0), 0);
  let sum = 0;
  k.forEach((_key, _tag, c) => sum += c);
  strictEqual(sum, 501);
});

Deno.test("contentKey: 53 bits of the hash, equal for equal hashes", () => {
  strictEqual(contentKey(5, 0), 5);
  strictEqual(contentKey(0xffffffff, 0xffffffff), 2 ** 53 - 1);
  strictEqual(contentKey(7, 1 << 11), 0x100000000 + 7);
  ok(Number.isSafeInteger(contentKey(0xdeadbeef, 0xcafebabe)));
});

Deno.test("passesFor: one pass up to the budget, then enough passes", () => {
  const mib = 1024 * 1024;
  strictEqual(passesFor(0, 16 * mib), 1);
  strictEqual(passesFor(16 * mib / ROW_BYTES, 16 * mib), 1);
  strictEqual(passesFor(16 * mib / ROW_BYTES + 1, 16 * mib), 2);
  // 8 GiB of 4 KiB pages within 16 MiB: 2^21 rows of 23 bytes.
  const k = passesFor(2 ** 21, 16 * mib);
  strictEqual(k, 3);
  ok(2 ** 21 / k * ROW_BYTES <= 16 * mib);
});
