import path from "node:path";
import type { HostView } from "./host-view.js";

/**
 * Git repositories as the filesystem wall sees them: every git dir the box can reach is a way
 * back onto the host (git runs what its config and hooks say at the user's next `git status`),
 * so each one's code-bearing names are protected, wherever the repository is.
 */

/** A repository: its git dir and the worktree root it belongs to (undefined for a bare git dir). */
export interface GitRepo {
  gitDir: string;
  worktree: string | undefined;
}

/**
 * The names inside a git dir that git reads as configuration, code, or a pointer to another git
 * dir (gitrepository-layout(5)). Everything else git writes in normal work (objects, refs, logs,
 * index, *HEAD, packed-refs, their .lock files, COMMIT_EDITMSG) stays writable: git replaces those
 * by rename into the git dir itself, so the git dir's top level cannot be made read-only.
 * A missing name gets a placeholder so it cannot be created; `content` is what keeps git working
 * while the placeholder stands (an empty commondir makes git die, "." means "this git dir").
 */
export const GIT_DIR_PROTECTED: readonly {
  name: string;
  kind: "file" | "dir";
  content?: string;
  why: string;
}[] = [
  {
    name: "config",
    kind: "file",
    why: "git config: core.fsmonitor, core.hooksPath, aliases and filters run commands",
  },
  { name: "config.worktree", kind: "file", why: "git config (per worktree): runs commands like config" },
  { name: "hooks", kind: "dir", why: "git hooks run on the host's next commit" },
  {
    name: "commondir",
    kind: "file",
    content: ".\n",
    why: "git commondir: points git at another git dir, whose config would run",
  },
  { name: "info", kind: "dir", why: "git info/: attributes, excludes, grafts, sparse-checkout rules" },
  {
    name: "objects/info/alternates",
    kind: "file",
    why: "git alternates: objects borrowed from another repository",
  },
  {
    name: "objects/info/http-alternates",
    kind: "file",
    why: "git alternates: objects borrowed from another repository",
  },
];

/** Files in a worktree's root that git or its tools read as commands. */
export const GIT_WORKTREE_PROTECTED: readonly { name: string; kind: "file" | "dir"; why: string }[] = [
  { name: ".gitmodules", kind: "file", why: "submodule URLs and update commands" },
  { name: ".pre-commit-config.yaml", kind: "file", why: "pre-commit runs its hooks on the host" },
];

/** Hook directories by convention (husky, plain .githooks): guarded when they exist, hooksPath set or not. */
export const HOOK_DIR_NAMES = [".husky", ".githooks"] as const;

/**
 * Whether a directory holding these names is a git dir by its shape, as git's own discovery
 * accepts one (setup.c is_git_directory): HEAD, and objects/ and refs/ here or in the git dir a
 * `commondir` names. Git takes such a directory as a bare repository, with its `config` (core.pager,
 * core.fsmonitor), wherever it is, no `.git` in the path. Judged by names only (what a readdir
 * gives): HEAD's content and the entries' types are not checked, so it errs towards "a repository".
 */
export const GIT_DIR_SHAPE_NAMES = ["HEAD", "objects", "refs", "commondir"] as const;
export function looksLikeGitDir(names: Iterable<string>): boolean {
  const has = new Set(names);
  return has.has("HEAD") && ((has.has("objects") && has.has("refs")) || has.has("commondir"));
}

const MAX_POINTER_BYTES = 4096;
const MAX_CONFIG_BYTES = 256 * 1024;
/** Git dirs followed through modules/, worktrees/ and commondir, in all: a cap on a planted maze. */
export const MAX_GIT_DIRS = 512;

/** The git dir a `.git` entry stands for: itself, or the one its pointer file names. */
export function resolveGitEntry(host: HostView, entry: string): string | undefined {
  const kind = host.kind(entry);
  if (kind === "dir") return entry;
  if (kind !== "file") return undefined;
  const text = host.readText(entry, MAX_POINTER_BYTES);
  const match = text?.match(/^gitdir:\s*(.+?)\s*$/m);
  return match?.[1] ? path.resolve(path.dirname(entry), match[1]) : undefined;
}

/** The git dir a `commondir` file points at, if any. */
function commonDirOf(host: HostView, gitDir: string): string | undefined {
  const text = host.readText(path.join(gitDir, "commondir"), MAX_POINTER_BYTES)?.trim();
  return text ? path.resolve(gitDir, text) : undefined;
}

/**
 * Every git dir reachable from `entries` (`.git` dirs and pointer files): each one, the common dir
 * its commondir names, and, recursively, the git dirs under its modules/ (submodules, nested
 * submodules) and worktrees/. Bounded by MAX_GIT_DIRS; `truncated` says when the cap was hit.
 */
