import {
  chownSync,
  closeSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  rmdirSync,
  unlinkSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import { isUnder } from "../../core/paths.js";
import type { Placeholder } from "../filesystem/index.js";
import { at, inDir, openDir, splitRel } from "./fsat.js";

/**
 * Placeholders without a trace on the host (issue 12). A placeholder is a read-only mount point
 * for a persistence file that does not exist yet (`.mcp.json`, `.envrc`, `.git/hooks`): a mount
 * needs a name to stand on. With the gate's layer over the workdir, that name is made in the
 * layer's upper directory, before the box starts: the box (whose workdir is the overlay) sees it
 * and bwrap mounts over it there, while the real workdir never has it — no `git status` noise on
 * the host, nothing for another box or a crash to leave behind. The box's own git does not see
 * them either: the layer also carries a `.git/info/exclude` (the host's own lines plus one per
 * placeholder; `info/` is read-only in the box). After the box is dead they are taken out of the
 * layer again, so neither the live layer nor the end review ever sees them as the box's work.
 */

/** The placeholders the layer carries: those inside the workdir (the rest stand on the host). */
export const placeholdersInLayer = (all: readonly Placeholder[], workdir: string): Placeholder[] =>
  all.filter((p) => p.path !== workdir && isUnder(p.path, workdir));

/** A path as one literal line of a gitignore file (no pattern characters, anchored at the root). */
export const excludeLine = (rel: string): string => `/${rel.replace(/[\\*?[\]!#]/g, (c) => `\\${c}`)}`;

export interface StoodInLayer {
  /**
   * What fourwall put in the upper directory, relative to the workdir, in order (parents first):
   * placeholders, and "mirror" directories (copies of the real ones above a placeholder).
   */
  entries: { rel: string; kind: "file" | "dir" | "mirror"; mode?: number }[];
  /** The same, for the live layer and the review: never the box's work. */
  hidden: Set<string>;
}

/** sh lines that do what clearFromLayer does, for the reaper's on-kill script (fourwall is gone). */
export function clearFromLayerScript(
  upper: string,
  stood: StoodInLayer,
  quote: (s: string) => string,
): string {
  return [...stood.entries]
    .reverse()
    .map(({ rel, kind }) => {
      const p = quote(path.join(upper, rel));
      return kind === "file" ? `rm -f -- ${p}` : `rmdir -- ${p} 2>/dev/null`;
    })
    .join("; ");
}

/**
 * Makes the placeholders (and the directories above them, as overlayfs would copy them up: the
 * real directory's mode, the box's uid as root) in `upper`. Runs before the box starts: nothing
 * else is in the layer yet.
 */
export function standInLayer(o: {
  upper: string;
  workdir: string;
  placeholders: readonly Placeholder[];
  /**
   * Who owns what the overlay writes, as its copy-up would: root mode, "box" (the box uid: the
   * lower is idmapped to it) or "lower" (docker: the overlay is mounted on the host over the real
   * workdir, so a copy keeps the real owner); user mode: nothing to change.
   */
  box?: { uid: number; gid: number };
  ownLikeLower?: boolean;
}): StoodInLayer {
  const stood: StoodInLayer = { entries: [], hidden: new Set() };
  const own = (p: string) => {
    if (o.ownLikeLower) {
      // the real entry of the same name, or (a placeholder) the nearest real directory above it
      let real = path.join(o.workdir, path.relative(o.upper, p));
      let s = lstatOrNull(real);
      while (!s && real !== o.workdir && real !== path.dirname(real)) {
        real = path.dirname(real);
        s = lstatOrNull(real);
      }
      s ??= lstatSync(o.workdir);
      chownSync(p, s.uid, s.gid);
    } else if (o.box) chownSync(p, o.box.uid, o.box.gid);
  };
  const mirrorDirs = (rel: string) => {
    let sofar = "";
    for (const part of splitRel(rel).slice(0, -1)) {
      sofar = sofar ? `${sofar}/${part}` : part;
      const up = path.join(o.upper, sofar);
      if (lstatOrNull(up)) continue;
      const mode = lstatSync(path.join(o.workdir, sofar)).mode & 0o7777;
      mkdirSync(up, { mode });
      own(up);
      stood.entries.push({ rel: sofar, kind: "mirror", mode });
    }
  };
  const stand = (rel: string, kind: "file" | "dir", content: string) => {
    mirrorDirs(rel);
    const p = path.join(o.upper, rel);
    if (kind === "dir") mkdirSync(p, { mode: 0o755 });
    else writeFileSync(p, content, { flag: "wx", mode: 0o644 });
    own(p);
    stood.entries.push({ rel, kind });
    stood.hidden.add(rel);
  };
  const inLayer = placeholdersInLayer(o.placeholders, o.workdir);
  for (const p of inLayer) stand(path.relative(o.workdir, p.path), p.kind, p.content);
  // the box's git: the placeholders in its worktree are not untracked files (`git add -A`)
  const worktree = inLayer.map((p) => path.relative(o.workdir, p.path)).filter((r) => !r.startsWith(".git/"));
  if (worktree.length > 0 && lstatOrNull(path.join(o.workdir, ".git"))?.isDirectory()) {
    const rel = ".git/info/exclude";
    const host = lstatOrNull(path.join(o.workdir, rel))?.isFile()
      ? readFileSync(path.join(o.workdir, rel), "utf8")
      : "";
    const lines = worktree.map(excludeLine).join("\n");
    const text = `${host}${host && !host.endsWith("\n") ? "\n" : ""}# fourwall: the box's read-only placeholders (not on the host)\n${lines}\n`;
    if (lstatOrNull(path.join(o.workdir, ".git", "info")) || stood.hidden.has(".git/info"))
      stand(rel, "file", text);
  }
  return stood;
}

/**
 * Takes the placeholders out of the layer again (the box is dead, the layer frozen), by fd, never
 * through a symlink, and the directories made above them while they hold nothing else (copies of
 * the real ones: no change either way). Returns what could not be removed (kept, and then seen by
 * the review).
 */
export function clearFromLayer(upper: string, stood: StoodInLayer): string[] {
  const failures: string[] = [];
  const root = openDir(upper);
  try {
    for (const { rel, kind, mode } of [...stood.entries].reverse()) {
      const parts = splitRel(rel);
      try {
        inDir(root, parts.slice(0, -1), (d) => {
          const name = at(d, parts.at(-1)!);
          if (kind === "dir") rmdirSync(name);
          else if (kind === "file" && lstatSync(name).isFile()) unlinkSync(name);
          else if (kind === "mirror") {
            // only while it still holds nothing of the box's and has the real one's mode (no change)
            const s = lstatSync(name);
            if (s.isDirectory() && (s.mode & 0o7777) === mode && readdirSync(name).length === 0)
              rmdirSync(name);
          }
        });
      } catch (error) {
        if (kind !== "mirror") failures.push(`${rel}: ${(error as Error).message}`);
      }
    }
  } finally {
    closeSync(root);
  }
  return failures;
}

function lstatOrNull(p: string) {
  try {
    return lstatSync(p);
  } catch {
    return null;
  }
}
