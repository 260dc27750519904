import path from "node:path";
import { isUnder } from "../../core/paths.js";
import {
  discoverGitDirs,
  enclosingGitEntry,
  GIT_DIR_PROTECTED,
  GIT_WORKTREE_PROTECTED,
  globalGitConfigs,
  HOOK_DIR_NAMES,
  hookDirToGuard,
  hooksDirs,
} from "./git.js";
import { boxGitConfig } from "./gitconfig.js";
import { expandGlob, GlobError, hasGlob, literalPath } from "./glob.js";
import type { HostView } from "./host-view.js";
import {
  HOME_PERSISTENCE,
  HOME_SECRETS,
  HOME_VISIBLE,
  PERSISTENCE_PATHS,
  SHELL_STARTUP_FILES,
  SOCKET_DIRS,
  SYSTEM_SECRETS,
} from "./lists.js";
import type { FilesystemPlan, Mount, Placeholder } from "./mounts.js";
import type { FilesystemPolicy } from "./schema.js";
import { loginPlaceholder } from "./startup.js";
import { toolConfigWhy } from "./tool-config.js";
import { boxSight } from "./visibility.js";
import { scanTrees } from "./walk.js";

export interface FilesystemContext {
  workdir: string;
  home: string;
  host: HostView;
  /** The user's XDG_RUNTIME_DIR (ssh-agent, D-Bus and docker sockets live there). */
  runtimeDir?: string | undefined;
  /**
   * fourwall's own installation: the box runs it (agent hooks call `fourwall gate ...`), so it must
   * stay visible, read-only, even when it lives under a directory the box gets empty (/tmp, /run).
   */
  fourwallRoot?: string | undefined;
  /** The host's PATH: its directories under HOME stay visible (toolchains installed there). */
  pathEnv?: string | undefined;
}

/** A policy entry the wall cannot enforce: an error, never a silent no-op. */
export class FilesystemPlanError extends Error {
  constructor(
    readonly field: string,
    reason: string,
    /** The fix when it is not a policy entry (the workdir comes from where fourwall was started). */
    readonly fix?: string,
  ) {
    super(`${field}: ${reason}`);
    this.name = "FilesystemPlanError";
  }
}

/** Placeholder content that keeps a config parser happy while the real file does not exist. */
const placeholderContent = (p: string) => (p.endsWith(".json") ? "{}\n" : "");

/**
 * Turns the filesystem policy into a mount plan. Pure apart from the questions it asks `host`.
 * Layers, in order (later ones cover earlier ones):
 *   1. the root read-only, the box's own /proc and /dev, empty tmpfs over every socket directory;
 *   2. HOME rebuilt: a private tmpfs with the host's entries bound back read-only, except secrets
 *      (so a top-level secret does not exist at all in the box);
 *   3. scratch tmpfs, then the writable binds (the workdir first);
 *   4. read-only binds inside writable places: the policy's, then the persistence paths;
 *   5. covers over every secret still visible (empty tmpfs or empty file).
 */
