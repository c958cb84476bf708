/**
 * The KSM lock: one mergemem at a time changes ksmd's settings or marks
 * memory.
 *
 * ksmd's settings are global. Two bursts that overlap would each record
 * the other's burst settings as "before" and restore those, leaving ksmd
 * at full speed for good; so everything that changes KSM settings or
 * marks memory runs under an exclusive flock(2) on /run/mergemem/lock.
 * The library takes it itself (runBurst(), merge(), unmerge()), so that
 * programs using the library are as safe as the CLI.
 *
 * - flock, not a pid file: the kernel drops the lock when its holder dies,
 *   however it dies, so a crash never leaves a stale lock behind.
 * - Waiting: Deno's FsFile.lock() blocks without a timeout, so the lock is
 *   polled with LOCK_EX|LOCK_NB every 100 ms up to the lock timeout
 *   (default {@link DEFAULT_LOCK_TIMEOUT_SECONDS} s), after one notice
 *   naming the holder, whose pid and command the lock file holds.
 * - Reentrant within one async call chain: merge() holds it and calls
 *   runBurst(), which takes it again without waiting. The chain is told
 *   apart with AsyncLocalStorage, so two independent calls in one process
 *   (Promise.all of two merges) still exclude each other: each opens the
 *   file itself, and flock excludes open files, not processes.
 * - Whoever takes the lock first restores the settings of a crashed
 *   burst's journal (src/ksm/journal.ts), before doing anything else.
 *
 * @module
 */
import { sleep } from "./sleep.ts";
import { AsyncLocalStorage } from "node:async_hooks";
import {
  ErrorKind,
  ErrorReason,
  MergememError,
  messageOf,
  SyscallError,
} from "../errors.ts";
import {
  closeFd,
  flock,
  LOCK_EX,
  LOCK_NB,
  LOCK_UN,
  O_CREAT,
  O_RDWR,
  openFd,
} from "../ffi/libc.ts";
import {
  ensureRunDir,
  type JournalRecovery,
  processStartTime,
  recoverJournal,
  RUN_DIR,
} from "./journal.ts";

/** How long a run waits for another one's lock by default, in seconds. */
export const DEFAULT_LOCK_TIMEOUT_SECONDS = 300;

/** The lock holder's description when the caller gives none. */
const DEFAULT_HOLDER = "mergemem library";

/** How often a waiting run tries the lock again. */
const POLL_MS = 100;

/** Options of {@link withKsmLock}. */
export interface KsmLockOptions {
  /** The directory of the lock and the journal (default /run/mergemem). */
  runDir?: string;
  /**
   * Wait at most this long for another run's lock, then fail with
   * ErrorKind.LockBusy (default 300; 0 tries once).
   */
  lockTimeoutSeconds?: number;
  /** Called once with a one-line notice when the lock is busy. */
  onLockWait?: (notice: string) => void;
  /**
   * Who holds the lock, for other runs' notices ("mergemem merge");
   * default "mergemem library".
   */
  lockHolder?: string;
  /** Stop waiting (ErrorKind.Interrupted; nothing changed) when aborted. */
  signal?: AbortSignal;
}

/** What the callback of {@link withKsmLock} learns. */
export interface KsmLockHeld {
  /** The lock file. */
  path: string;
  /** Who holds it: the outermost call's {@link KsmLockOptions.lockHolder}. */
  holder: string;
  /** Taken by an outer call of the same call chain (nothing was done). */
  nested: boolean;
  /** A crashed burst's settings restored on taking the lock, if any. */
  recovered?: JournalRecovery;
  /** Lines for the user (the recovery); [] when nested. */
  warnings: string[];
}

/** Who holds the lock, as its lock file says. */
export interface LockHolder {
  /** The holder's pid. */
  pid: number;
  /** The holder's start time (/proc/PID/stat field 22). */
  start_time: string;
  /** The holder's description ("mergemem merge"). */
  command: string;
  /** When it took the lock (ISO 8601). */
  since: string;
}

interface Token {
  fd: number;
  path: string;
  holder: string;
  released: boolean;
}

const chain = new AsyncLocalStorage<Token>();

/** The lock file's path in `runDir`. */
export function lockPath(runDir = RUN_DIR): string {
  return `${runDir}/lock`;
}

/**
 * The lock's holder as its lock file says, if that process still runs;
 * undefined when the file is empty, unreadable or names a dead process.
 */
export function readLockHolder(runDir = RUN_DIR): LockHolder | undefined {
  try {
    const h = JSON.parse(Deno.readTextFileSync(lockPath(runDir))) as LockHolder;
    if (typeof h.pid !== "number") return undefined;
    if (processStartTime(h.pid) !== h.start_time) return undefined;
    return h;
  } catch {
    return undefined;
  }
}

/** True when this call chain holds the KSM lock. */
export function holdsKsmLock(): boolean {
  const t = chain.getStore();
  return t !== undefined && !t.released;
}

