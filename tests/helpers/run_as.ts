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
  const deno = ["run", "--allow-all", "--no-lock", script, ...args];
  if (!user) return runAs(undefined, Deno.execPath(), deno, options);
  return runAs(user, Deno.execPath(), deno, {
    cwd: "/tmp",
    env: { DENO_DIR: "/tmp/mergemem-test-deno", HOME: "/tmp" },
    ...options,
  });
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
