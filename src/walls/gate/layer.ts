import { spawnSync } from "node:child_process";
import {
  chmodSync,
  chownSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  rmSync,
} from "node:fs";
import path from "node:path";
import { WallError } from "../../core/errors.js";
import { hostMountOf, type MountEntry } from "../../core/mountinfo.js";
import { privateStateDir } from "../../core/state-dir.js";

/**
 * Where the copy-on-write layer of a box lives, and how the box's mount helper reaches it.
 *
 * The layer holds what the box wrote: setuid files, world-writable directories, copies of files
 * from a workdir under a 0700 directory. So nobody but fourwall may walk to it:
 *   - it sits in fourwall's private state dir (/run/fourwall/layers as root, the user's own 0700
 *     state dir otherwise), never in /tmp: every directory above upper/ and work/ is 0700 and owned
 *     by fourwall's uid, whatever modes the box gives upper/ and what is in it;
 *   - root mode: the box's uid cannot walk there either; fourwall-drop opens the box's layer
 *     directory as root on fd LAYER_FD and the unprivileged fourwall-overlay enters it by fd. So a
 *     hijacked root box (all share the box uid) cannot reach another box's layer by any path;
 *   - user mode: the box has the user's uid, so fourwall-overlay hides the layers' directory under
 *     an empty tmpfs in the box's mount namespace (--hide);
 *   - the overlay is given /proc/self/fd/N: the box's mountinfo names no host path.
 * After the box is dead, `freezeLayer` re-owns upper/ to fourwall, mode 0700, before the review.
 */

/** The fd fourwall-drop opens the box's layer directory on (high: clear of the runtimes' own 3..9). */
export const LAYER_FD = 100;

export interface Layer {
  /** The box's own directory (0700; the box uid's in root mode, in a directory only root walks). */
  dir: string;
  lower: string;
  upper: string;
  work: string;
  /** fourwall-overlay's arguments before `--`. */
  helperArgs: string[];
  /** fourwall-drop's arguments (root mode): open the layer as root, on LAYER_FD. */
  dropArgs: string[];
}

/** The directory of every layer: 0700 and fourwall's own, or an error (never a weaker one). */
export function layersDir(): string {
  const dir = privateStateDir("layers");
  const s = lstatSync(dir);
  if (!s.isDirectory() || s.uid !== process.getuid!())
    throw new Error(`${dir} is not fourwall's own directory`);
  if ((s.mode & 0o777) !== 0o700) chmodSync(dir, 0o700);
  if (process.getuid!() === 0) ensureNosuidNodev(dir);
  return dir;
}

/** Whether a mount's options keep setuid files and device nodes inert (pure). */
export const inertMount = (m: MountEntry | undefined): boolean =>
  m?.options.has("nosuid") === true && m.options.has("nodev");

/**
 * Root mode: the layers directory sits on a nosuid,nodev mount. A setuid file or a device node the
 * box leaves in its layer then means nothing on the host, even to a process that could walk there
 * (nobody but root can). /run is usually a plain directory of / (setuid allowed: measured here), so
 * fourwall binds the layers directory onto itself, nosuid,nodev (a tmpfs would hold every change-set
 * in memory). The bind stays until reboot; every later box finds it and does nothing.
 */
export function ensureNosuidNodev(dir: string): void {
  if (inertMount(hostMountOf(dir))) return;
  const run = (args: string[]) => spawnSync("mount", args, { encoding: "utf8" });
  const mounted = hostMountOf(dir)?.mountPoint === dir;
  const bind = mounted ? { status: 0, stderr: "" } : run(["--bind", dir, dir]);
  const remount = bind.status === 0 ? run(["-o", "remount,bind,nosuid,nodev", dir]) : bind;
  if (remount.status !== 0 || !inertMount(hostMountOf(dir)))
    throw new WallError(
      "gate",
      `cannot make ${dir} a nosuid,nodev mount: ${remount.stderr?.trim() || "mount failed"}`,
      `mount --bind ${dir} ${dir} && mount -o remount,bind,nosuid,nodev ${dir}`,
    );
}

/**
 * The arguments the helpers get (pure). Root mode: fds opened by fourwall-drop. User mode: paths
 * the helper opens itself (the user owns them), and the layers' directory to hide.
 */
export function layerLaunchArgs(
  l: { lower: string; dir: string; parent: string },
  mode: "root" | "user",
): { helperArgs: string[]; dropArgs: string[] } {
  if (mode === "root")
    return { helperArgs: [l.lower, `fd:${LAYER_FD}`], dropArgs: ["--fd", `${LAYER_FD}:${l.dir}`] };
  return { helperArgs: ["--hide", l.parent, l.lower, l.dir], dropArgs: [] };
}

/**
 * Makes a box's layer. `box` (root mode) owns its directory, upper/ and work/ (the overlay writes
 * there with the box's credentials); the directory above stays fourwall's, 0700.
 */
export function makeLayer(o: {
  id: string;
  lower: string;
  mode: "root" | "user";
  box?: { uid: number; gid: number };
}): Layer {
  const parent = layersDir();
  const dir = mkdtempSync(path.join(parent, `${o.id}-`));
  chmodSync(dir, 0o700);
  const upper = path.join(dir, "upper");
  const work = path.join(dir, "work");
  mkdirSync(upper, { mode: 0o700 });
  mkdirSync(work, { mode: 0o700 });
  if (o.box) for (const d of [dir, upper, work]) chownSync(d, o.box.uid, o.box.gid);
  // The overlay's root takes upper/'s mode: keep the workdir's own (its parent stays 0700).
  chmodSync(upper, lstatSync(o.lower).mode & 0o777);
  return { dir, lower: o.lower, upper, work, ...layerLaunchArgs({ lower: o.lower, dir, parent }, o.mode) };
}

/**
 * Before the review (every box process is dead): upper/ becomes fourwall's, 0700, so nothing with
 * the box's uid could change what is reviewed, even through a handle it might still hold.
 */
export function freezeLayer(layer: Pick<Layer, "dir" | "upper" | "work">): void {
  for (const d of [layer.dir, layer.upper, layer.work]) {
    chownSync(d, process.getuid!(), process.getgid!());
    chmodSync(d, 0o700);
  }
}

/**
 * Removes a layer after its change-set was dealt with. rm and chmod walk by fd (any depth, any
 * name length); overlay's work/ may hold a directory without permissions. Never throws: a layer
 * that cannot be removed is reported and left, the run's exit status does not change.
 */
export function removeLayer(dir: string): string | undefined {
  // The usual case, a box that changed nothing (upper/ empty): a few empty directories, removed in
  // process (no rm to fork on every run's way out); anything else goes to rm and chmod below.
  try {
    if (readdirSync(path.join(dir, "upper")).length === 0) rmSync(dir, { recursive: true, force: true });
    if (!existsSync(dir)) return undefined;
  } catch {
    // a directory without permissions in work/, or upper/ unreadable: rm and chmod deal with it
  }
  const rm = () => spawnSync("rm", ["-rf", "--one-file-system", "--", dir], { stdio: "ignore" });
  if (rm().status === 0 && !existsSync(dir)) return undefined;
  spawnSync("chmod", ["-R", "u+rwx", "--", dir], { stdio: "ignore" });
  rm();
  return existsSync(dir) ? `could not remove the copy-on-write layer ${dir}` : undefined;
}
