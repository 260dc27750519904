import { chownSync, mkdirSync, statSync } from "node:fs";
import path from "node:path";

/**
 * mkdir -p for a directory in a user's HOME: each directory it makes is 0700 and, when fourwall
 * runs as root, given to HOME's owner (root making them in someone's HOME would leave root-owned
 * directories inside an idmapped HOME, which the box could not use).
 */
export function makeOwnedDir(dir: string, owner: { uid: number; gid: number }): void {
  if (statSync(dir, { throwIfNoEntry: false })?.isDirectory()) return;
  makeOwnedDir(path.dirname(dir), owner);
  mkdirSync(dir, { mode: 0o700 });
  if (process.getuid!() === 0) chownSync(dir, owner.uid, owner.gid);
}
