import { lstatSync, mkdirSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { WallError } from "./errors.js";

/**
 * A directory of fourwall's state (box records, workdir locks), private to the user: the first of
 * /run/fourwall (root), $XDG_RUNTIME_DIR, ~/.local/state that can be made, else /tmp/fourwall-UID
 * (used only if it is the user's own, mode 0700: another user could have planted it).
 */
export function privateStateDir(name: "locks" | "boxes" | "layers"): string {
  const uid = process.getuid!();
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
