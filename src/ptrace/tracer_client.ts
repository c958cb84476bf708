/**
 * The ptrace engine as mergemem uses it: a {@link Marker} that has a
 * tracer process of its own (tracer.ts) do the injecting, so that
 * killing mergemem's main process at any moment, SIGKILL included,
 * leaves every target as a debugger's clean detach would.
 *
 * The tracer is started at the first marking request (a dry run or a
 * run with nothing to mark never starts it) from the same program:
 * - a compiled mergemem (`deno compile`): its own executable with the
 *   hidden subcommand {@link TRACER_SUBCOMMAND} (main.ts);
 * - from the sources (`deno run main.ts`, the tests, a library user):
 *   `deno run` of tracer_main.ts beside this file;
 * - a bundle (install.sh's and the Debian package's launcher, where
 *   tracer_main.ts is not a file): `deno run` of the bundle, main.ts,
 *   with the hidden subcommand.
 * A program of one's own compiled or bundled around the library has no
 * such subcommand: pass {@link TracerMarkerOptions.command}, or use
 * createPtraceMarker (marker.ts), which injects from the calling process.
 *
 * Requests and replies are JSON lines on the tracer's stdin and stdout
 * (protocol.ts); its stderr is main's. Marking errors come back as the
 * same classes createPtraceMarker throws. SIGINT and SIGTERM during a
 * request are forwarded as a stop: the tracer ends the request at its
 * next hold boundary, replies once every target is detached, and then
 * MergememError(Interrupted) is thrown, as with createPtraceMarker.
 *
 * close() closes the tracer's stdin: it detaches what is left and
 * exits. A caller that never calls close() does not keep the process
 * alive for it (the child is unreferenced between requests): when main
 * exits, the tracer sees end of file all the same. If the tracer dies
 * (SIGKILL), the kernel detaches its targets as they stand and every
 * request fails with MergememError(Failed).
 *
 * @module
 */
import { ErrorKind, MergememError, messageOf } from "../errors.ts";
import type {
  MarkAdvice,
  Marker,
  MarkOutcome,
  VmaRange,
} from "../engine/marker.ts";
import { deferSignals } from "./interrupt.ts";
import {
  decodeError,
  encodeLine,
  parseReply,
  PROTOCOL,
  readLines,
  type Reply,
  type Request,
  TRACER_SUBCOMMAND,
} from "./protocol.ts";
import { requireX86_64Host } from "./target.ts";

/** Options of {@link createTracerMarker}. */
export interface TracerMarkerOptions {
  /** The command line that starts the tracer (default:
   * {@link tracerCommand}). */
  command?: string[];
}

/** A marker backed by a tracer process. */
export interface TracerMarker extends Marker {
  /** The tracer's pid once it has started, else undefined. */
  readonly tracerPid: number | undefined;
  /** close(), then waits until the tracer process has exited. */
  closeAndWait(): Promise<void>;
}

/** Whether a file URL names an existing file. */
function fileExists(url: URL): boolean {
  try {
    return Deno.statSync(url).isFile;
  } catch {
    return false;
  }
}

/**
 * The command line that starts the tracer from this very program; see
 * the module doc for the three cases. Deno's flags are the launcher's:
 * no config or lock file of whatever directory (the tracer runs in /),
 * no prompt, all permissions (FFI needs them anyway).
 */
export function tracerCommand(): string[] {
  const self = Deno.execPath();
  if (Deno.build.standalone) return [self, TRACER_SUBCOMMAND];
  const run = [
    self,
    "run",
    "--quiet",
    "--no-prompt",
    "--no-config",
    "--no-lock",
    "--allow-all",
  ];
  const entry = new URL("./tracer_main.ts", import.meta.url);
  if (entry.protocol !== "file:" || fileExists(entry)) {
    return [...run, entry.href];
  }
  return [...run, Deno.mainModule, TRACER_SUBCOMMAND];
}

