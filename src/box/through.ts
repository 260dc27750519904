import {
  chmodSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  realpathSync,
  rmSync,
  writeFileSync,
} from "node:fs";
import path from "node:path";
import { mountOf, parseMountinfo } from "../core/mountinfo.js";
import { isUnder } from "../core/paths.js";
import { privateStateDir } from "../core/state-dir.js";
import { onKill } from "../plan/session.js";
import type { Placeholder } from "../walls/filesystem/index.js";

/**
 * Placeholders outside the workdir without a trace on the host (issue 12): a write-through overlay
 * over the writable directory that holds them. Its UPPER is the real directory itself (the box's
 * writes land there directly, at once), its LOWER holds only the placeholders (in fourwall's 0700
 * layers dir), so a placeholder exists in the box's mount namespace alone and bwrap's read-only
 * bind stands on it there. overlayfs needs its work dir on the upper's own mount: only a directory
 * on the same mount as fourwall's layers dir can have one; the rest still stand on the host.
 */

/** One write-through overlay: over `dir` (an existing directory), carrying `placeholders`. */
export interface ThroughGroup {
  dir: string;
  placeholders: Placeholder[];
}

/**
 * Which placeholders (those not in the gate's layer) go into a write-through overlay, and over which
 * directory: the nearest existing one above each, merged into the highest such directory; not one
 * holding the workdir (an overlay's upper cannot be another overlay), not one `canCarry` refuses
 * (off the layers dir's mount). Those inside the workdir go into one over the workdir itself when
 * `carryWorkdir` (a gate that holds nothing, or no gate layer), else stay on the host (pure).
 */
export function planThrough(
  placeholders: readonly Placeholder[],
  workdir: string,
  exists: (p: string) => boolean,
  canCarry: (dir: string) => boolean,
  carryWorkdir = false,
): { groups: ThroughGroup[]; host: Placeholder[] } {
  const host: Placeholder[] = [];
  const picked: { dir: string; p: Placeholder }[] = [];
  for (const p of placeholders) {
    if (p.path !== workdir && isUnder(p.path, workdir)) {
      if (carryWorkdir) picked.push({ dir: workdir, p });
      else host.push(p);
      continue;
    }
    let dir = path.dirname(p.path);
    while (dir !== path.dirname(dir) && !exists(dir)) dir = path.dirname(dir);
    if (dir === path.dirname(dir) || isUnder(workdir, dir) || isUnder(dir, workdir) || !canCarry(dir))
      host.push(p);
    else picked.push({ dir, p });
  }
  const groups: ThroughGroup[] = [];
  for (const { dir, p } of [...picked].sort((a, b) => a.dir.length - b.dir.length)) {
    const group = groups.find((g) => g.dir === dir || isUnder(dir, g.dir));
    if (group) group.placeholders.push(p);
    else groups.push({ dir, placeholders: [p] });
  }
  return { groups, host };
}

/**
 * The box's git excludes over the workdir: the host's lines plus one per placeholder in its
 * worktree (so the box's `git add -A` stages none), or nothing to add (pure).
 */
export function throughExclude(group: ThroughGroup, hostExclude: string): string | undefined {
  const worktree = group.placeholders
    .map((p) => path.relative(group.dir, p.path))
    .filter((r) => r !== ".git" && !r.startsWith(".git/"));
  if (worktree.length === 0) return undefined;
  const lines = worktree.map(excludeLine).join("\n");
  const sep = hostExclude && !hostExclude.endsWith("\n") ? "\n" : "";
  return `${hostExclude}${sep}# fourwall: the box's read-only placeholders (not on the host)\n${lines}\n`;
}

/** The layers dir, and a test of whether a directory sits on its mount (the host's mountinfo, read once). */
export function throughHome(): { layers: string; canCarry: (dir: string) => boolean } {
  const layers = privateStateDir("layers");
  const entries = parseMountinfo(readFileSync("/proc/self/mountinfo", "utf8"));
  const home = mountOf(entries, realpathSync(layers));
  return {
    layers,
    canCarry: (dir) => {
      try {
        const real = realpathSync(dir);
        // overlayfs keeps its work dir out of the upper's tree: never over the layers dir itself
        return home !== undefined && mountOf(entries, real) === home && !isUnder(realpathSync(layers), real);
      } catch {
        return false;
      }
    },
  };
}