export function planFilesystem(policy: FilesystemPolicy, ctx: FilesystemContext): FilesystemPlan {
  const { host } = ctx;
  const workdir = path.resolve(ctx.workdir);
  const home = path.resolve(ctx.home);
  const where = (field: string) => ({ home, workdir, field });
  // writable, scratch: one literal path each (a glob there is refused: it is not expanded)
  const expand = (p: string, field: string) => literalPolicyPath(p, where(field));
  // hide, readOnly: globs expanded against the host now (only the policy's words are a pattern)
  const matches = (base: string, pattern: string, field: string) => {
    try {
      return expandGlob(base, pattern, host);
    } catch (error) {
      if (error instanceof GlobError) throw new FilesystemPlanError(field, error.message);
      throw error;
    }
  };
  const notes: string[] = [];
  const mounts: Mount[] = [];
  const placeholders: Placeholder[] = [];
  const hostRoot = policy.root;
  const onHost = (p: string) => (hostRoot === "/" ? p : path.join(hostRoot, p));

  if (workdir === "/")
    throw new FilesystemPlanError(
      "workdir",
      "the whole filesystem cannot be the workdir (fourwall was started in /, or given -w /)",
      "cd into your project's directory first, or pass --workdir DIR",
    );
  if (host.targetKind(workdir) !== "dir")
    throw new FilesystemPlanError("workdir", `${workdir} is not a directory`);

  // 1. base
  mounts.push({ type: "bind", source: hostRoot, target: "/", writable: false, why: "the host, read-only" });
  mounts.push({ type: "proc", target: "/proc" }, { type: "dev", target: "/dev" });
  const socketDirs = new Set<string>(SOCKET_DIRS);
  if (ctx.runtimeDir) socketDirs.add(path.resolve(ctx.runtimeDir));
  const hiddenSocketDirs: string[] = [];
  for (const dir of socketDirs) {
    if (hiddenSocketDirs.some((done) => isUnder(dir, done))) continue;
    if (dir !== "/dev/shm" && host.kind(onHost(dir)) !== "dir") continue; // /var/run -> /run: covered at its target
    hiddenSocketDirs.push(dir);
    if (dir === "/tmp" && policy.tmp !== false) {
      mounts.push({
        type: "tmpfs",
        target: dir,
        sizeBytes: policy.tmp.size,
        why: "private /tmp, gone at exit",
      });
    } else {
      mounts.push({
        type: "tmpfs",
        target: dir,
        readOnly: dir === "/tmp",
        why: "private and empty: hides host sockets",
      });
    }
  }

  const self = ctx.fourwallRoot ? path.resolve(ctx.fourwallRoot) : undefined;
  if (
    self &&
    hiddenSocketDirs.some((dir) => isUnder(self, dir)) &&
    !isUnder(workdir, self) &&
    host.kind(self) === "dir"
  ) {
    mounts.push({
      type: "bind",
      source: self,
      target: self,
      writable: false,
      why: "fourwall itself (agent hooks run it)",
    });
  }

  // The tree the box writes, walked once (bounded): nested .env files, repositories, start-up files.
  // A workdir inside a repository is walked from the repository's root, which the box then sees.
  const enclosing = enclosingGitEntry(host, workdir);
  const repoRoot = enclosing && hostRoot === "/" ? path.dirname(enclosing) : undefined;
  const scanRoot = repoRoot ?? workdir;
  const scan = scanTrees(host, [scanRoot], { entries: policy.scanLimit, depth: 24 });
  if (scan.truncated) {
    // Fail closed: past the bound a .env or a repository's hooks would go unguarded.
    throw new FilesystemPlanError(
      "filesystem.scanLimit",
      `the walk of ${scanRoot} stopped at ${scan.truncated}: nested .env files and git repositories past it would be unguarded; raise filesystem.scanLimit or choose a smaller workdir`,
    );
  }
  if (enclosing) scan.gitEntries.unshift(enclosing);

  // secrets: expand now, so the home rebuild can leave top-level ones out
  const secretPatterns = [
    ...HOME_SECRETS.map((s) => ({ base: home, pattern: s, field: "filesystem.hide (built-in)" })),
    ...SYSTEM_SECRETS.map((s) => ({ base: "/", pattern: s, field: "filesystem.hide (built-in)" })),
    ...policy.hide.map((s, i) => ({
      ...splitPolicyPath(s, where(`filesystem.hide[${i}]`)),
      field: `filesystem.hide[${i}]`,
    })),
  ];
  const secrets: string[] = [];
  for (const { base, pattern, field } of secretPatterns) {
    for (const match of matches(base, pattern, field)) {
      if (match === "/" || isUnder(workdir, match))
        throw new FilesystemPlanError(field, `hiding ${match} would hide the workdir ${workdir}`);
      secrets.push(match);
    }
  }
  if (!policy.allowDotEnv) secrets.push(...scan.envFiles);

  // 2. HOME rebuilt from an allowlist: only what tools need, secrets still left out
  const rebuildHome =
    hostRoot === "/" && home !== "/" && host.kind(home) === "dir" && !isUnder(home, workdir);
  const scratch = new Set(policy.scratch.map((s, i) => expand(s, `filesystem.scratch[${i}]`)));
  const homeShown: string[] = [];
  if (rebuildHome) {
    mounts.push({
      type: "tmpfs",
      target: home,
      why: "private HOME: an allowlist of host entries bound back read-only, secrets left out",
    });
    const wanted = [
      ...HOME_VISIBLE.flatMap((rel) => matches(home, rel, "filesystem.homeVisible (built-in)")),
      ...policy.homeVisible.flatMap((p, i) =>
        matches(home, p.replace(/^~\/?/, ""), `filesystem.homeVisible[${i}]`),
      ),
      ...(ctx.pathEnv ?? "")
        .split(":")
        .filter(
          (dir) => path.isAbsolute(dir) && isUnder(path.resolve(dir), home) && path.resolve(dir) !== home,
        )
        .map((dir) => path.resolve(dir)),
      // the repository around the workdir: git in the box finds it, read-only
      ...(repoRoot && isUnder(repoRoot, home) && repoRoot !== home ? [repoRoot] : []),
    ];
    // parents first, so a child inside an allowlisted dir is not bound twice
    for (const entry of [...new Set(wanted)].sort((a, b) => a.length - b.length)) {
      if (homeShown.some((done) => isUnder(entry, done))) continue;
      if (secrets.some((secret) => isUnder(entry, secret))) continue;
      if ([...scratch].some((s) => isUnder(entry, s))) continue;
      const kind = host.kind(entry);
      if (kind === "missing") continue;
      if (kind === "socket") {
        notes.push(`home socket ${entry} left out`);
        continue;
      }
      homeShown.push(entry);
      if (kind === "symlink") {
        mounts.push({ type: "symlink", target: entry, linkTo: host.readlink(entry), why: "home entry" });
      } else {
        mounts.push({ type: "bind", source: entry, target: entry, writable: false, why: "home entry" });
      }
    }
    if (repoRoot && homeShown.includes(repoRoot))
      notes.push(
        `the repository around the workdir (${repoRoot}) is visible read-only: git works in the workdir, commits need its git dir writable`,
      );
  } else if (hostRoot !== "/") {
    mounts.push({ type: "tmpfs", target: home, why: "private HOME in a custom root" });
  }
  // git's global config: a sanitised copy (no credential helpers, includes, tokens) wherever HOME
  // is not the user's writable own
  if (rebuildHome) {
    for (const file of globalGitConfigs(home).filter((f) => isUnder(f, home))) {
      const text = host.readText(file, 256 * 1024);
      if (text === undefined && file !== path.join(home, ".gitconfig")) continue;
      mounts.push({
        type: "file",
        name: `gitconfig-${path.basename(path.dirname(file))}`,
        target: file,
        content: boxGitConfig(text ?? ""),
        why: "git config, sanitised: no credential helpers, includes or tokens",
      });
    }
  }
  // read-only paths the box would not otherwise see (--ro, filesystem.readOnly outside the workdir)
  const roShown: string[] = [];
  const visibleInBox = (p: string) =>
    !rebuildHome ||
    !isUnder(p, home) ||
    homeShown.some((shown) => isUnder(p, shown)) ||
    roShown.some((shown) => isUnder(p, shown));

  // 3. scratch and writable
  policy.scratch.forEach((s, i) => {
    const target = expand(s, `filesystem.scratch[${i}]`);
    if (rebuildHome && isUnder(target, home)) {
      mounts.push({ type: "tmpfs", target, why: "scratch" });
    } else if (host.kind(onHost(target)) === "dir") {
      mounts.push({ type: "tmpfs", target, why: "scratch" });
    } else {
      notes.push(`scratch ${target} skipped: it does not exist on the read-only host`);
    }
  });
  const writable = [workdir];
  mounts.push({ type: "bind", source: workdir, target: workdir, writable: true, why: "the workdir" });
  const writableEntries = [
    ...policy.writable.map((w, i) => ({
      target: expand(w, `filesystem.writable[${i}]`),
      field: `filesystem.writable[${i}]`,
    })),
    ...statePaths(policy, { home, workdir }).map((s, i) => ({
      target: s.path,
      field: `filesystem.state[${i}]`,
    })),
  ];
  writableEntries.forEach(({ target, field }) => {
    if (target === "/") throw new FilesystemPlanError(field, "the whole filesystem cannot be writable");
    if (host.kind(target) === "missing") {
      notes.push(`writable ${target} skipped: it does not exist`);
      return;
    }
    if (writable.some((done) => isUnder(target, done))) return;
    writable.push(target);
    mounts.push({ type: "bind", source: target, target, writable: true, why: "writable by policy" });
  });
  const inWritable = (p: string) => writable.some((w) => isUnder(p, w));

  // 4. read-only islands inside writable places. A directory that holds a mount can still be
  // renamed away (measured: `mv .git x` then a fresh .git), a mount point cannot: every existing
  // directory between a writable root and an island is pinned by binding it onto itself first.
  const pins = new Set<string>();
  const islands: Mount[] = [];
  const pin = (dir: string) => {
    if (!writable.includes(dir) && host.kind(dir) === "dir") pins.add(dir);
  };
  const protect = (relOrAbs: string, kind: "file" | "dir", field: string, why: string, content?: string) => {
    const target = path.isAbsolute(relOrAbs) ? relOrAbs : path.join(workdir, relOrAbs);
    if (!inWritable(target)) return; // already read-only
    const root = writable.find((w) => isUnder(target, w))!;
    if (target === root) return; // a writable root itself is what the policy asked for
    const existing = host.kind(target);
    let first = target;
    if (existing === "missing") {
      // Not there yet: stand a placeholder on the first missing component, so nothing can be created.
      while (host.kind(path.dirname(first)) === "missing") first = path.dirname(first);
      if (!inWritable(path.dirname(first)) || first === workdir) {
        throw new FilesystemPlanError(field, `cannot protect ${target}`);
      }
    }
    for (let dir = path.dirname(first); dir !== root && isUnder(dir, root); dir = path.dirname(dir)) pin(dir);
    if (existing !== "missing") {
      if (islands.some((m) => m.target === target)) return;
      islands.push({ type: "bind", source: target, target, writable: false, why });
      return;
    }
    if (placeholders.some((p) => p.path === first)) return; // one placeholder already guards it
    const placeholderKind = first === target ? kind : "dir";
    const text = first === target && content !== undefined ? content : placeholderContent(first);
    placeholders.push({ path: first, kind: placeholderKind, content: text });
    islands.push({ type: "bind", source: first, target: first, writable: false, why });
  };
  // Outside the writable places everything is read-only already, but maybe not visible: a tool
  // installed under /tmp (private in the box) or in HOME beyond the allowlist is bound in,
  // read-only; the covers below still hide the secrets inside it. A secret itself is refused.
  const showReadOnly = (target: string, field: string) => {
    const secret = secrets.find((s) => isUnder(target, s));
    if (secret)
      throw new FilesystemPlanError(field, `${target} is a secret (${secret}): it stays hidden from the box`);
    if (host.kind(onHost(target)) === "missing") {
      notes.push(`${field} ${target} skipped: it does not exist`);
      return;
    }
    if (boxSight(mounts, target).seen || roShown.some((done) => isUnder(target, done))) return;
    roShown.push(target);
    mounts.push({
      type: "bind",
      source: onHost(target),
      target,
      writable: false,
      why: "read-only by policy",
    });
  };
  policy.readOnly.forEach((r, i) => {
    const field = `filesystem.readOnly[${i}]`;
    const { base, pattern } = splitPolicyPath(r, where(field));
    const found = matches(base, pattern, field);
    // A glob covers what exists now; a literal path is protected even before it exists (placeholder).
    if (found.length === 0) notes.push(`${field} ${r} matches nothing on the host: nothing to protect`);
    for (const target of found) {
      if (inWritable(target)) protect(target, r.endsWith("/") ? "dir" : "file", field, "read-only by policy");
      else showReadOnly(target, field);
    }
  });
  for (const entry of PERSISTENCE_PATHS) {
    if (entry.gitOnly) continue; // git's own: per repository, below
    if (policy.allowPersistence.includes(entry.path)) continue;
    protect(entry.path, entry.kind, "filesystem (persistence)", entry.why);
  }
  protectGit(policy, { host, home, scan, inWritable, protect, pin, notes });
  // shell start-up files wherever they already are in writable places; where a shell reads them
  // (HOME writable), missing ones too, with the session autostart places
  for (const file of scan.startupFiles)
    protect(file, "file", "filesystem (persistence)", "shell start-up file");
  // tool config that runs code on the host, wherever it already is (the gate asks about new ones)
  for (const file of scan.toolConfigs) {
    const rel = path.relative(workdir, file);
    if (policy.allowPersistence.includes(rel) || policy.allowPersistence.includes(path.basename(file)))
      continue;
    protect(file, "file", "filesystem (persistence)", `tool config: ${toolConfigWhy(file)}`);
  }
  if (inWritable(home) && !policy.allowPersistence.includes("shell")) {
    for (const name of SHELL_STARTUP_FILES) {
      const file = path.join(home, name);
      protect(
        file,
        "file",
        "filesystem (persistence)",
        "shell start-up file",
        loginPlaceholder(host, home, name),
      );
    }
    for (const entry of HOME_PERSISTENCE)
      protect(path.join(home, entry.path), "dir", "filesystem (persistence)", entry.why);
  }
  for (const dir of [...pins].sort((a, b) => a.length - b.length))
    mounts.push({
      type: "bind",
      source: dir,
      target: dir,
      writable: true,
      why: "pinned: cannot be renamed away",
    });
  mounts.push(...islands);

  // 5. covers over secrets that would still be visible
  for (const secret of new Set(secrets)) {
    if (!visibleInBox(secret) && !inWritable(secret)) continue; // not in the box at all
    let target = secret;
    let kind = host.kind(onHost(secret));
    if (kind === "symlink") {
      kind = host.targetKind(onHost(secret));
      target = secret; // bwrap resolves the symlink at mount time: the cover lands on its target
    }
    if (kind === "missing") continue;
    if (kind === "dir") mounts.push({ type: "tmpfs", target, readOnly: true, why: "secret hidden" });
    else mounts.push({ type: "empty-file", target, why: "secret hidden" });
  }

  return {
    mounts,
    placeholders,
    writable,
    home,
    cwd: workdir,
    notes,
    gitEntries: scan.gitEntries,
    bareGitDirs: scan.bareGitDirs,
    toolConfigs: scan.toolConfigs,
  };
}

