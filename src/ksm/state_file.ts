/**
 * Files of mergemem's state under /run/mergemem (the burst journal, the
 * THP record), written so that a crash at any moment leaves either the old
 * or the new content: a temporary file, fsync, rename, fsync of the
 * directory.
 *
 * @module
 */

/**
 * Writes `text` to `path` atomically, mode 0644 whatever the umask (status,
 * run by any user, reads these files).
 */
export function writeFileAtomic(path: string, text: string): void {
  const tmp = `${path}.${Deno.pid}.tmp`;
  const f = Deno.openSync(tmp, {
    write: true,
    create: true,
    truncate: true,
    mode: 0o644,
  });
  try {
    Deno.chmodSync(tmp, 0o644);
    const data = new TextEncoder().encode(text);
    let off = 0;
    while (off < data.length) off += f.writeSync(data.subarray(off));
    f.syncSync();
  } finally {
    f.close();
  }
  Deno.renameSync(tmp, path);
  syncDir(path.slice(0, path.lastIndexOf("/")) || "/");
}

/** Removes `path` durably; no error when it is already gone. */
export function removeFileDurably(path: string): void {
  try {
    Deno.removeSync(path);
  } catch (err) {
    if (!(err instanceof Deno.errors.NotFound)) throw err;
  }
  syncDir(path.slice(0, path.lastIndexOf("/")) || "/");
}

/** fsync of a directory, so that a rename or unlink in it is durable. */
function syncDir(dir: string): void {
  try {
    const d = Deno.openSync(dir, { read: true });
    try {
      d.syncSync();
    } finally {
      d.close();
    }
  } catch {
    // Best effort: /run is a tmpfs, where this is a no-op anyway.
  }
}
