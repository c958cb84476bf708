/**
 * The ptrace tracer process: runs the injecting marker (marker.ts) on
 * behalf of mergemem's main process, so that a SIGKILL of main can never
 * strike in the middle of an injection.
 *
 * Why a process of its own. While a thread's registers are swapped for
 * an injected call, the tracer's death leaves it running with them (the
 * kernel detaches a dead tracer's tracees as they stand; a held read()
 * returns madvise's 0). mergemem's main process is what operators,
 * timeouts and the OOM killer kill; the tracer is a separate process that
 * outlives it:
 * - it leaves main's session and process group (setsid), so that a
 *   signal to main's group (`timeout -s KILL`, a terminal's Ctrl-C or
 *   hang-up) does not reach it;
 * - it lowers its oom_score_adj by 500 below main's (see
 *   {@link protectFromOom});
 * - it catches SIGTERM, SIGINT and SIGHUP for its whole life: a signal
 *   sent to it directly (systemd stopping a unit signals every process of
 *   its cgroup) ends it cleanly instead of killing it in a hold;
 * - when its stdin reaches end of file (main exited or died), it lets the
 *   hold it is in finish (a hold runs synchronously, so end of file is
 *   only seen between holds), starts no further one, detaches from
 *   everything and exits.
 *
 * Only SIGKILL of the tracer itself (a cgroup kill, the OOM killer
 * choosing it, `kill -9` of its pid) still leaves a target with injected
 * registers; the kernel then detaches it as it did when the injection ran
 * in main (bench/README.md, "SIGKILL during injection").
 *
 * The process names itself `mergemem-ptrace` (ps, /proc/PID/comm).
 * Started by tracer_client.ts as the hidden subcommand
 * {@link TRACER_SUBCOMMAND} of mergemem (main.ts) or through
 * tracer_main.ts.
 *
 * @module
 */
import { messageOf } from "../errors.ts";
import { ErrorKind, MergememError } from "../errors.ts";
import type { Marker, MarkOutcome } from "../engine/marker.ts";
import { setsid } from "../ffi/libc.ts";
import { createPtraceMarker } from "./marker.ts";
import {
  encodeError,
  encodeLine,
  parseRequest,
  PROTOCOL,
  readLines,
  type Reply,
  type Request,
  TRACER_SUBCOMMAND,
} from "./protocol.ts";
import { setOwnName } from "./sys.ts";

/** The tracer's process name. */
export const TRACER_NAME = "mergemem-ptrace";

/**
 * How much lower than main's the tracer sets its oom_score_adj. The OOM
 * killer takes the process with the highest rss + swap + page tables
 * plus oom_score_adj thousandths of the memory; 500 makes the tracer
 * (a Deno runtime of some 40 MiB, smaller than main, which holds the
 * scan) the last choice after main and after ordinary processes, unless
 * it used more than half the memory. Not -1000: that would exempt it
 * altogether, even if it ever hung.
 */
export const OOM_PROTECTION = 500;

/** Signals that end the tracer cleanly (see the module doc). */
const SHUTDOWN_SIGNALS: Deno.Signal[] = ["SIGTERM", "SIGINT", "SIGHUP"];

/**
 * Lowers this process's oom_score_adj by {@link OOM_PROTECTION} below
 * the value inherited from main, to -999 at most (never -1000: immune).
 * Lowering needs CAP_SYS_RESOURCE; without it the value stays as it is.
 * Returns the value now in force, null when it cannot be read.
 */
export function protectFromOom(
  path = "/proc/self/oom_score_adj",
): number | null {
  let current: number;
  try {
    current = Number(Deno.readTextFileSync(path).trim());
  } catch {
    return null;
  }
  if (!Number.isInteger(current)) return null;
  const wanted = Math.max(-999, current - OOM_PROTECTION);
  if (wanted >= current) return current;
  try {
    Deno.writeTextFileSync(path, String(wanted));
    return wanted;
  } catch {
    // No CAP_SYS_RESOURCE: the tracer is still apart from main, only not
    // preferred by the OOM killer.
    return current;
  }
}

/**
 * Takes the tracer out of main's reach: a session of its own, a lower
 * OOM score, its own name. Each step is best effort: the tracer is still
 * worth having without any of them.
 */
export function leaveMainSession(): {
  session: boolean;
  oomScoreAdj: number | null;
} {
  let session = false;
  try {
    setsid();
    session = true;
  } catch {
    // EPERM: already a process group leader (not as mergemem starts it).
  }
  setOwnName(TRACER_NAME);
  return { session, oomScoreAdj: protectFromOom() };
}