interface Where {
  home: string;
  workdir: string;
  field: string;
}

/**
 * A policy path as the directory it is relative to (taken literally: `~` → home, relative → the
 * workdir, absolute → /) and the policy's own words below it (which may hold globs). `..` and
 * `**` refused.
 */
export function splitPolicyPath(p: string, where: Where): { base: string; pattern: string } {
  if (p.includes("**"))
    throw new FilesystemPlanError(where.field, `"**" is not supported in ${JSON.stringify(p)}`);
  if (p.split("/").includes(".."))
    throw new FilesystemPlanError(where.field, `".." is not allowed in ${JSON.stringify(p)}`);
  if (p === "~") return { base: where.home, pattern: "" };
  if (p.startsWith("~/")) return { base: where.home, pattern: p.slice(2) };
  if (p.startsWith("~"))
    throw new FilesystemPlanError(where.field, `only the current user's home (~/) is supported: ${p}`);
  return path.isAbsolute(p) ? { base: "/", pattern: p } : { base: where.workdir, pattern: p };
}

/** One state path of the policy: where, and whether it is a directory (written with a trailing /). */
export interface StatePath {
  path: string;
  kind: "file" | "dir";
}

/** The policy's `filesystem.state` entries as host paths (pure). */
export function statePaths(policy: FilesystemPolicy, where: { home: string; workdir: string }): StatePath[] {
  return policy.state.map((p, i) => ({
    path: literalPolicyPath(p.replace(/\/+$/, "") || "/", { ...where, field: `filesystem.state[${i}]` }),
    kind: p.endsWith("/") ? "dir" : "file",
  }));
}

