import { spawnSync } from "node:child_process";
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
import { type MountEntry, mountOf, parseMountinfo } from "../core/mountinfo.js";
import { isUnder, nativeHelperPath } from "../core/paths.js";
import { privateStateDir } from "../core/state-dir.js";
import { onKill } from "../plan/session.js";
import type { Placeholder } from "../walls/filesystem/index.js";
import type { Identity, RuntimeName } from "../walls/isolation/index.js";

/**
 * Placeholders outside the workdir without a trace on the host (issue 12): a write-through overlay
 * over the writable directory that holds them. Its UPPER is the real directory itself (the box's
 * writes land there directly, at once), its LOWER holds only the placeholders (in fourwall's 0700
 * layers dir), so a placeholder exists in the box's mount namespace alone and bwrap's read-only
 * bind stands on it there. overlayfs needs its work dir on the upper's own mount: only a directory
 * on the same mount as fourwall's layers dir can have one; the rest still stand on the host.
 *
 * Who mounts it depends on the runtime and the launch mode (`throughCarrier`).
 */

/**
 * Who mounts the write-through overlays (pure): "overlay", fourwall-overlay in the box's own user
 * namespace (user mode; namespaces, and gvisor whose runsc starts inside it); "drop", fourwall-drop
 * as root in the box's private mount namespace, over an idmapped clone (root mode, same runtimes);
 * "host", fourwall on the host under its run dir, the overlay then being the bind source (docker,
 * root only: the daemon binds from the host's namespace). The microVM as namespaces: its QEMU runs
 * in a namespaces box (the same launcher, `vmLaunchSpec`), whose view of the directory 9p exports
 * to the guest, where the guest's bwrap binds the placeholder read-only. The rest stand on the host.
 */
export type ThroughCarrier = "overlay" | "drop" | "host";
export function throughCarrier(runtime: RuntimeName, mode: Identity["mode"]): ThroughCarrier | undefined {
  if (runtime === "namespaces" || runtime === "gvisor" || runtime === "vm")
    return mode === "user" ? "overlay" : "drop";
  if (runtime === "docker" && mode === "root") return "host";
  return undefined;
}

/**
 * As whom the box writes `dir` in root mode (pure): the owner of the innermost idmapped path
 * holding it (HOME, a writable path), else the box itself. Never the directory's own owner: that
 * would let the box write as someone the plan did not map.
 */
export function throughOwner(dir: string, identity: Identity): { uid: number; gid: number } {
  if (identity.mode === "user") return { uid: identity.uid, gid: identity.gid };
  const m = identity.idmaps
    .filter((i) => i.path === dir || isUnder(dir, i.path))
    .sort((a, b) => b.path.length - a.path.length)[0];
  return m ? { uid: m.ownerUid, gid: m.ownerGid } : { uid: identity.uid, gid: identity.gid };
}

/** One overlay's place in fourwall's directory: over `dir`, SUB holding lower/ and work/. */
export interface ThroughMount {
  dir: string;
  sub: string;
}

/**
 * The helper's arguments (pure): fourwall-overlay's `--through DIR SUB`, or fourwall-drop's
 * `--through OWNER_UID:OWNER_GID:SUB DIR`; then `--cover SRC DST` for either.
 */
export function throughArgs(
  carrier: ThroughCarrier,
  mounts: readonly ThroughMount[],
  covers: readonly { src: string; dst: string }[],
  identity: Identity,
): string[] {
  if (carrier === "host") return [];
  const through = mounts.flatMap(({ dir, sub }) => {
    if (carrier === "overlay") return ["--through", dir, sub];
    const o = throughOwner(dir, identity);
    return ["--through", `${o.uid}:${o.gid}:${sub}`, dir];
  });
  return [...through, ...covers.flatMap((c) => ["--cover", c.src, c.dst])];
}

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
 * The gate's agent settings files the agent does not have yet, outside the workdir, as placeholders
 * (pure): their mount points (the settings file is bound read-only over each) are carried like
 * the policy's own, unless the policy already names the path.
 */
