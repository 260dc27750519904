import { closeSync, fstatSync, lstatSync, readlinkSync, readSync } from "node:fs";
import { at, inDir, openDir, openFileAt, sha256OfFd, splitRel } from "./fsat.js";
import type { FileFacts } from "./types.js";

/**
 * What one entry of a tree is, read through directory fds (fsat.ts: no symlink followed on the
 * way): kind, mode, and for a file its size and sha256, for a symlink its target. Recorded for
 * both sides of a change at review, so a kept change-set can tell later whether the host's file
 * is still the one the human saw (`changes apply` refuses to clobber one that moved on).
 */
export function factsAt(rootFd: number, rel: string): FileFacts {
  const parts = splitRel(rel);
  try {
    return inDir(rootFd, parts.slice(0, -1), (d) => {
      const name = parts.at(-1)!;
      const s = lstatSync(at(d, name));
      const mode = (s.mode & 0o7777).toString(8);
      if (s.isSymbolicLink()) return { kind: "symlink", mode, target: readlinkSync(at(d, name)) };
      if (s.isDirectory()) return { kind: "dir", mode };
      if (!s.isFile()) return { kind: s.isCharacterDevice() && s.rdev === 0 ? "missing" : "other", mode };
      let fd: number;
      try {
        fd = openFileAt(d, name);
      } catch {
        // unreadable to fourwall (a user-mode box made it mode 000): no hash, and no clobbering it later
        return { kind: "file", mode, size: s.size };
      }
      try {
        return { kind: "file", mode, size: fstatSync(fd).size, sha256: sha256OfFd(fd) };
      } finally {
        closeSync(fd);
      }
    });
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return { kind: "missing" };
    if (code === "ELOOP") return { kind: "other" }; // a symlink on the way: not the entry reviewed
    throw error;
  }
}

/** factsAt for a tree given by path. */
export function factsOf(root: string, rel: string): FileFacts {
  const fd = openDir(root);
  try {
    return factsAt(fd, rel);
  } finally {
    closeSync(fd);
  }
}

/** The first `limit` bytes of a regular file (and whether there was more), or undefined. */
export function readHead(
  rootFd: number,
  rel: string,
  limit: number,
): { data: Buffer; size: number } | undefined {
  const parts = splitRel(rel);
  try {
    return inDir(rootFd, parts.slice(0, -1), (d) => {
      const fd = openFileAt(d, parts.at(-1)!);
      try {
        const size = fstatSync(fd).size;
        const data = Buffer.alloc(Math.min(size, limit));
        let off = 0;
        while (off < data.length) {
          const n = readSync(fd, data, off, data.length - off, null);
          if (n === 0) break;
          off += n;
        }
        return { data: data.subarray(0, off), size };
      } finally {
        closeSync(fd);
      }
    });
  } catch {
    return undefined;
  }
}

/** Two facts name the same content (and kind, mode, target): the host file did not move on. */
export const sameFacts = (a: FileFacts | undefined, b: FileFacts): boolean =>
  a !== undefined &&
  a.kind === b.kind &&
  (a.kind !== "file" || a.sha256 !== undefined) &&
  a.sha256 === b.sha256 &&
  a.size === b.size &&
  a.target === b.target &&
  (a.kind === "missing" || a.mode === b.mode);
