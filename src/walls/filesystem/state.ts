import { chownSync, lstatSync, mkdirSync, statSync, writeFileSync } from "node:fs";
import path from "node:path";
import { isUnder } from "../../core/paths.js";
import { statePaths } from "./plan.js";
import type { FilesystemPolicy } from "./schema.js";

/**
 * Makes the missing state paths on the host, owned like their parent (HOME's owner, also when
 * fourwall runs as root), private to that owner. A first-time user's ~/.claude or ~/.codex then
 * exists before the box starts, so what the agent writes there persists. Only under HOME or the
 * workdir, and only one level below an existing directory: fourwall does not build trees.
 */
export function createStatePaths(policy: FilesystemPolicy, where: { home: string; workdir: string }): void {
  for (const entry of statePaths(policy, where)) {
    if (!isUnder(entry.path, where.home) && !isUnder(entry.path, where.workdir)) continue;
    if (lstatSync(entry.path, { throwIfNoEntry: false })) continue;
    const parent = statSync(path.dirname(entry.path), { throwIfNoEntry: false });
    if (!parent?.isDirectory()) continue; // the plan notes it as skipped
    if (entry.kind === "dir") mkdirSync(entry.path, { mode: 0o700 });
    else writeFileSync(entry.path, entry.path.endsWith(".json") ? "{}\n" : "", { mode: 0o600, flag: "wx" });
    if (process.getuid?.() === 0) chownSync(entry.path, parent.uid, parent.gid);
  }
}