function openLockFile(runDir: string): number {
  const path = lockPath(runDir);
  try {
    ensureRunDir(runDir);
    return openFd(path, O_RDWR | O_CREAT, 0o600);
  } catch (err) {
    const denied = err instanceof Deno.errors.PermissionDenied ||
      (err instanceof SyscallError &&
        (err.code === "EACCES" || err.code === "EPERM" ||
          err.code === "EROFS"));
    throw new MergememError(
      `cannot open the KSM lock ${path}: ${messageOf(err)}`,
      ErrorKind.Failed,
      denied ? { reason: ErrorReason.NeedsRoot } : undefined,
    );
  }
}

function describeHolder(h: LockHolder | undefined, path: string): string {
  return h
    ? `pid ${h.pid} (${h.command}) holding ${path}`
    : `another mergemem run holding ${path}`;
}

function take(fd: number, path: string, holder: string | undefined): Token {
  const me: LockHolder = {
    pid: Deno.pid,
    start_time: processStartTime(Deno.pid) ?? "",
    command: holder ?? DEFAULT_HOLDER,
    since: new Date().toISOString(),
  };
  try {
    // Same inode, other open file: the flock is unaffected.
    Deno.writeTextFileSync(path, JSON.stringify(me) + "\n");
  } catch {
    // Only the waiters' notice needs it.
  }
  return { fd, path, holder: me.command, released: false };
}

function release(t: Token): void {
  if (t.released) return;
  t.released = true;
  try {
    // Before unlocking, so that the next holder's entry stays.
    Deno.truncateSync(t.path, 0);
  } catch {
    // only informative
  }
  flock(t.fd, LOCK_UN);
  closeFd(t.fd);
}

/** Waits for the lock: see the module documentation. */
async function acquire(opts: KsmLockOptions): Promise<Token> {
  const runDir = opts.runDir ?? RUN_DIR;
  const path = lockPath(runDir);
  const timeout = opts.lockTimeoutSeconds ?? DEFAULT_LOCK_TIMEOUT_SECONDS;
  const deadline = performance.now() + timeout * 1000;
  const fd = openLockFile(runDir);
  try {
    let noticed = false;
    while (!flock(fd, LOCK_EX | LOCK_NB)) {
      const holder = readLockHolder(runDir);
      if (!noticed) {
        noticed = true;
        opts.onLockWait?.(
          `waiting for ${describeHolder(holder, path)} (up to ${timeout} s)`,
        );
      }
      if (opts.signal?.aborted) {
        throw new MergememError(
          `interrupted by ${
            String(opts.signal.reason ?? "signal")
          } while waiting for the KSM lock; nothing was changed`,
          ErrorKind.Interrupted,
        );
      }
      const left = deadline - performance.now();
      if (left <= 0) {
        throw new MergememError(
          `gave up after ${timeout} s waiting for ${
            describeHolder(holder, path)
          }; nothing was changed`,
          ErrorKind.LockBusy,
        );
      }
      await sleep(Math.min(POLL_MS, left), opts.signal);
    }
  } catch (err) {
    closeFd(fd);
    throw err;
  }
  return take(fd, path, opts.lockHolder);
}

/**
 * Runs `fn` holding the KSM lock; see the module documentation. Taking
 * the lock (not a nested call) first restores a crashed burst's settings,
 * reported in {@link KsmLockHeld.warnings}.
 *
 * @throws MergememError LockBusy when another run holds the lock past the
 *   lock timeout; Interrupted when `signal` fires while waiting; Failed
 *   when the lock file cannot be opened (not root).
 */
export async function withKsmLock<T>(
  opts: KsmLockOptions,
  fn: (held: KsmLockHeld) => Promise<T> | T,
): Promise<T> {
  const runDir = opts.runDir ?? RUN_DIR;
  const current = chain.getStore();
  if (current && !current.released) {
    return await fn({
      path: current.path,
      holder: current.holder,
      nested: true,
      warnings: [],
    });
  }
  const token = await acquire(opts);
  try {
    const recovered = recoverJournal(runDir);
    const held: KsmLockHeld = {
      path: token.path,
      holder: token.holder,
      nested: false,
      recovered,
      warnings: recovered ? [recovered.message] : [],
    };
    return await chain.run(token, () => fn(held));
  } finally {
    release(token);
  }
}

/**
 * Runs `fn` holding the KSM lock if it is free now (or this call chain
 * holds it), without waiting and without recovering anything; returns
 * undefined, without running `fn`, when another run holds it. For
 * status(), which only repairs what nobody else is working on.
 *
 * @throws MergememError Failed when the lock file cannot be opened.
 */
export function ifKsmLockFree<T>(
  fn: () => T,
  runDir = RUN_DIR,
): { value: T } | undefined {
  if (holdsKsmLock()) return { value: fn() };
  const fd = openLockFile(runDir);
  let locked = false;
  try {
    locked = flock(fd, LOCK_EX | LOCK_NB);
  } finally {
    if (!locked) closeFd(fd);
  }
  if (!locked) return undefined;
  const token = take(fd, lockPath(runDir), "mergemem status");
  try {
    return { value: chain.run(token, fn) };
  } finally {
    release(token);
  }
}
