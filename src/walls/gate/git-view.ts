import { lstatSync, readdirSync, readFileSync, type Stats } from "node:fs";
import path from "node:path";
import type { GitFiles } from "./git.js";

/**
 * The two sides of `.git` that git.ts compares, read from disk: the real workdir's (before the
 * run) and the layer over it (after: the upper dir where it has an entry, the real one below
 * where it has none, nothing under a whiteout or below an opaque directory). Never follows a
 * symlink: a ref, a log or a directory the box replaced by a symlink reads as absent (which asks).
 */

/** null when nothing is there; any other failure (EACCES, EIO) throws: not knowing is not absence. */
const lstatOrNull = (p: string): Stats | null => {
  try {
    return lstatSync(p);
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === "ENOENT" || code === "ENOTDIR") return null;
    throw error;
  }
};

const isWhiteout = (s: Stats) => s.isCharacterDevice() && s.rdev === 0;

/**
 * A regular file's bytes; undefined when there is none. A file that is there but cannot be read
 * throws (the caller then asks about everything): an unreadable old ref must not pass for absent,
 * or a branch moved back would look like a new one.
 */
function readRegular(p: string): Buffer | undefined {
  const s = lstatOrNull(p);
  if (!s?.isFile()) return undefined;
  return readFileSync(p);
}

function entries(p: string): { name: string; dir: boolean; whiteout: boolean }[] {
  const s = lstatOrNull(p);
  if (!s?.isDirectory()) return [];
  // a directory that cannot be listed throws, for the same reason as readRegular
  return readdirSync(p, { withFileTypes: true }).map((e) => ({
    name: e.name,
    dir: e.isDirectory(),
    whiteout: e.isCharacterDevice() && lstatOrNull(path.join(p, e.name))?.rdev === 0,
  }));
}

/** A plain `.git` directory (the real workdir's, or a repository in a unit test). */
export function dirGitFiles(gitDir: string): GitFiles {
  return {
    read: (rel) => readRegular(path.join(gitDir, rel)),
    list: (rel) => entries(path.join(gitDir, rel)).map(({ name, dir }) => ({ name, dir })),
  };
}

/**
 * `.git` as the box left it: `upper` over `lower` (both workdir roots), `opaque` the upper
 * directories overlayfs marked opaque (workdir-relative, as changeset.ts reads them).
 */
export function layerGitFiles(upper: string, lower: string, opaque: ReadonlySet<string>): GitFiles {
  /** Does the lower dir still show through at workdir-relative `rel`? */
  const lowerVisible = (rel: string): boolean => {
    const parts = rel.split("/");
    for (let i = 1; i <= parts.length; i++) {
      const a = parts.slice(0, i).join("/");
      const s = lstatOrNull(path.join(upper, a));
      if (!s) continue;
      if (!s.isDirectory()) return false; // a whiteout, or a file the box put in its place
      if (opaque.has(a)) return false;
    }
    return true;
  };
  const full = (rel: string) => (rel ? `.git/${rel}` : ".git");
  return {
    read(rel) {
      const r = full(rel);
      const s = lstatOrNull(path.join(upper, r));
      if (s) return isWhiteout(s) ? undefined : readRegular(path.join(upper, r));
      const parent = path.posix.dirname(r);
      return lowerVisible(parent) ? readRegular(path.join(lower, r)) : undefined;
    },
    list(rel) {
      const r = full(rel);
      const top = lstatOrNull(path.join(upper, r));
      if (top && !top.isDirectory()) return [];
      const out = new Map<string, boolean>();
      const hidden = new Set<string>();
      for (const e of entries(path.join(upper, r))) {
        if (e.whiteout) hidden.add(e.name);
        else out.set(e.name, e.dir);
      }
      if (lowerVisible(r))
        for (const e of entries(path.join(lower, r)))
          if (!hidden.has(e.name) && !out.has(e.name)) out.set(e.name, e.dir);
      return [...out].map(([name, dir]) => ({ name, dir }));
    },
  };
}
