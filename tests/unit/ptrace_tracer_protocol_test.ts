/**
 * The tracer protocol (src/ptrace/protocol.ts) and the tracer's request
 * loop (serveTracer, src/ptrace/tracer.ts) with a fake marker: requests
 * are forwarded with their VMAs intact, errors come back as the classes
 * the callers sort, a stop ends the request in progress, and the end of
 * main's pipe ends the one in progress and starts no other.
 */
import {
  deepStrictEqual as assertEquals,
  ok as assert,
  throws,
} from "node:assert/strict";
import {
  decodeError,
  encodeError,
  encodeLine,
  parseReply,
  parseRequest,
  ProtocolError,
  readLines,
  type Reply,
  type Request,
} from "../../src/ptrace/protocol.ts";
import {
  OOM_PROTECTION,
  protectFromOom,
  serveTracer,
} from "../../src/ptrace/tracer.ts";
import {
  emptyOutcome,
  type Marker,
  type MarkOutcome,
  ProcessSkipped,
  type VmaRange,
} from "../../src/engine/marker.ts";
import {
  errnoCode,
  ErrorKind,
  ErrorReason,
  MergememError,
  SyscallError,
} from "../../src/errors.ts";
import { classifyMarkError } from "../../src/engine/mark_error.ts";
import { tempDir } from "../helpers/temp.ts";

Deno.test("protocol: a mark request keeps its VMAs' 64-bit addresses and other fields", () => {
  const vmas = [
    { start: 0x7fff_ffff_f000n, end: 0xffff_ffff_ffff_f000n },
    { start: 4096n, end: 8192n, extra: "kept" },
  ];
  const line = encodeLine({
    op: "mark",
    id: 3,
    pid: 42,
    vmas,
    advice: "merge",
  });
  assert(line.endsWith("\n") && !line.slice(0, -1).includes("\n"));
  assertEquals(parseRequest(line.trim()), {
    op: "mark",
    id: 3,
    pid: 42,
    vmas,
    advice: "merge",
  });
});

Deno.test("protocol: malformed requests and replies are ProtocolErrors", () => {
  for (
    const bad of [
      "",
      "not json",
      "[1]",
      '{"op":"mark","pid":1,"vmas":[],"advice":"merge"}', // no id
      '{"op":"mark","id":1,"pid":1,"vmas":[{"start":1,"end":2}],"advice":"merge"}',
      '{"op":"mark","id":1,"pid":1,"vmas":[],"advice":"wipe"}',
      '{"op":"mark-whole","id":1,"pid":1}',
      '{"op":"exec","id":1}',
    ]
  ) throws(() => parseRequest(bad), ProtocolError, bad);
  for (
    const bad of [
      '{"op":"done","id":1,"outcome":{"vmasChanged":1}}',
      '{"op":"failed","id":1}',
      '{"op":"ready","pid":1}',
    ]
  ) throws(() => parseReply(bad), ProtocolError, bad);
});

Deno.test("protocol: an outcome crosses whole, bigints included", () => {
  const outcome = {
    ...emptyOutcome(),
    vmasChanged: 2,
    bytesChanged: 8192,
    holdMs: 0.5,
    note: [{ start: 1n << 60n }],
  } as MarkOutcome;
  const r = parseReply(encodeLine({ op: "done", id: 7, outcome }).trim());
  assertEquals(r, { op: "done", id: 7, outcome });
});