/** Why a tracer process ended, for messages. */
function ending(status: Deno.CommandStatus): string {
  return status.signal
    ? `was killed by ${status.signal}`
    : `exited with code ${status.code}`;
}

/** A request waiting for its reply. */
interface Pending {
  resolve(reply: Reply): void;
  reject(err: unknown): void;
}

/** One running tracer process and its pipes. */
class TracerConnection {
  readonly pid: number;
  readonly #command: string[];
  readonly #child: Deno.ChildProcess;
  readonly #writer: WritableStreamDefaultWriter<Uint8Array>;
  readonly #pending = new Map<number, Pending>();
  readonly #exited: Promise<void>;
  #ready?: Pending;
  /** Set once the tracer is gone or unusable: every request fails so. */
  #failure?: MergememError;
  #nextId = 0;
  #refs = 0;
  #closed = false;

  private constructor(command: string[], child: Deno.ChildProcess) {
    this.#command = command;
    this.#child = child;
    this.pid = child.pid;
    this.#writer = child.stdin.getWriter();
    this.#exited = this.#readReplies();
  }

  /**
   * Starts the tracer and waits for its `ready`.
   *
   * @throws MergememError(Failed) when it cannot be started or does not
   *   say ready.
   */
  static async start(command: string[]): Promise<TracerConnection> {
    let child: Deno.ChildProcess;
    try {
      child = new Deno.Command(command[0], {
        args: command.slice(1),
        stdin: "piped",
        stdout: "piped",
        stderr: "inherit",
        // It must not hold the caller's directory (a mount) busy.
        cwd: "/",
        env: { DENO_NO_UPDATE_CHECK: "1" },
      }).spawn();
    } catch (err) {
      throw new MergememError(
        `could not start the ptrace tracer (${command[0]}): ${messageOf(err)}`,
        ErrorKind.Failed,
      );
    }
    const c = new TracerConnection(command, child);
    const ready = new Promise<Reply>((resolve, reject) =>
      c.#ready = { resolve, reject }
    );
    c.#ref(1);
    try {
      const r = await ready;
      if (r.op !== "ready" || r.protocol !== PROTOCOL) {
        throw c.#fail(
          `the ptrace tracer (pid ${c.pid}) speaks another protocol ` +
            `(${r.op === "ready" ? r.protocol : r.op}, not ${PROTOCOL}): ` +
            `was mergemem replaced while running?`,
        );
      }
    } catch (err) {
      c.close();
      throw err;
    } finally {
      c.#ref(-1);
    }
    return c;
  }

  /** Holds the event loop open while a request is outstanding. */
  #ref(delta: number): void {
    this.#refs += delta;
    if (this.#refs > 0) this.#child.ref();
    else this.#child.unref();
  }

  /** Records the tracer as unusable; returns the error to throw. */
  #fail(message: string): MergememError {
    this.#failure ??= new MergememError(message, ErrorKind.Failed);
    return this.#failure;
  }

  /**
   * Reads replies until the tracer's stdout ends, then fails whatever
   * still waits with the reason the tracer ended.
   */
  async #readReplies(): Promise<void> {
    try {
      for await (const line of readLines(this.#child.stdout)) {
        const reply = parseReply(line);
        if (reply.op === "ready") {
          this.#ready?.resolve(reply);
          this.#ready = undefined;
          continue;
        }
        const p = this.#pending.get(reply.id);
        this.#pending.delete(reply.id);
        p?.resolve(reply);
      }
    } catch (err) {
      // A malformed reply: a bug. Let the tracer finish and go.
      this.#fail(`the ptrace tracer (pid ${this.pid}): ${messageOf(err)}`);
      this.close();
    }
    const status = await this.#child.status;
    const err = this.#fail(
      this.#ready
        ? `the ptrace tracer did not start: ${this.#command.join(" ")} ` +
          `${ending(status)} before it was ready`
        : `the ptrace tracer (pid ${this.pid}) ${ending(status)}` +
          (this.#closed
            ? ""
            : "; the kernel detached the processes it was marking"),
    );
    this.#ready?.reject(err);
    for (const p of this.#pending.values()) p.reject(err);
    this.#pending.clear();
  }

  /** Writes one request line. */
  async #send(req: Request): Promise<void> {
    if (this.#failure) throw this.#failure;
    try {
      await this.#writer.write(new TextEncoder().encode(encodeLine(req)));
    } catch {
      // EPIPE: the tracer is gone; its reason comes with its exit.
      await this.#exited;
      throw this.#failure!;
    }
  }

  /**
   * Sends a marking request and waits for its reply; forwards `signal`
   * and SIGINT/SIGTERM as a stop (see the module doc).
   */
  async request(
    req:
      | Omit<Request & { op: "mark" }, "id">
      | Omit<Request & { op: "mark-whole" }, "id">,
    signal?: AbortSignal,
  ): Promise<MarkOutcome> {
    if (this.#failure) throw this.#failure;
    const id = ++this.#nextId;
    const reply = new Promise<Reply>((resolve, reject) =>
      this.#pending.set(id, { resolve, reject })
    );
    // Handled even when nobody waits for it any more (an earlier throw).
    reply.catch(() => {});
    let stopSent = false;
    const stop = () => {
      if (stopSent) return;
      stopSent = true;
      this.#send({ op: "stop", id }).catch(() => {});
    };
    this.#ref(1);
    const defer = deferSignals(stop);
    signal?.addEventListener("abort", stop, { once: true });
    try {
      await this.#send({ ...req, id } as Request);
      if (signal?.aborted) stop();
      const r = await reply;
      if (r.op === "failed") throw decodeError(r.error);
      if (r.op !== "done") throw this.#fail(`unexpected reply ${r.op}`);
      return r.outcome;
    } finally {
      signal?.removeEventListener("abort", stop);
      this.#pending.delete(id);
      this.#ref(-1);
      await defer.release();
    }
  }

  /** Ends the tracer: end of file on its stdin (idempotent). */
  close(): void {
    if (this.#closed) return;
    this.#closed = true;
    this.#writer.close().catch(() => {});
    this.#child.unref();
  }

  /** Resolves once the tracer has exited. */
  async exited(): Promise<void> {
    await this.#exited;
  }
}

/**
 * The ptrace engine with its own tracer process (x86-64 only). See the
 * module doc.
 *
 * @throws MergememError (NoModule) on a host that is not x86-64 Linux.
 */
export function createTracerMarker(
  opts: TracerMarkerOptions = {},
): TracerMarker {
  requireX86_64Host();
  let conn: Promise<TracerConnection> | undefined;
  let pid: number | undefined;
  let closed = false;
  const connection = async () => {
    if (closed) throw new Error("ptrace marker is closed");
    conn ??= TracerConnection.start(opts.command ?? tracerCommand());
    const c = await conn;
    pid = c.pid;
    return c;
  };
  const close = () => {
    closed = true;
    conn?.then((c) => c.close(), () => {});
  };
  return {
    engine: "ptrace",
    get tracerPid() {
      return pid;
    },

    async markProcess(
      pid: number,
      vmas: VmaRange[],
      advice: MarkAdvice,
      signal?: AbortSignal,
    ): Promise<MarkOutcome> {
      const c = await connection();
      return await c.request({
        op: "mark",
        pid,
        vmas,
        advice,
      }, signal);
    },

    async markWholeProcess(
      pid: number,
      enable: boolean,
      signal?: AbortSignal,
    ): Promise<MarkOutcome> {
      const c = await connection();
      return await c.request({ op: "mark-whole", pid, enable }, signal);
    },

    close,

    async closeAndWait() {
      close();
      const c = await conn?.catch(() => undefined);
      await c?.exited();
    },
  };
}
