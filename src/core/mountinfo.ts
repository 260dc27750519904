import { readFileSync, realpathSync } from "node:fs";
import { isUnder } from "./paths.js";

/** One line of /proc/self/mountinfo, as far as fourwall needs it. */
export interface MountEntry {
  mountPoint: string;
  /** The directory of its filesystem shown there (field 4: "/" unless a bind of a subdirectory). */
  root: string;
  /** major:minor of its filesystem (field 3). */
  device: string;
  /** Per-mount options (field 6): rw/ro, nosuid, nodev, noexec, … */
  options: Set<string>;
  fsType: string;
}

/** mountinfo escapes space, tab, newline and backslash as \ooo. */
const decodeOctal = (s: string) =>
  s.replace(/\\([0-7]{3})/g, (_, o: string) => String.fromCharCode(Number.parseInt(o, 8)));

/** Parses mountinfo text (pure). */
export function parseMountinfo(text: string): MountEntry[] {
  const out: MountEntry[] = [];
  for (const line of text.split("\n")) {
    const f = line.split(" ");
    const dash = f.indexOf("-");
    if (f.length < 10 || dash < 6) continue;
    out.push({
      mountPoint: decodeOctal(f[4]!),
      root: decodeOctal(f[3]!),
      device: f[2]!,
      options: new Set(f[5]!.split(",")),
      fsType: f[dash + 1]!,
    });
  }
  return out;
}

/** The mount `path` lives on: the last-mounted entry with the longest mount point above it (pure). */
export function mountOf(entries: readonly MountEntry[], path: string): MountEntry | undefined {
  let best: MountEntry | undefined;
  for (const e of entries)
    if (isUnder(path, e.mountPoint) && (!best || e.mountPoint.length >= best.mountPoint.length)) best = e;
  return best;
}

/** The mount a host path lives on now (symlinks resolved). */
export function hostMountOf(path: string): MountEntry | undefined {
  return mountOf(parseMountinfo(readFileSync("/proc/self/mountinfo", "utf8")), realpathSync(path));
}