Deno.test("protocol: errors come back as what the marker's callers sort", () => {
  const cases: { err: unknown; check(e: Error): void }[] = [
    {
      err: new ProcessSkipped(12, "seccomp filter"),
      check: (e) =>
        assertEquals(classifyMarkError(e), {
          kind: "skipped",
          reason: "seccomp filter",
        }),
    },
    {
      err: new SyscallError("ptrace", 3, "ESRCH", "tid 12 exited"),
      check: (e) => {
        assert(e instanceof SyscallError);
        assertEquals(e.message, "ptrace: ESRCH (tid 12 exited)");
        assertEquals(classifyMarkError(e), { kind: "exited" });
      },
    },
    {
      err: new Deno.errors.NotFound("open '/proc/12/smaps'"),
      check: (e) => assertEquals(errnoCode(e), "ENOENT"),
    },
    {
      err: new MergememError(
        "whole-process marking needs PR_SET_MEMORY_MERGE",
        ErrorKind.Usage,
        { reason: ErrorReason.NoMemoryMerge },
      ),
      check: (e) => {
        assert(e instanceof MergememError);
        assertEquals(e.kind, ErrorKind.Usage);
        assertEquals(e.reason, ErrorReason.NoMemoryMerge);
      },
    },
    {
      err: new MergememError("interrupted by SIGTERM", ErrorKind.Interrupted),
      check: (e) => assertEquals(classifyMarkError(e), { kind: "interrupted" }),
    },
    {
      err: new Error("ptrace: unexpected stop"),
      check: (e) => assertEquals(e.message, "ptrace: unexpected stop"),
    },
  ];
  for (const c of cases) {
    const r = parseReply(
      encodeLine({ op: "failed", id: 1, error: encodeError(c.err) }).trim(),
    );
    assert(r.op === "failed");
    c.check(decodeError(r.error));
  }
});

Deno.test("readLines: splits on newlines across chunks, keeps a last partial line", async () => {
  const enc = new TextEncoder();
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      for (const s of ['{"a"', ':1}\n{"b":2}\n', "tail"]) {
        c.enqueue(enc.encode(s));
      }
      c.close();
    },
  });
  const got: string[] = [];
  for await (const l of readLines(stream)) got.push(l);
  assertEquals(got, ['{"a":1}', '{"b":2}', "tail"]);
});

/** A pipe of lines the test writes into, as main's requests. */
function linePipe() {
  const queue: (string | null)[] = [];
  let wake: (() => void) | undefined;
  const push = (l: string | null) => {
    queue.push(l);
    wake?.();
  };
  async function* lines(): AsyncGenerator<string> {
    for (;;) {
      while (queue.length === 0) await new Promise<void>((r) => wake = r);
      const l = queue.shift()!;
      if (l === null) return;
      yield l;
    }
  }
  return {
    lines: lines(),
    send: (r: Request) => push(encodeLine(r).trim()),
    end: () => push(null),
  };
}

/**
 * A fake marker whose markProcess "holds" until released or stopped;
 * records what it was asked.
 */
function fakeMarker() {
  const calls: { pid: number; vmas: VmaRange[]; aborted: boolean }[] = [];
  let release: (() => void) | undefined;
  let started: () => void = () => {};
  const marker: Marker = {
    engine: "ptrace",
    async markProcess(pid, vmas, _advice, signal) {
      const call = { pid, vmas, aborted: false };
      calls.push(call);
      started();
      // Like the real marker: the hold in progress finishes; the signal is
      // seen at the next hold boundary (here: at once).
      await new Promise<void>((r) => {
        release = r;
        signal?.addEventListener("abort", () => r(), { once: true });
      });
      call.aborted = signal?.aborted ?? false;
      if (pid === 13) throw new ProcessSkipped(pid, "already traced");
      return { ...emptyOutcome(), vmasChanged: vmas.length };
    },
    close() {},
  };
  return {
    marker,
    calls,
    release: () => release?.(),
    nextStart: () => new Promise<void>((r) => started = r),
  };
}

Deno.test("serveTracer: forwards requests in order, replies with outcomes and errors", async () => {
  const pipe = linePipe();
  const fake = fakeMarker();
  const replies: Reply[] = [];
  const done = serveTracer({
    lines: pipe.lines,
    send: (r) => Promise.resolve(replies.push(r) > 0),
    shutdown: new AbortController().signal,
    warn: () => {},
  }, fake.marker);
  const vmas = [{ start: 1n << 47n, end: (1n << 47n) + 4096n }];
  let s = fake.nextStart();
  pipe.send({ op: "mark", id: 1, pid: 12, vmas, advice: "merge" });
  pipe.send({ op: "mark", id: 2, pid: 13, vmas, advice: "merge" });
  await s;
  s = fake.nextStart();
  fake.release();
  await s;
  fake.release();
  pipe.end();
  await done;
  assertEquals(fake.calls.map((c) => [c.pid, c.vmas, c.aborted]), [
    [12, vmas, false],
    [13, vmas, false],
  ]);
  assertEquals(replies[0], {
    op: "done",
    id: 1,
    outcome: { ...emptyOutcome(), vmasChanged: 1 },
  });
  assert(replies[1].op === "failed");
  assertEquals(replies[1].error, {
    type: "skipped",
    pid: 13,
    reason: "already traced",
  });
});

