import { spawnSync } from "node:child_process";
import { createHash, randomBytes } from "node:crypto";
import { chmodSync, closeSync, constants, fstatSync, openSync, readSync, writeSync } from "node:fs";

/**
 * openat() for Node, which has none: a directory is held as an fd and everything in it is reached
 * as /proc/self/fd/FD/NAME. The kernel jumps through the fd (not a path anyone can swap) and looks
 * up one NAME in it, so:
 *   - a path is walked one name at a time, each opened O_NOFOLLOW|O_DIRECTORY: no symlink is ever
 *     followed, none can lead out of the tree (RESOLVE_NO_SYMLINKS|RESOLVE_BENEATH semantics);
 *   - every path handed to the kernel is short: trees deeper than PATH_MAX and 255-byte names
 *     are read and written like any other.
 */

const DIR_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW;

/** A name inside an open directory, as a path the kernel resolves through the fd. */
export const at = (fd: number, name?: string): string =>
  name === undefined ? `/proc/self/fd/${fd}` : `/proc/self/fd/${fd}/${name}`;

/** Opens a directory (no symlink as its last name); the caller closes it. */
export const openDir = (p: string): number => openSync(p, DIR_FLAGS);

/** Opens the directory `name` inside `dirFd`, never through a symlink. */
export const openDirAt = (dirFd: number, name: string): number => openSync(at(dirFd, name), DIR_FLAGS);

/** The names of a relative path ("a/b/c" → a, b, c); never "..", ".", or empty. */
export function splitRel(rel: string): string[] {
  const parts = rel.split("/").filter((p) => p !== "" && p !== ".");
  if (parts.includes("..")) throw new Error(`${rel}: ".." in a change-set path`);
  return parts;
}

/**
 * Runs `fn` with an fd on the directory `parts` below `rootFd`, walked name by name without
 * following symlinks (ELOOP/ENOTDIR if one is in the way). The fd is closed after.
 */
export function inDir<T>(rootFd: number, parts: readonly string[], fn: (fd: number) => T): T {
  let fd = rootFd;
  try {
    for (const part of parts) {
      const next = openDirAt(fd, part);
      if (fd !== rootFd) closeSync(fd);
      fd = next;
    }
    return fn(fd);
  } finally {
    if (fd !== rootFd) closeSync(fd);
  }
}

/** Opens a regular file for reading, never through a symlink (a fifo or device is refused). */
export function openFileAt(dirFd: number, name: string): number {
  const fd = openSync(at(dirFd, name), constants.O_RDONLY | constants.O_NOFOLLOW | constants.O_NONBLOCK);
  if (!fstatSync(fd).isFile()) {
    closeSync(fd);
    throw new Error(`${name}: not a regular file`);
  }
  return fd;
}

/** Copies an open file's content into another, in chunks (files of any size). */
export function copyFd(from: number, to: number): void {
  const buf = Buffer.allocUnsafe(1 << 20);
  for (;;) {
    const n = readSync(from, buf, 0, buf.length, null);
    if (n === 0) return;
    for (let off = 0; off < n; ) off += writeSync(to, buf, off, n - off);
  }
}

/** A fresh name for a temporary entry: short, whatever the length of the name it will replace. */
export const tempName = (): string => `.fourwall-${randomBytes(6).toString("hex")}`;

/**
 * Removes `name` (a whole tree, any depth) inside `dirFd`: rm gets the fd as its fd 3 and walks
 * by fd; a symlink `name` is removed, never followed. Throws with rm's message.
 */
export function removeAt(dirFd: number, name: string): void {
  const r = spawnSync("rm", ["-rf", "--one-file-system", "--", `/proc/self/fd/3/${name}`], {
    stdio: ["ignore", "ignore", "pipe", dirFd],
    encoding: "utf8",
  });
  if (r.status !== 0) throw new Error(`rm ${name}: ${r.stderr?.trim() || r.error?.message}`);
}

/** O_PATH (Linux; Node does not export it): a handle on the inode itself, symlinks included. */
const O_PATH = 0o10000000;

/**
 * chmod of `name` itself, never through a symlink (Node has no lchmod on Linux): an O_PATH
 * handle, then chmod through /proc (what glibc's fchmodat(AT_SYMLINK_NOFOLLOW) does). A symlink
 * is left alone (its mode means nothing). Returns false when `name` is a symlink.
 */
export function chmodNoFollow(dirFd: number, name: string, mode: number): boolean {
  const fd = openSync(at(dirFd, name), O_PATH | constants.O_NOFOLLOW);
  try {
    if (fstatSync(fd).isSymbolicLink()) return false;
    chmodSync(at(fd), mode);
    return true;
  } finally {
    closeSync(fd);
  }
}

/** The sha256 (hex) of what is left to read on `fd`, read in 1 MiB steps. */
export function sha256OfFd(fd: number): string {
  const h = createHash("sha256");
  const buf = Buffer.allocUnsafe(1 << 20);
  for (let n = readSync(fd, buf, 0, buf.length, null); n > 0; n = readSync(fd, buf, 0, buf.length, null))
    h.update(buf.subarray(0, n));
  return h.digest("hex");
}