export function discoverGitDirs(
  host: HostView,
  entries: string[],
  /** Directories that are git dirs by their shape (bare repositories, looksLikeGitDir). */
  bare: readonly string[] = [],
): { repos: GitRepo[]; truncated: boolean } {
  const repos = new Map<string, GitRepo>();
  const queue: GitRepo[] = [];
  const add = (gitDir: string | undefined, worktree: string | undefined) => {
    if (!gitDir || host.kind(gitDir) !== "dir") return;
    const known = repos.get(gitDir);
    if (known) {
      known.worktree ??= worktree;
      return;
    }
    const repo = { gitDir, worktree };
    repos.set(gitDir, repo);
    queue.push(repo);
  };
  for (const entry of entries) add(resolveGitEntry(host, entry), path.dirname(entry));
  for (const dir of bare) add(dir, undefined);
  let truncated = false;
  while (queue.length > 0) {
    if (repos.size > MAX_GIT_DIRS) {
      truncated = true;
      break;
    }
    const { gitDir } = queue.shift()!;
    add(commonDirOf(host, gitDir), undefined);
    // modules/<name> may itself be a path (modules/a/b): a git dir is a dir holding HEAD.
    const walk = (dir: string, depth: number) => {
      for (const name of host.readdir(dir)) {
        const sub = path.join(dir, name);
        if (host.kind(sub) !== "dir") continue;
        if (host.kind(path.join(sub, "HEAD")) !== "missing") add(sub, undefined);
        else if (depth < 4) walk(sub, depth + 1);
      }
    };
    walk(path.join(gitDir, "modules"), 0);
    for (const name of host.readdir(path.join(gitDir, "worktrees")))
      add(path.join(gitDir, "worktrees", name), undefined);
  }
  return { repos: [...repos.values()], truncated };
}

/**
 * The values of `core.hooksPath` in one git config file (a minimal reader: sections, keys, quoted
 * values; `include` is not followed, so a hooksPath set only in an included file is not seen).
 */
export function hooksPathsIn(text: string): string[] {
  const found: string[] = [];
  let section = "";
  for (const raw of text.split("\n")) {
    let line = raw.trim();
    const header = line.match(/^\[\s*([A-Za-z0-9.-]+)(\s+"[^"]*")?\s*\](.*)$/);
    if (header) {
      section = header[2] ? "" : header[1]!.toLowerCase(); // core has no subsections
      line = header[3]!.trim();
    }
    const kv = line.match(/^([A-Za-z][A-Za-z0-9-]*)\s*=\s*(.*)$/);
    if (!kv || kv[1]!.toLowerCase() !== "hookspath" || section !== "core") continue;
    let value = kv[2]!.replace(/\s[#;].*$/, "").trim();
    if (value.startsWith('"') && value.endsWith('"')) value = value.slice(1, -1);
    if (value) found.push(value);
  }
  return found;
}

/** core.hooksPath from a config file, made absolute: `~/` is HOME, relative is the worktree root. */
export function hooksDirs(
  host: HostView,
  configFile: string,
  where: { home: string; worktree: string | undefined },
): string[] {
  const text = host.readText(configFile, MAX_CONFIG_BYTES);
  if (text === undefined) return [];
  return hooksPathsIn(text).flatMap((value) => {
    if (value === "~" || value.startsWith("~/")) return [path.join(where.home, value.slice(1))];
    if (path.isAbsolute(value)) return [path.normalize(value)];
    return where.worktree ? [path.resolve(where.worktree, value)] : [];
  });
}

/**
 * The directory to guard for a hooks dir: husky (v9) points hooksPath at `.husky/_`, whose shims
 * run `.husky/<hook>`, so the whole `.husky` is what runs.
 */
export const hookDirToGuard = (dir: string) =>
  path.basename(dir) === "_" && path.basename(path.dirname(dir)) === ".husky" ? path.dirname(dir) : dir;

/** The user's global and the system git config files the box's git and the host's git both read. */
export const globalGitConfigs = (home: string) => [
  path.join(home, ".gitconfig"),
  path.join(home, ".config", "git", "config"),
  "/etc/gitconfig",
];

/** The nearest repository around `dir` (its `.git` entry), looking upwards from dir's parent. */
export function enclosingGitEntry(host: HostView, dir: string): string | undefined {
  for (let at = path.dirname(dir); ; at = path.dirname(at)) {
    const entry = path.join(at, ".git");
    if (host.kind(entry) === "dir" || host.kind(entry) === "file") return entry;
    if (at === "/") return undefined;
  }
}