/** A policy path that names one path (writable, scratch): a glob there is an error, not a literal name. */
export function literalPolicyPath(p: string, where: Where): string {
  const { base, pattern } = splitPolicyPath(p, where);
  if (hasGlob(pattern))
    throw new FilesystemPlanError(
      where.field,
      `globs are not supported here: ${JSON.stringify(p)} (name each path, or escape * ? [ with \\)`,
    );
  return path.join(base, literalPath(pattern));
}

/** `~` and `~/x` → home; relative → the workdir; `..` and `**` refused (globs left as they are: for peers that expand their own). */
export function expandPath(p: string, where: Where): string {
  const { base, pattern } = splitPolicyPath(p, where);
  return path.join(base, pattern);
}

/**
 * Every git dir the box can reach, guarded: the repositories found in the walked tree (nested ones,
 * pointer files, the repository around the workdir), their common dirs, submodules and worktrees.
 * In each git dir inside a writable place, the names git reads as config, code or pointers are
 * read-only (placeholders where missing) and the git dir itself is pinned; each `.git` pointer file
 * is read-only; each worktree's .gitmodules, pre-commit config and hook dirs (core.hooksPath from
 * the repository's, the user's and the system's config; .husky, .githooks) are guarded.
 */
function protectGit(
  policy: FilesystemPolicy,
  g: {
    host: HostView;
    home: string;
    scan: { gitEntries: string[]; bareGitDirs: string[] };
    inWritable: (p: string) => boolean;
    protect: (p: string, kind: "file" | "dir", field: string, why: string, content?: string) => void;
    pin: (dir: string) => void;
    notes: string[];
  },
): void {
  const { host, home, inWritable, protect } = g;
  const field = "filesystem (git)";
  const allowed = (name: string) => policy.allowPersistence.includes(`.git/${name}`);
  const { repos, truncated } = discoverGitDirs(host, g.scan.gitEntries, g.scan.bareGitDirs);
  if (truncated)
    throw new FilesystemPlanError(
      field,
      "more git dirs than fourwall follows (submodules/worktrees): cannot guard them all",
    );
  for (const entry of g.scan.gitEntries) {
    if (host.kind(entry) === "file" && !policy.allowPersistence.includes(".git"))
      protect(entry, "file", field, "git: a .git file points git at another git dir");
  }
  const globalHooks = globalGitConfigs(home).flatMap((file) => (host.kind(file) === "missing" ? [] : [file]));
  for (const repo of repos) {
    if (inWritable(repo.gitDir)) {
      g.pin(repo.gitDir);
      for (const p of GIT_DIR_PROTECTED) {
        if (allowed(p.name)) continue;
        protect(path.join(repo.gitDir, p.name), p.kind, field, p.why, p.content);
      }
    }
    const worktree = repo.worktree;
    const hookDirs = [
      ...hooksDirs(host, path.join(repo.gitDir, "config"), { home, worktree }),
      ...globalHooks.flatMap((file) => hooksDirs(host, file, { home, worktree })),
    ];
    if (worktree) {
      for (const name of HOOK_DIR_NAMES) {
        if (host.kind(path.join(worktree, name)) !== "missing") hookDirs.push(path.join(worktree, name));
      }
      if (inWritable(worktree)) {
        for (const p of GIT_WORKTREE_PROTECTED)
          if (!policy.allowPersistence.includes(p.name))
            protect(path.join(worktree, p.name), p.kind, field, p.why);
      }
    }
    if (allowed("hooks")) continue;
    for (const dir of hookDirs.map(hookDirToGuard))
      protect(dir, "dir", field, "git hooks (core.hooksPath) run on the host's next commit");
  }
}
