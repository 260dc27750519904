import { lstatSync, mkdirSync, realpathSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { WallError } from "./errors.js";

/**
 * A directory of fourwall's state (box records, workdir locks), private to the user: the first of
 * /run/fourwall (root), $XDG_RUNTIME_DIR, ~/.local/state that can be made, else /tmp/fourwall-UID
 * (used only if it is the user's own, mode 0700: another user could have planted it).
 * FOURWALL_STATE_DIR, when set, is used instead (checked: checkStateDirOverride).
 */
export function privateStateDir(name: "locks" | "boxes" | "layers" | "uids"): string {
  const uid = process.getuid!();
  const override = process.env[STATE_DIR_VAR];
  if (override) {
    checkStateDirOverride(override, uid);
    mkdirSync(path.join(override, name), { recursive: true, mode: 0o700 });
    return path.join(override, name);
  }
  const candidates =
    uid === 0
      ? [`/run/fourwall/${name}`]
      : [
          ...(process.env.XDG_RUNTIME_DIR ? [path.join(process.env.XDG_RUNTIME_DIR, "fourwall", name)] : []),
          path.join(os.homedir(), ".local", "state", "fourwall", name),
        ];
  for (const dir of candidates) {
    try {
      mkdirSync(dir, { recursive: true, mode: 0o700 });
      return dir;
    } catch {
      // not writable (a HOME that is not the user's): try the next
    }
  }
  const tmp = path.join(os.tmpdir(), `fourwall-${uid}`);
  try {
    mkdirSync(tmp, { mode: 0o700 });
  } catch {
    // exists already: checked below
  }
  const stat = lstatSync(tmp);
  if (!stat.isDirectory() || stat.uid !== uid || (stat.mode & 0o077) !== 0) {
    throw new WallError(
      "filesystem",
      `${tmp} is not a private directory of uid ${uid}`,
      `remove ${tmp}, or set XDG_RUNTIME_DIR`,
    );
  }
  mkdirSync(path.join(tmp, name), { recursive: true, mode: 0o700 });
  return path.join(tmp, name);
}

/** Puts every private state path (and so the box daemon) in a dir of the caller's: tests isolate with it. */
export const STATE_DIR_VAR = "FOURWALL_STATE_DIR";

/**
 * FOURWALL_STATE_DIR is taken only when nobody but the caller (and root) can change what is in it:
 * an absolute path to an existing directory (not a symlink) of the caller's, mode 0700, each
 * directory above it root's or the caller's and not writable by others (unless sticky, like /tmp).
 * So a user can never point root's fourwall at a dir the user controls.
 */
export function checkStateDirOverride(dir: string, uid: number): void {
  const refuse = (why: string): never => {
    throw new WallError(
      "filesystem",
      `${STATE_DIR_VAR}=${dir} ${why}`,
      `make it with mkdir -m 0700 as uid ${uid} in a dir nobody else can write, or unset ${STATE_DIR_VAR}`,
    );
  };
  if (!path.isAbsolute(dir)) refuse("is not an absolute path");
  const own = lstatSync(dir, { throwIfNoEntry: false });
  if (!own?.isDirectory()) refuse("is not a directory (or is a symlink)");
  // no symlink on the way (one in a sticky dir could be its owner's to turn elsewhere)
  if (realpathSync(dir) !== dir) refuse(`is not its real path (${realpathSync(dir)})`);
  if (own!.uid !== uid) refuse(`is not uid ${uid}'s`);
  if ((own!.mode & 0o077) !== 0) refuse("is open to others (it must be 0700)");
  for (let up = path.dirname(dir); ; up = path.dirname(up)) {
    const s = statSync(up);
    if (s.uid !== 0 && s.uid !== uid) refuse(`lies in ${up}, which is uid ${s.uid}'s`);
    if ((s.mode & 0o022) !== 0 && (s.mode & 0o1000) === 0) refuse(`lies in ${up}, which others can write`);
    if (up === "/") break;
  }
}
