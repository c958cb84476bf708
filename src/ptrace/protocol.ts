/**
 * What mergemem's main process and its ptrace tracer process say to each
 * other (tracer_client.ts, tracer.ts): one JSON object per line, requests
 * on the tracer's stdin, replies on its stdout.
 *
 * Requests: `mark` (Marker.markProcess), `mark-whole`
 * (Marker.markWholeProcess), `stop` (finish request `id` at the next
 * hold boundary: the caller was interrupted). The end of the tracer's
 * stdin means "main is gone or done": the tracer finishes the hold it is
 * in, detaches from everything and exits.
 *
 * Replies: `ready` once the tracer has left main's session (before it
 * reads any request), then one `done` or `failed` per request, in order.
 * Errors cross the pipe as {@link WireError} and are rebuilt as the
 * classes the marker's callers sort (src/engine/mark_error.ts).
 *
 * The Marker contract's own objects (VmaRange, MarkOutcome) cross as
 * they are, whatever fields they have: bigints are written as
 * `{"$bigint": "decimal"}` and read back as bigints, so the protocol needs
 * no change when the contract grows a field.
 *
 * Both ends are always the same build of mergemem (the tracer is started
 * from the same executable or bundle), so there is no negotiation; the
 * protocol number only catches an installation replaced between the two
 * starts.
 *
 * @module
 */
import {
  errnoCode,
  type ErrorDetail,
  ErrorKind,
  type ErrorKindValue,
  MergememError,
  messageOf,
  SyscallError,
} from "../errors.ts";
import {
  type MarkAdvice,
  type MarkOutcome,
  ProcessSkipped,
  type VmaRange,
} from "../engine/marker.ts";

/** The hidden first argument that makes mergemem run as the tracer. */
export const TRACER_SUBCOMMAND = "__ptrace-tracer";

/** Bumped whenever a message changes. */
export const PROTOCOL = 1;

/** A request from main to the tracer. */
export type Request =
  | {
    op: "mark";
    id: number;
    pid: number;
    vmas: VmaRange[];
    advice: MarkAdvice;
  }
  | { op: "mark-whole"; id: number; pid: number; enable: boolean }
  | { op: "stop"; id: number };

/** An error as it crosses the pipe. */
export type WireError =
  | { type: "skipped"; pid: number; reason: string }
  | {
    type: "syscall";
    syscall: string;
    errno: number;
    code: string;
    message: string;
  }
  | {
    type: "mergemem";
    kind: ErrorKindValue;
    message: string;
    detail?: ErrorDetail;
  }
  | { type: "other"; message: string };

/** A reply from the tracer to main. */
export type Reply =
  | {
    op: "ready";
    protocol: number;
    pid: number;
    /** It is in a session of its own (setsid succeeded). */
    session: boolean;
    /** Its oom_score_adj now; null when unreadable. */
    oomScoreAdj: number | null;
  }
  | { op: "done"; id: number; outcome: MarkOutcome }
  | { op: "failed"; id: number; error: WireError };

/** The key of a bigint written as an object. */
const BIGINT = "$bigint";

/** One line of the protocol (no newline inside: JSON escapes it). */
export function encodeLine(msg: Request | Reply): string {
  return JSON.stringify(
    msg,
    (_k, v) => typeof v === "bigint" ? { [BIGINT]: v.toString() } : v,
  ) + "\n";
}

/** A malformed line: a bug on the other side, or a different build. */
export class ProtocolError extends Error {
  /** Builds the error from what was wrong and the line. */
  constructor(what: string, line: string) {
    super(`ptrace tracer protocol: ${what}: ${line.slice(0, 200)}`);
    this.name = "ProtocolError";
  }
}

type Json = Record<string, unknown>;

/** The line as a JSON object, or ProtocolError. */
function object(line: string): Json {
  let v: unknown;
  try {
    v = JSON.parse(line, (_k, v) => {
      if (
        typeof v === "object" && v !== null && typeof v[BIGINT] === "string" &&
        Object.keys(v).length === 1 && /^-?\d{1,20}$/.test(v[BIGINT])
      ) return BigInt(v[BIGINT]);
      return v;
    });
  } catch {
    throw new ProtocolError("not JSON", line);
  }
  if (typeof v !== "object" || v === null || Array.isArray(v)) {
    throw new ProtocolError("not an object", line);
  }
  return v as Json;
}

const isInt = (v: unknown): v is number => Number.isSafeInteger(v);

/** Whether v is a VmaRange (its other fields are the contract's). */
function isVma(v: unknown): v is VmaRange {
  if (typeof v !== "object" || v === null) return false;
  const o = v as Json;
  return typeof o.start === "bigint" && typeof o.end === "bigint";
}