Deno.test("serveTracer: a stop ends the request in progress at its next boundary", async () => {
  const pipe = linePipe();
  const fake = fakeMarker();
  const replies: Reply[] = [];
  const done = serveTracer({
    lines: pipe.lines,
    send: (r) => Promise.resolve(replies.push(r) > 0),
    shutdown: new AbortController().signal,
    warn: () => {},
  }, fake.marker);
  const s = fake.nextStart();
  pipe.send({ op: "mark", id: 1, pid: 12, vmas: [], advice: "merge" });
  await s;
  pipe.send({ op: "stop", id: 1 });
  while (replies.length === 0) await new Promise((r) => setTimeout(r, 1));
  assertEquals(fake.calls[0].aborted, true);
  assertEquals(replies[0].op, "done");
  pipe.end();
  await done;
});

Deno.test("serveTracer: main's pipe ends: the request in progress stops, queued ones never start", async () => {
  const pipe = linePipe();
  const fake = fakeMarker();
  const done = serveTracer({
    lines: pipe.lines,
    send: () => Promise.resolve(false), // main is gone
    shutdown: new AbortController().signal,
    warn: () => {},
  }, fake.marker);
  const s = fake.nextStart();
  pipe.send({ op: "mark", id: 1, pid: 12, vmas: [], advice: "merge" });
  pipe.send({ op: "mark", id: 2, pid: 14, vmas: [], advice: "merge" });
  await s;
  pipe.end();
  await done;
  assertEquals(fake.calls.map((c) => [c.pid, c.aborted]), [[12, true]]);
});

Deno.test("serveTracer: a shutdown signal ends it like the end of the pipe; queued requests are answered Interrupted", async () => {
  const pipe = linePipe();
  const fake = fakeMarker();
  const stop = new AbortController();
  const replies: Reply[] = [];
  const done = serveTracer({
    lines: pipe.lines,
    send: (r) => Promise.resolve(replies.push(r) > 0),
    shutdown: stop.signal,
    warn: () => {},
  }, fake.marker);
  const s = fake.nextStart();
  pipe.send({ op: "mark", id: 1, pid: 12, vmas: [], advice: "merge" });
  pipe.send({ op: "mark", id: 2, pid: 14, vmas: [], advice: "merge" });
  await s;
  stop.abort("SIGTERM");
  await done;
  assertEquals(fake.calls.map((c) => [c.pid, c.aborted]), [[12, true]]);
  assertEquals(replies.map((r) => r.op), ["done", "failed"]);
  const e = replies[1].op === "failed" && decodeError(replies[1].error);
  assert(e instanceof MergememError && e.kind === ErrorKind.Interrupted);
});

Deno.test("serveTracer: a malformed line is reported and skipped", async () => {
  const pipe = linePipe();
  const fake = fakeMarker();
  const warnings: string[] = [];
  const done = serveTracer({
    lines: pipe.lines,
    send: () => Promise.resolve(true),
    shutdown: new AbortController().signal,
    warn: (m) => warnings.push(m),
  }, fake.marker);
  pipe.send({ op: "exec", id: 1 } as unknown as Request);
  pipe.end();
  await done;
  assertEquals(fake.calls, []);
  assertEquals(warnings.length, 1);
  assert(warnings[0].includes("bad request"), warnings[0]);
});

Deno.test("protectFromOom: 500 below the inherited value, never -1000, unchanged when unwritable", () => {
  const dir = tempDir();
  const file = `${dir}/oom_score_adj`;
  for (
    const [from, to] of [[0, -OOM_PROTECTION], [300, -200], [-800, -999], [
      -1000,
      -1000,
    ]]
  ) {
    Deno.writeTextFileSync(file, `${from}\n`);
    assertEquals(protectFromOom(file), to);
    assertEquals(Number(Deno.readTextFileSync(file)), to);
  }
  assertEquals(protectFromOom(`${dir}/missing`), null);
  Deno.writeTextFileSync(file, "0\n");
  Deno.chmodSync(file, 0o444);
  if (Deno.uid() !== 0) assertEquals(protectFromOom(file), 0);
});
