/**
 * User names to uids, from /etc/passwd (no NSS: mergemem selects local
 * service users such as www-data).
 *
 * @module
 */

/** Parses /etc/passwd text into a name → uid map. */
export function parsePasswd(text: string): Map<string, number> {
  const users = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const f = line.split(":");
    if (f.length >= 3 && /^\d+$/.test(f[2])) users.set(f[0], Number(f[2]));
  }
  return users;
}

/**
 * Resolves user names or uids to uids. Numbers and numeric strings are
 * uids as they are.
 * @throws {TypeError} for an unknown user name.
 */
export function resolveUsers(
  users: readonly (string | number)[],
  passwd = "/etc/passwd",
): number[] {
  let table: Map<string, number> | undefined;
  return users.map((u) => {
    if (typeof u === "number") return u;
    if (/^\d+$/.test(u)) return Number(u);
    table ??= parsePasswd(Deno.readTextFileSync(passwd));
    const uid = table.get(u);
    if (uid === undefined) throw new TypeError(`unknown user '${u}'`);
    return uid;
  });
}