/** Parses and checks a request line; ProtocolError when malformed. */
export function parseRequest(line: string): Request {
  const o = object(line);
  if (!isInt(o.id)) throw new ProtocolError("no id", line);
  switch (o.op) {
    case "mark":
      if (
        isInt(o.pid) && (o.advice === "merge" || o.advice === "unmerge") &&
        Array.isArray(o.vmas) && o.vmas.every(isVma)
      ) {
        return {
          op: "mark",
          id: o.id,
          pid: o.pid,
          vmas: o.vmas,
          advice: o.advice,
        };
      }
      break;
    case "mark-whole":
      if (isInt(o.pid) && typeof o.enable === "boolean") {
        return { op: "mark-whole", id: o.id, pid: o.pid, enable: o.enable };
      }
      break;
    case "stop":
      return { op: "stop", id: o.id };
  }
  throw new ProtocolError("bad request", line);
}

/** Whether v has the counts of a MarkOutcome (its other fields are the
 * contract's). */
function isOutcome(v: unknown): v is MarkOutcome {
  if (typeof v !== "object" || v === null) return false;
  const o = v as Json;
  return isInt(o.vmasChanged) && isInt(o.bytesChanged) &&
    isInt(o.vmasUnchanged) && isInt(o.vmasSkipped) &&
    (o.holdMs === null || typeof o.holdMs === "number");
}

/** Parses and checks a reply line; ProtocolError when malformed. */
export function parseReply(line: string): Reply {
  const o = object(line);
  switch (o.op) {
    case "ready":
      if (isInt(o.protocol) && isInt(o.pid)) {
        return {
          op: "ready",
          protocol: o.protocol,
          pid: o.pid,
          session: o.session === true,
          oomScoreAdj: isInt(o.oomScoreAdj) ? o.oomScoreAdj : null,
        };
      }
      break;
    case "done":
      if (isInt(o.id) && isOutcome(o.outcome)) {
        return { op: "done", id: o.id, outcome: o.outcome };
      }
      break;
    case "failed":
      if (
        isInt(o.id) && typeof o.error === "object" && o.error !== null &&
        typeof (o.error as Json).type === "string"
      ) {
        return { op: "failed", id: o.id, error: o.error as WireError };
      }
      break;
  }
  throw new ProtocolError("bad reply", line);
}

/** errno numbers by name, for errors that carry only the name. */
const ERRNO_NUMBERS: Record<string, number> = {
  EPERM: 1,
  ENOENT: 2,
  ESRCH: 3,
  EINTR: 4,
  EIO: 5,
  ENOMEM: 12,
  EACCES: 13,
  EFAULT: 14,
  EBUSY: 16,
  EINVAL: 22,
};

/**
 * An error thrown by the marker in the tracer, for the pipe. What the
 * callers tell apart survives: ProcessSkipped with its reason, the errno
 * name of a failed call or file access, a MergememError's kind and
 * reason; anything else is its message.
 */
export function encodeError(err: unknown): WireError {
  if (err instanceof ProcessSkipped) {
    return { type: "skipped", pid: err.pid, reason: err.reason };
  }
  if (err instanceof MergememError) {
    return {
      type: "mergemem",
      kind: err.kind,
      message: err.message,
      ...(err.detail ? { detail: err.detail } : {}),
    };
  }
  if (err instanceof SyscallError) {
    return {
      type: "syscall",
      syscall: err.syscall,
      errno: err.errno,
      code: err.code,
      message: err.message,
    };
  }
  const code = errnoCode(err);
  if (code !== undefined) {
    return {
      type: "syscall",
      syscall: "open",
      errno: ERRNO_NUMBERS[code] ?? 0,
      code,
      message: messageOf(err),
    };
  }
  return { type: "other", message: messageOf(err) };
}

/** The error a {@link WireError} stands for, as main throws it. */
export function decodeError(w: WireError): Error {
  switch (w.type) {
    case "skipped":
      return new ProcessSkipped(w.pid, w.reason);
    case "mergemem":
      return new MergememError(
        w.message,
        knownKind(w.kind) ? w.kind : ErrorKind.Failed,
        w.detail,
      );
    case "syscall": {
      const e = new SyscallError(w.syscall, w.errno, w.code);
      e.message = w.message;
      return e;
    }
    default:
      return new Error(
        typeof w.message === "string" ? w.message : "ptrace tracer: failed",
      );
  }
}

/** Whether a MergememError kind is one of ErrorKind's (a sanity check). */
function knownKind(kind: unknown): kind is ErrorKindValue {
  return Object.values(ErrorKind).includes(kind as ErrorKindValue);
}

/**
 * The lines of a byte stream (without their newline), decoded as UTF-8;
 * a last line without a newline counts too.
 */
export async function* readLines(
  stream: ReadableStream<Uint8Array>,
): AsyncGenerator<string> {
  let buf = "";
  for await (const chunk of stream.pipeThrough(new TextDecoderStream())) {
    buf += chunk;
    for (let i = buf.indexOf("\n"); i >= 0; i = buf.indexOf("\n")) {
      yield buf.slice(0, i);
      buf = buf.slice(i + 1);
    }
  }
  if (buf !== "") yield buf;
}