export interface Through {
  /** fourwall's directory of this box's overlays (0700, in the layers dir). */
  dir: string;
  /** fourwall-overlay's arguments: --through DIR SUB … */
  args: string[];
  /** The directory fourwall-overlay hides in the box (the layers dir). */
  hide: string;
}

/**
 * Makes each overlay's lower (the placeholders, and copies of the real directories above them with
 * their modes) and work dir, in a 0700 directory of fourwall's; the reaper removes it after a
 * SIGKILL (the overlays themselves die with the box's mount namespace).
 */
export function standThrough(
  groups: readonly ThroughGroup[],
  layers: string,
  id: string,
  runDir: string,
  workdir: string,
): Through {
  const dir = mkdtempSync(path.join(layers, `${id}-through-`));
  chmodSync(dir, 0o700);
  onKill(runDir, `chmod -R u+rwx ${shq(dir)} 2>/dev/null; rm -rf --one-file-system -- ${shq(dir)}`);
  const args: string[] = [];
  const covers: string[] = [];
  groups.forEach((g, i) => {
    const sub = path.join(dir, String(i));
    const lower = path.join(sub, "lower");
    mkdirSync(sub, { mode: 0o700 });
    mkdirSync(lower, { mode: 0o700 });
    mkdirSync(path.join(sub, "work"), { mode: 0o700 });
    for (const p of g.placeholders) {
      const rel = path.relative(g.dir, p.path);
      let sofar = "";
      for (const part of rel.split("/").slice(0, -1)) {
        sofar = sofar ? `${sofar}/${part}` : part;
        const at = path.join(lower, sofar);
        if (lstatOrNull(at)) continue;
        mkdirSync(at, { mode: (lstatOrNull(path.join(g.dir, sofar))?.mode ?? 0o755) & 0o7777 });
      }
      const at = path.join(lower, rel);
      if (lstatOrNull(at)) continue;
      if (p.kind === "dir") mkdirSync(at, { mode: 0o755 });
      else writeFileSync(at, p.content, { flag: "wx", mode: 0o644 });
    }
    args.push("--through", g.dir, sub);
    // the workdir's: the box's git must not see its placeholders (`.git/info` is read-only in the box)
    const info = path.join(workdir, ".git", "info");
    if (g.dir === workdir && lstatOrNull(info)?.isDirectory()) {
      const hostFile = path.join(info, "exclude");
      const real = lstatOrNull(hostFile);
      const text = throughExclude(g, real?.isFile() ? readFileSync(hostFile, "utf8") : "");
      if (text && (!real || real.isFile())) {
        mkdirSync(path.join(lower, ".git", "info"), { recursive: true, mode: 0o755 });
        const mine = path.join(lower, ".git", "info", "exclude");
        writeFileSync(mine, text, { mode: 0o644 });
        // a real one shadows the lower's: bound over it instead
        if (real) covers.push("--cover", mine, hostFile);
      }
    }
  });
  return { dir, args: [...args, ...covers], hide: layers };
}

/** Removes the overlays' directory (the box is dead); overlayfs's work/work may have no permissions. */
export function removeThrough(t: Through): void {
  try {
    for (const sub of readdirSync(t.dir))
      for (const w of readdirSync(path.join(t.dir, sub, "work")))
        chmodSync(path.join(t.dir, sub, "work", w), 0o700);
  } catch {
    // gone already, or rm below reports nothing either: the reaper's on-kill line is the backstop
  }
  rmSync(t.dir, { recursive: true, force: true });
}

/** A path as one literal, anchored gitignore line (the gate layer's rule, placeholders.ts: kept here so the gate module loads lazily). */
const excludeLine = (rel: string): string => `/${rel.replace(/[\\*?[\]!#]/g, (c) => `\\${c}`)}`;

const shq = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;

function lstatOrNull(p: string) {
  try {
    return lstatSync(p);
  } catch {
    return null;
  }
}