/** The tracer's connection to main, as {@link serveTracer} uses it. */
export interface TracerIo {
  /** Request lines from main; ends when main closes the pipe or dies. */
  lines: AsyncIterable<string>;
  /** Writes a reply; false once main can no longer read it. */
  send(reply: Reply): Promise<boolean>;
  /** Aborted by a shutdown signal sent to the tracer itself. */
  shutdown: AbortSignal;
  /** Reports a malformed request (a bug), one line. */
  warn(message: string): void;
}

/**
 * Serves main's requests with `marker`, one at a time, until main's pipe
 * ends or `io.shutdown` fires; then stops the request in progress at its
 * next hold boundary, starts no other, and returns once it is over. The
 * caller closes the marker (which detaches what is left) and exits.
 */
export async function serveTracer(io: TracerIo, marker: Marker): Promise<void> {
  /** The stop switch of every request not yet answered, by id. */
  const open = new Map<number, AbortController>();
  let ended = false;
  let queue: Promise<void> = Promise.resolve();
  const end = () => {
    ended = true;
    for (const c of open.values()) c.abort();
  };

  const handle = async (req: Request & { op: "mark" | "mark-whole" }) => {
    const stop = open.get(req.id)!;
    let reply: Reply;
    if (ended) {
      reply = failed(req.id, interrupted("the ptrace tracer is stopping"));
    } else {
      try {
        reply = {
          op: "done",
          id: req.id,
          outcome: await mark(marker, req, stop.signal),
        };
      } catch (err) {
        reply = failed(req.id, err);
      }
    }
    open.delete(req.id);
    if (!await io.send(reply)) end();
  };

  const reading = (async () => {
    try {
      for await (const line of io.lines) {
        if (ended) break;
        if (line.trim() === "") continue;
        let req: Request;
        try {
          req = parseRequest(line);
        } catch (err) {
          io.warn(messageOf(err));
          continue;
        }
        if (req.op === "stop") {
          open.get(req.id)?.abort();
          continue;
        }
        open.set(req.id, new AbortController());
        const r = req;
        queue = queue.then(() => handle(r));
      }
    } catch {
      // An unreadable pipe means the same as its end: main is gone.
    }
  })();
  const shutdown = new Promise<void>((resolve) => {
    if (io.shutdown.aborted) resolve();
    io.shutdown.addEventListener("abort", () => resolve(), { once: true });
  });
  await Promise.race([reading, shutdown]);
  end();
  // No request is queued after `ended`: this is the last one.
  await queue;
}

/** Runs one marking request. */
function mark(
  marker: Marker,
  req: Request & { op: "mark" | "mark-whole" },
  signal: AbortSignal,
): Promise<MarkOutcome> {
  if (req.op === "mark-whole") {
    if (!marker.markWholeProcess) {
      throw new Error("the marker cannot mark whole processes");
    }
    return marker.markWholeProcess(req.pid, req.enable, signal);
  }
  return marker.markProcess(req.pid, req.vmas, req.advice, signal);
}

/** A `failed` reply. */
function failed(id: number, err: unknown): Reply {
  return { op: "failed", id, error: encodeError(err) };
}

/** The error of a request the tracer did not run because it is ending. */
function interrupted(message: string): MergememError {
  return new MergememError(message, ErrorKind.Interrupted);
}

/** Writes all of `bytes` to a Deno writer. */
async function writeAll(
  w: { write(p: Uint8Array): Promise<number> },
  bytes: Uint8Array,
): Promise<void> {
  for (let off = 0; off < bytes.length;) {
    off += await w.write(bytes.subarray(off));
  }
}

/**
 * The tracer process's main: leaves main's session, says `ready`, serves
 * requests on stdin/stdout, closes the marker and returns the exit code.
 * Refuses to run on a terminal: it is mergemem's own helper, not a
 * command.
 */
export async function runTracer(): Promise<number> {
  if (Deno.stdin.isTerminal()) {
    console.error(
      `mergemem: error: ${TRACER_SUBCOMMAND} is internal: mergemem starts it itself`,
    );
    return 2;
  }
  const setup = leaveMainSession();
  const stop = new AbortController();
  for (const s of SHUTDOWN_SIGNALS) {
    Deno.addSignalListener(s, () => stop.abort(s));
  }
  const enc = new TextEncoder();
  const send = async (reply: Reply) => {
    try {
      await writeAll(Deno.stdout, enc.encode(encodeLine(reply)));
      return true;
    } catch {
      return false; // main is gone (EPIPE)
    }
  };
  const marker = createPtraceMarker();
  try {
    if (
      !await send({ op: "ready", protocol: PROTOCOL, pid: Deno.pid, ...setup })
    ) return 0;
    await serveTracer({
      lines: readLines(Deno.stdin.readable),
      send,
      shutdown: stop.signal,
      warn: (m) => {
        try {
          console.error(`mergemem: ptrace tracer: ${m}`);
        } catch { /* nowhere to report it */ }
      },
    }, marker);
  } finally {
    marker.close();
  }
  return 0;
}