export function settingsMountPoints(
  plan: {
    gate: { settings: readonly { target: string }[] };
    filesystem: { cwd: string; placeholders: readonly Placeholder[] };
  },
  exists: (p: string) => boolean,
): Placeholder[] {
  const named = new Set(plan.filesystem.placeholders.map((p) => p.path));
  return [...new Set(plan.gate.settings.map((f) => f.target))]
    .filter((t) => !named.has(t) && !exists(t) && !isUnder(t, plan.filesystem.cwd))
    .map((t) => ({ path: t, kind: "file", content: "" }));
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

/**
 * Whether a write-through overlay over `dir` can have its work dir in `layers` (pure, on the host's
 * mountinfo, paths real). overlayfs wants both on one mount. fourwall-overlay (user mode) takes them
 * as they are mounted: `dir` must sit on the layers dir's own mount. fourwall-drop (root mode, and
 * for docker) clones the mount holding both (the one at their common ancestor, non-recursively) and
 * walks it: `dir` must be on that mount, and what it holds at `layers` must be what the host shows
 * there (the same mount, or a bind of that very directory: root's layers dir is bound onto itself
 * nosuid,nodev). Never over the layers dir itself or a directory above it (overlayfs keeps its work
 * dir out of the upper's tree), nor inside it.
 */
export function carries(
  entries: readonly MountEntry[],
  dir: string,
  layers: string,
  carrier: ThroughCarrier,
): boolean {
  if (dir === layers || isUnder(layers, dir) || isUnder(dir, layers)) return false;
  const m = mountOf(entries, dir);
  const l = mountOf(entries, layers);
  if (!m || !l) return false;
  if (carrier === "overlay") return m === l;
  let common = dir;
  while (!(layers === common || isUnder(layers, common))) common = path.dirname(common);
  const fsPath = (e: MountEntry, p: string) => path.join(e.root, path.relative(e.mountPoint, p));
  return mountOf(entries, common) === m && l.device === m.device && fsPath(l, layers) === fsPath(m, layers);
}

/** The layers dir, and whether a directory can carry a write-through overlay (`carries`, on the host's mountinfo read once). */
export function throughHome(carrier: ThroughCarrier): { layers: string; canCarry: (dir: string) => boolean } {
  const layers = privateStateDir("layers");
  const entries = parseMountinfo(readFileSync("/proc/self/mountinfo", "utf8"));
  const real = realpathSync(layers);
  return {
    layers,
    canCarry: (dir) => {
      try {
        const at = realpathSync(dir);
        // fourwall-drop walks and mounts without following a symlink: a path through one stays on the host
        if (carrier !== "overlay" && at !== dir) return false;
        return carries(entries, at, real, carrier);
      } catch {
        return false;
      }
    },
  };
}

export interface Through {
  /** fourwall's directory of this box's overlays (0700, in the layers dir). */
  dir: string;
  carrier: ThroughCarrier;
  /** The helper's arguments (throughArgs): fourwall-overlay's, or fourwall-drop's. */
  args: string[];
  /** Each overlay's directory and its SUB (docker mounts them itself). */
  mounts: ThroughMount[];
  /** The directory fourwall-overlay hides in the box (the layers dir). */
  hide: string;
  /** When the overlays were stood (unix seconds): what overlayfs marked since is cleared after. */
  since: number;
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
  carrier: ThroughCarrier,
  identity: Identity,
): Through {
  const dir = mkdtempSync(path.join(layers, `${id}-through-`));
  chmodSync(dir, 0o700);
  const since = Math.floor(Date.now() / 1000) - 1;
  for (const g of groups)
    onKill(runDir, `${clearOpaqueCommand(g.dir, since).map(shq).join(" ")} 2>/dev/null`);
  onKill(runDir, `chmod -R u+rwx ${shq(dir)} 2>/dev/null; rm -rf --one-file-system -- ${shq(dir)}`);
  const mounts: ThroughMount[] = [];
  const covers: { src: string; dst: string }[] = [];
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
    mounts.push({ dir: g.dir, sub });
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
        if (real) covers.push({ src: mine, dst: hostFile });
      }
    }
  });
  return { dir, carrier, args: throughArgs(carrier, mounts, covers, identity), mounts, hide: layers, since };
}

/**
 * overlayfs marks a directory the box renames into a merged one (the real directory, or one above
 * a placeholder) opaque (`user.overlay.opaque`); fourwall-overlay takes the mark off what changed
 * since the overlays were stood.
 */
const clearOpaqueCommand = (dir: string, since: number) => [
  nativeHelperPath("overlay"),
  "--clear-opaque",
  dir,
  String(since),
];

/**
 * Clears overlayfs's marks on the real directories, then removes the overlays' directory (the box
 * is dead); overlayfs's work/work may have no permissions.
 */
export function removeThrough(t: Through): void {
  for (const { dir } of t.mounts) {
    const [helper, ...args] = clearOpaqueCommand(dir, t.since);
    spawnSync(helper!, args, { stdio: ["ignore", "ignore", "inherit"], timeout: 30_000 });
  }
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
