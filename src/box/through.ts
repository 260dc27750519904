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
 * holding the workdir (its own overlay sits there), not one off the layers dir's mount (pure).
 */
export function planThrough(
  placeholders: readonly Placeholder[],
  workdir: string,
  exists: (p: string) => boolean,
  sameMount: (dir: string) => boolean,
): { groups: ThroughGroup[]; host: Placeholder[] } {
  const host: Placeholder[] = [];
  const picked: { dir: string; p: Placeholder }[] = [];
  for (const p of placeholders) {
    let dir = path.dirname(p.path);
    while (dir !== path.dirname(dir) && !exists(dir)) dir = path.dirname(dir);
    if (
      dir === path.dirname(dir) ||
      dir === workdir ||
      isUnder(workdir, dir) ||
      isUnder(dir, workdir) ||
      !sameMount(dir)
    )
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

/** The layers dir, and a test of whether a directory sits on its mount (the host's mountinfo, read once). */
export function throughHome(): { layers: string; sameMount: (dir: string) => boolean } {
  const layers = privateStateDir("layers");
  const entries = parseMountinfo(readFileSync("/proc/self/mountinfo", "utf8"));
  const home = mountOf(entries, realpathSync(layers));
  return {
    layers,
    sameMount: (dir) => {
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
): Through {
  const dir = mkdtempSync(path.join(layers, `${id}-through-`));
  chmodSync(dir, 0o700);
  onKill(runDir, `chmod -R u+rwx ${shq(dir)} 2>/dev/null; rm -rf --one-file-system -- ${shq(dir)}`);
  const args: string[] = [];
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
  });
  return { dir, args, hide: layers };
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

const shq = (s: string) => `'${s.replaceAll("'", "'\\''")}'`;

function lstatOrNull(p: string) {
  try {
    return lstatSync(p);
  } catch {
    return null;
  }
}
