import { spawnSync } from "node:child_process";
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, rmSync, symlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { which } from "../../core/paths.js";
import type { GitOracle } from "./git.js";

/**
 * Real git, asked about the objects of the repository as it would be after the run: the real
 * workdir's objects plus the ones the box wrote into the layer. Nothing of the box's repository
 * is run or read as configuration:
 *   - git runs in a private scratch repository of fourwall's own (its HEAD, config and refs, no
 *     hooks: core.hooksPath=/dev/null, no fsmonitor), never in the workdir's;
 *   - its objects directory links only the layer's object fan-out directories and packs (not the
 *     layer's objects/info, so no alternates or grafts the box planted), and its one alternate is
 *     the real repository's objects directory (the host's own);
 *   - a clean environment: no system or global config, no replace refs, no prompts.
 * Every failure (no git, a missing or corrupt object, a timeout) is "cannot tell", which asks.
 */
export interface OracleOptions {
  /** The real repository's objects directory (before the run). */
  lowerObjects: string;
  /** The layer's objects directory (what the box added), if it has one. */
  layerObjects?: string;
  /** The real repository's shallow file, if it is a shallow clone (its grafts are the host's). */
  shallow?: Buffer;
  /** git itself; default: found on the host's PATH. */
  git?: string;
}

export interface ClosableOracle extends GitOracle {
  close(): void;
}

const realDir = (p: string) => {
  try {
    return lstatSync(p).isDirectory();
  } catch {
    return false;
  }
};

export function gitOracle(o: OracleOptions): ClosableOracle {
  const git = o.git ?? which("git");
  const scratch = mkdtempSync(path.join(os.tmpdir(), "fourwall-git-"));
  let gitDir: string | undefined;
  /** The scratch repository, made on first use (its object format follows the first id asked about). */
  const repo = (sha256: boolean) => {
    if (gitDir) return gitDir;
    gitDir = path.join(scratch, "git");
    const objects = path.join(gitDir, "objects");
    mkdirSync(path.join(gitDir, "refs"), { recursive: true });
    mkdirSync(path.join(objects, "info"), { recursive: true });
    writeFileSync(path.join(gitDir, "HEAD"), "ref: refs/heads/fourwall-scratch\n");
    writeFileSync(
      path.join(gitDir, "config"),
      sha256
        ? "[core]\n\trepositoryformatversion = 1\n\tbare = true\n[extensions]\n\tobjectformat = sha256\n"
        : "[core]\n\trepositoryformatversion = 0\n\tbare = true\n",
    );
    if (o.shallow) writeFileSync(path.join(gitDir, "shallow"), o.shallow);
    writeFileSync(path.join(objects, "info", "alternates"), `${path.resolve(o.lowerObjects)}\n`);
    if (o.layerObjects && realDir(o.layerObjects))
      for (const name of readdirSync(o.layerObjects))
        if ((/^[0-9a-f]{2}$/.test(name) || name === "pack") && realDir(path.join(o.layerObjects, name)))
          symlinkSync(path.join(o.layerObjects, name), path.join(objects, name));
    return gitDir;
  };
  const run = (sha: string, args: string[], input?: string) => {
    if (!git) return undefined;
    const r = spawnSync(
      git,
      ["-c", "core.hooksPath=/dev/null", "-c", "core.fsmonitor=false", "--no-replace-objects", ...args],
      {
        input,
        encoding: "utf8",
        timeout: 30_000,
        maxBuffer: 64 * 1024 * 1024,
        cwd: scratch,
        env: {
          PATH: "/usr/bin:/bin",
          HOME: scratch,
          LC_ALL: "C",
          GIT_DIR: repo(sha.length === 64),
          GIT_CONFIG_NOSYSTEM: "1",
          GIT_CONFIG_GLOBAL: "/dev/null",
          GIT_NO_REPLACE_OBJECTS: "1",
          GIT_OPTIONAL_LOCKS: "0",
          GIT_TERMINAL_PROMPT: "0",
        },
      },
    );
    return r.error ? undefined : r;
  };
  return {
    isAncestor(a, b) {
      const r = run(a, ["merge-base", "--is-ancestor", a, b]);
      return r?.status === 0 ? true : r?.status === 1 ? false : undefined;
    },
    count(from, not) {
      // On stdin (any number of tips); this git's --stdin takes no options, so ^ marks exclusion.
      const r = run(
        from,
        ["rev-list", "--count", "--stdin"],
        [from, ...not.map((t) => `^${t}`), ""].join("\n"),
      );
      const n = r?.status === 0 ? Number(r.stdout.trim()) : Number.NaN;
      return Number.isInteger(n) ? n : undefined;
    },
    changedPaths(base, tip) {
      const r = run(tip, ["diff-tree", "-r", "-z", "--no-renames", "--name-status", base, tip]);
      if (r?.status !== 0) return undefined;
      const parts = r.stdout.split("\0");
      const out: { path: string; op: "overwrite" | "delete" }[] = [];
      for (let i = 0; i + 1 < parts.length; i += 2) {
        const status = parts[i]!;
        if (status.startsWith("A")) continue;
        out.push({ path: parts[i + 1]!, op: status.startsWith("D") ? "delete" : "overwrite" });
      }
      return out;
    },
    close() {
      rmSync(scratch, { recursive: true, force: true });
    },
  };
}
