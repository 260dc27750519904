import path from "node:path";
import { isUnder } from "../../core/paths.js";
import { expandGlob, GlobError, hasGlob, literalPath } from "./glob.js";
import type { HostView } from "./host-view.js";
import { HOME_SECRETS, PERSISTENCE_PATHS, SOCKET_DIRS, SYSTEM_SECRETS, WORKDIR_SECRETS } from "./lists.js";
import type { FilesystemPlan, Mount, Placeholder } from "./mounts.js";
import type { FilesystemPolicy } from "./schema.js";

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
}

/** A policy entry the wall cannot enforce: an error, never a silent no-op. */
export class FilesystemPlanError extends Error {
  constructor(
    readonly field: string,
    reason: string,
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

  if (workdir === "/") throw new FilesystemPlanError("workdir", "the whole filesystem cannot be the workdir");
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

  // secrets: expand now, so the home rebuild can leave top-level ones out
  const secretPatterns = [
    ...HOME_SECRETS.map((s) => ({ base: home, pattern: s, field: "filesystem.hide (built-in)" })),
    ...SYSTEM_SECRETS.map((s) => ({ base: "/", pattern: s, field: "filesystem.hide (built-in)" })),
    ...(policy.allowDotEnv ? [] : WORKDIR_SECRETS).map((s) => ({
      base: workdir,
      pattern: s,
      field: "filesystem.hide (.env)",
    })),
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

  // 2. HOME rebuilt from the host's entries, secrets left out
  const rebuildHome =
    hostRoot === "/" && home !== "/" && host.kind(home) === "dir" && !isUnder(home, workdir);
  const leftOut = new Set<string>();
  if (rebuildHome) {
    mounts.push({
      type: "tmpfs",
      target: home,
      why: "private HOME: host entries bound back read-only, secrets left out",
    });
    const scratch = new Set(policy.scratch.map((s, i) => expand(s, `filesystem.scratch[${i}]`)));
    for (const name of host.readdir(home)) {
      const entry = path.join(home, name);
      if (secrets.includes(entry)) {
        leftOut.add(entry);
        continue;
      }
      if (scratch.has(entry)) continue;
      const kind = host.kind(entry);
      if (kind === "socket") {
        notes.push(`home socket ${entry} left out`);
        continue;
      }
      if (kind === "symlink") {
        mounts.push({ type: "symlink", target: entry, linkTo: host.readlink(entry), why: "home entry" });
      } else {
        mounts.push({ type: "bind", source: entry, target: entry, writable: false, why: "home entry" });
      }
    }
  } else if (hostRoot !== "/") {
    mounts.push({ type: "tmpfs", target: home, why: "private HOME in a custom root" });
  }

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
  policy.writable.forEach((w, i) => {
    const target = expand(w, `filesystem.writable[${i}]`);
    if (target === "/")
      throw new FilesystemPlanError(`filesystem.writable[${i}]`, "the whole filesystem cannot be writable");
    if (host.kind(target) === "missing") {
      notes.push(`writable ${target} skipped: it does not exist`);
      return;
    }
    if (writable.some((done) => isUnder(target, done))) return;
    writable.push(target);
    mounts.push({ type: "bind", source: target, target, writable: true, why: "writable by policy" });
  });
  const inWritable = (p: string) => writable.some((w) => isUnder(p, w));

  // 4. read-only islands inside writable places
  const protect = (relOrAbs: string, kind: "file" | "dir", field: string, why: string) => {
    const target = path.isAbsolute(relOrAbs) ? relOrAbs : path.join(workdir, relOrAbs);
    if (!inWritable(target)) return; // already read-only
    const existing = host.kind(target);
    if (existing !== "missing") {
      mounts.push({ type: "bind", source: target, target, writable: false, why });
      return;
    }
    // Not there yet: stand a placeholder on the first missing component, so nothing can be created.
    let first = target;
    while (host.kind(path.dirname(first)) === "missing") first = path.dirname(first);
    if (!inWritable(path.dirname(first)) || first === workdir) {
      throw new FilesystemPlanError(field, `cannot protect ${target}`);
    }
    if (placeholders.some((p) => p.path === first)) return; // one placeholder already guards it
    const placeholderKind = first === target ? kind : "dir";
    placeholders.push({ path: first, kind: placeholderKind, content: placeholderContent(first) });
    mounts.push({ type: "bind", source: first, target: first, writable: false, why });
  };
  policy.readOnly.forEach((r, i) => {
    const field = `filesystem.readOnly[${i}]`;
    const { base, pattern } = splitPolicyPath(r, where(field));
    const found = matches(base, pattern, field);
    // A glob covers what exists now; a literal path is protected even before it exists (placeholder).
    if (found.length === 0) notes.push(`${field} ${r} matches nothing on the host: nothing to protect`);
    for (const target of found)
      protect(target, r.endsWith("/") ? "dir" : "file", field, "read-only by policy");
  });
  const gitKind = host.kind(path.join(workdir, ".git"));
  if (gitKind === "file" && !policy.allowPersistence.includes(".git")) {
    protect(".git", "file", "filesystem (persistence)", "a .git file points git at another repository");
  }
  for (const entry of PERSISTENCE_PATHS) {
    if (policy.allowPersistence.includes(entry.path)) continue;
    if (entry.gitOnly && gitKind !== "dir") continue; // no repository: nothing to hook
    protect(entry.path, entry.kind, "filesystem (persistence)", entry.why);
  }

  // 5. covers over secrets that would still be visible
  for (const secret of new Set(secrets)) {
    if (leftOut.has(secret) && !inWritable(secret)) continue; // not in the box at all
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

  return { mounts, placeholders, writable, home, cwd: workdir, notes };
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
