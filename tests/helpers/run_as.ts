/**
 * Running test programs as another user: the tests drop to an
 * unprivileged user to see what mergemem reports without root.
 *
 * @module
 */

/** A uid and gid to run as. */
export interface User {
  uid: number;
  gid: number;
}

/**
 * A command that runs `cmd ARGS` as `user` (setpriv: real and effective
 * uid and gid, no supplementary groups), or as this process without one.
 */
export function runAs(
  user: User | undefined,
  cmd: string,
  args: string[],
  options: Omit<Deno.CommandOptions, "args"> = {},
): Deno.Command {
  if (!user) return new Deno.Command(cmd, { ...options, args });
  return new Deno.Command("setpriv", {
    ...options,
    args: [
      `--reuid=${user.uid}`,
      `--regid=${user.gid}`,
      "--clear-groups",
      cmd,
      ...args,
    ],
  });
}

/**
 * A command that runs the Deno script `script ARGS` as `user` (or as this
 * process without one). A user gets a cache and home of its own in /tmp:
 * it cannot write root's.
 */
export function denoRunAs(
  user: User | undefined,
  script: string,
  args: string[],
  options: Omit<Deno.CommandOptions, "args"> = {},
): Deno.Command {
  if (!user) {
    const deno = ["run", "--allow-all", "--no-lock", script, ...args];
    return runAs(undefined, Deno.execPath(), deno, options);
  }
  const tree = readableTree();
  const path = tree.root + relative(REPO, script);
  const deno = ["run", "--allow-all", "--no-lock", path, ...args];
  return runAs(user, tree.deno, deno, {
    cwd: "/tmp",
    env: { DENO_DIR: "/tmp/mergemem-test-deno", HOME: "/tmp" },
    ...options,
  });
}

/** The checkout's root, ending in "/". */
const REPO = new URL("../../", import.meta.url).pathname;

/** `path` (absolute, or a file: URL) relative to `root`. */
function relative(root: string, path: string): string {
  const p = path.startsWith("file:") ? new URL(path).pathname : path;
  if (!p.startsWith(root)) throw new Error(`${p} is not under ${root}`);
  return p.slice(root.length);
}

/** Whether every directory from / down to `dir` lets others search it. */
function searchableByOthers(dir: string): boolean {
  let d = "";
  for (const part of dir.split("/").filter(Boolean)) {
    d += "/" + part;
    if (((Deno.statSync(d).mode ?? 0) & 0o001) === 0) return false;
  }
  return true;
}

let tree: { root: string; deno: string } | undefined;

/**
 * Where another user can read the code and run Deno: the checkout itself,
 * or, when a directory above it is closed to others (a clone in /root), a
 * copy of the code and of Deno in a temporary directory, made once per
 * test process.
 */
function readableTree(): { root: string; deno: string } {
  if (tree) return tree;
  if (searchableByOthers(REPO) && searchableByOthers(Deno.execPath())) {
    return tree = { root: REPO, deno: Deno.execPath() };
  }
  const dir = Deno.makeTempDirSync({ prefix: "mergemem-tree-" });
  Deno.chmodSync(dir, 0o755);
  const copy = new Deno.Command("cp", {
    args: [
      "-R",
      ...["main.ts", "deno.json", "deno.lock", "src", "tests"].map((f) =>
        REPO + f
      ),
      Deno.execPath(),
      dir,
    ],
  }).outputSync();
  if (!copy.success) throw new Error(new TextDecoder().decode(copy.stderr));
  const chmod = new Deno.Command("chmod", { args: ["-R", "a+rX", dir] })
    .outputSync();
  if (!chmod.success) throw new Error(new TextDecoder().decode(chmod.stderr));
  addEventListener("unload", () => Deno.removeSync(dir, { recursive: true }));
  return tree = {
    root: dir + "/",
    deno: `${dir}/${Deno.execPath().split("/").pop()}`,
  };
}

/** uid and gid of a system user, creating it if missing. */
export async function testUser(name = "mergemem-test"): Promise<User> {
  const id = async (flag: string) => {
    const r = await new Deno.Command("id", { args: [flag, name] }).output();
    return r.success ? Number(new TextDecoder().decode(r.stdout).trim()) : NaN;
  };
  if (Number.isNaN(await id("-u"))) {
    const r = await new Deno.Command("useradd", {
      args: [
        "--system",
        "--no-create-home",
        "--shell",
        "/usr/sbin/nologin",
        name,
      ],
    }).output();
    if (!r.success) throw new Error(new TextDecoder().decode(r.stderr));
  }
  return { uid: await id("-u"), gid: await id("-g") };
}
