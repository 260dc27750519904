import path from "node:path";
import { looksLikeGitDir } from "./git.js";
import type { HostView } from "./host-view.js";
import { SHELL_STARTUP_FILES } from "./lists.js";
import { isToolConfigName, toolConfigWhy } from "./tool-config.js";

/**
 * A bounded walk of a tree the box may write (the workdir, or the repository around it): the
 * names the filesystem wall must act on wherever they are, not just at the top level.
 */
export interface TreeScan {
  /** Every `.git` entry (a git dir, or a pointer file naming one elsewhere). */
  gitEntries: string[];
  /** Files whose contents are secrets by name: `.env`, `.env*`, `*.env`. */
  envFiles: string[];
  /** Shell start-up files (`.bashrc`, `.zshenv`, ...). */
  startupFiles: string[];
  /** Tool config that runs code on the host (lists.ts TOOL_CONFIG), wherever it is. */
  toolConfigs: string[];
  /** Directories that are git dirs by their shape, no `.git` in the path (bare repositories). */
  bareGitDirs: string[];
  /** Set when a bound was hit: what was not looked at. */
  truncated?: string;
}

export interface ScanLimits {
  /** Directory entries looked at, in all. */
  entries: number;
  /** Directory levels below the root. */
  depth: number;
}

export const DEFAULT_SCAN_LIMITS: ScanLimits = { entries: 100_000, depth: 24 };

/**
 * Directories the walk does not enter: installed dependencies are not the user's secrets or
 * repositories, and a large node_modules would eat the whole budget. Nothing else is skipped.
 */
export const SCAN_SKIP_DIRS = ["node_modules"] as const;

/** `.env`, `.env.production`, `.envrc`, `prod.env`: the names WORKDIR_SECRETS describes, at any depth. */
export const isEnvFileName = (name: string) => name.startsWith(".env") || name.endsWith(".env");

/**
 * Walks `roots` breadth-first (shallow names first, so a cap drops the deepest), never following
 * a symlink and never entering a git dir (git dirs are resolved by git.ts) or SCAN_SKIP_DIRS.
 */
export function scanTrees(
  host: HostView,
  roots: string[],
  limits: ScanLimits = DEFAULT_SCAN_LIMITS,
): TreeScan {
  const scan: TreeScan = { gitEntries: [], envFiles: [], startupFiles: [], toolConfigs: [], bareGitDirs: [] };
  const startup = new Set<string>(SHELL_STARTUP_FILES);
  const skip = new Set<string>(SCAN_SKIP_DIRS);
  let seen = 0;
  let queue = roots.map((dir) => ({ dir, depth: 0 }));
  while (queue.length > 0) {
    const next: typeof queue = [];
    for (const { dir, depth } of queue) {
      const names = host.readdir(dir);
      if (looksLikeGitDir(names)) scan.bareGitDirs.push(dir);
      for (const name of names) {
        if (++seen > limits.entries) {
          scan.truncated = `more than ${limits.entries} entries under ${roots.join(", ")}`;
          return scan;
        }
        const entry = path.join(dir, name);
        const kind = host.kind(entry);
        if (name === ".git") {
          scan.gitEntries.push(entry);
          continue;
        }
        if (kind === "dir") {
          if (skip.has(name)) continue;
          if (depth + 1 > limits.depth) {
            scan.truncated = `directories deeper than ${limits.depth} levels (${entry})`;
            return scan;
          }
          next.push({ dir: entry, depth: depth + 1 });
          continue;
        }
        if (isEnvFileName(name)) scan.envFiles.push(entry);
        if (startup.has(name)) scan.startupFiles.push(entry);
        if (isToolConfigName(name) && toolConfigWhy(entry)) scan.toolConfigs.push(entry);
      }
    }
    queue = next;
  }
  return scan;
}
