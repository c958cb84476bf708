/**
 * classifyMarkError (src/engine/mark_error.ts), the one reading of a
 * marker's error that merge() and unmerge() share, as a table.
 */
import { deepStrictEqual as assertEquals } from "node:assert/strict";
import {
  classifyMarkError,
  type MarkFailure,
} from "../../src/engine/mark_error.ts";
import { ProcessSkipped } from "../../src/engine/marker.ts";
import {
  allDenied,
  ErrorKind,
  MergememError,
  SyscallError,
} from "../../src/errors.ts";

const errno = (code: string) => Object.assign(new Error(code), { code });

const cases: [string, unknown, MarkFailure][] = [
  [
    "ProcessSkipped: the engine's reason",
    new ProcessSkipped(7, "seccomp filter"),
    { kind: "skipped", reason: "seccomp filter" },
  ],
  [
    "AllDenied: denied, its message",
    allDenied(1),
    { kind: "denied", reason: allDenied(1).message },
  ],
  [
    "EPERM: denied",
    errno("EPERM"),
    { kind: "denied", reason: "permission denied (EPERM)" },
  ],
  [
    "EACCES (Deno's PermissionDenied): denied",
    new Deno.errors.PermissionDenied("x"),
    { kind: "denied", reason: "permission denied (EACCES)" },
  ],
  [
    "ESRCH (SyscallError): exited",
    new SyscallError("ptrace", 3, "ESRCH", "gone"),
    { kind: "exited" },
  ],
  ["ENOENT (NotFound): exited", new Deno.errors.NotFound("x"), {
    kind: "exited",
  }],
  [
    "NothingScannable: exited, its message",
    new MergememError("all gone", ErrorKind.NothingScannable),
    { kind: "exited", message: "all gone" },
  ],
  [
    "Interrupted",
    new MergememError("SIGINT", ErrorKind.Interrupted),
    { kind: "interrupted" },
  ],
  [
    "another MergememError: failed, its message",
    new MergememError("module mismatch", ErrorKind.ModuleMismatch),
    { kind: "failed", message: "module mismatch" },
  ],
  ["ENOMEM: other, with its code", errno("ENOMEM"), {
    kind: "other",
    code: "ENOMEM",
  }],
  ["a bug: other, no code", new TypeError("boom"), {
    kind: "other",
    code: undefined,
  }],
];

for (const [name, err, want] of cases) {
  Deno.test(`classifyMarkError: ${name}`, () => {
    assertEquals(classifyMarkError(err), want);
  });
}
