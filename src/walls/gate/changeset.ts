import { spawnSync } from "node:child_process";
import {
  closeSync,
  constants,
  type Dirent,
  fchmodSync,
  fchownSync,
  fstatSync,
  lchownSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readlinkSync,
  readSync,
  renameSync,
  type Stats,
  symlinkSync,
} from "node:fs";
import path from "node:path";
import {
  GIT_DIR_SHAPE_NAMES,
  isToolConfigName,
  looksLikeGitDir,
  toolConfigDirWhy,
  toolConfigWhy,
} from "../filesystem/index.js";
import {
  at,
  chmodNoFollow,
  copyFd,
  inDir,
  openDir,
  openDirAt,
  openFileAt,
  removeAt,
  sha256OfFd,
  splitRel,
  tempName,
} from "./fsat.js";
import { decideFs, strictest } from "./rules.js";
import type { Decision, FsOp, GatePolicy } from "./schema.js";
import type { FsChange } from "./types.js";

/**
 * The change-set of one box run, read from the overlay's upper layer after the box has exited
 * and the layer was frozen (nothing in the box runs any more: no race with the agent). Entries:
 *   - a whiteout (char device 0:0): an entry of the real workdir deleted;
 *   - an opaque directory: every older entry inside it deleted (the box removed and remade it);
 *   - an entry with no counterpart in the real workdir: new, applied without asking — except a
 *     symlink leading out of the workdir (`symlink-out`), which is asked about;
 *   - an entry over an older one: overwritten (content), chmod-ed (mode only) or replaced (type);
 *     one that makes a file executable is its own kind (`exec`) and is asked about.
 * Deleted files whose content reappears under a new name are shown as renames.
 * Everything is read and written through directory fds (fsat.ts): no symlink followed, any depth.
 */

/** How an approved change is carried out. */
/** How an approved change reaches the workdir; "none": described only (git history: history.ts). */
export type ApplyHow = "copy" | "chmod" | "delete" | "rename" | "none";

export interface HeldChange extends FsChange {
  /** The policy's decision for it (exec and symlink-out: never less than ask). */
  decision: Decision;
  how: ApplyHow;
}

export interface ChangeSet {
  /** New paths (whole subtrees), relative to the workdir. */
  creates: string[];
  /** Changes to entries that existed before the run, and new symlinks leading out. */
  held: HeldChange[];
  /** New entries inside `creates` applied only if approved: symlinks leading out, new git repositories. */
  heldNew: Set<string>;
  /** What could not be read (reported, never silently dropped). */
  unreadable: string[];
}

export const isWhiteout = (s: { isCharacterDevice(): boolean; rdev: number | bigint }) =>
  s.isCharacterDevice() && Number(s.rdev) === 0;

function lstatOrNull(p: string): Stats | null {
  try {
    return lstatSync(p);
  } catch {
    return null;
  }
}

const octal = (mode: number) => (mode & 0o7777).toString(8);

/** Exec bits the new mode has and the old one had not (a file that now runs). */
export const addsExec = (oldMode: number | undefined, newMode: number): boolean =>
  (newMode & 0o111 & ~((oldMode ?? 0) & 0o111)) !== 0;

/**
 * The mode fourwall writes: never setuid, setgid or sticky on a file; on a directory only the
 * special bits it already had in the workdir (a shared repo's setgid directory stays one).
 */
export function appliedMode(newMode: number, isDir: boolean, oldMode?: number): number {
  const special = isDir && oldMode !== undefined ? newMode & oldMode & 0o7000 : 0;
  return (newMode & 0o777) | special;
}

export type EntryKind = "symlink" | "dir" | "other" | "missing";

/**
 * Whether a symlink at `linkRel` pointing at `target` leads out of the workdir (pure; `kindAt`
 * says what a workdir path will be after the apply). Absolute targets lead out; a relative one
 * leads out if `..` climbs above the workdir, or if it passes through another symlink (not
 * followed here: asked about rather than guessed).
 */
export function symlinkEscapes(linkRel: string, target: string, kindAt: (rel: string) => EntryKind): boolean {
  if (target.startsWith("/") || target === "") return true;
  const parts = path.posix
    .dirname(linkRel)
    .split("/")
    .filter((p) => p !== "" && p !== ".");
  for (const comp of target.split("/")) {
    if (comp === "" || comp === ".") continue;
    if (comp === "..") {
      if (parts.length === 0) return true;
      parts.pop();
      continue;
    }
    parts.push(comp);
    if (kindAt(parts.join("/")) === "symlink") return true;
  }
  return false;
}

export function sameContent(aDir: number, bDir: number, name: string, sa: Stats, sb: Stats): boolean {
  if (sa.size !== sb.size) return false;
  const a = openFileAt(aDir, name);
  const b = openFileAt(bDir, name);
  try {
    const ba = Buffer.allocUnsafe(1 << 16);
    const bb = Buffer.allocUnsafe(1 << 16);
    for (;;) {
      const n = readSync(a, ba, 0, ba.length, null);
      const m = readSync(b, bb, 0, bb.length, null);
      if (n !== m || !ba.subarray(0, n).equals(bb.subarray(0, m))) return false;
      if (n === 0) return true;
    }
  } finally {
    closeSync(a);
    closeSync(b);
  }
}

/** Whether applying the upper entry would leave the host entry as it is (content, target, masked mode). */
function sameAsApplied(uDir: number, lDir: number, name: string, us: Stats, ls: Stats): boolean {
  if (us.isSymbolicLink() && ls.isSymbolicLink())
    return readlinkSync(at(uDir, name)) === readlinkSync(at(lDir, name));
  if (!us.isFile() || !ls.isFile()) return false;
  return appliedMode(us.mode, false) === (ls.mode & 0o7777) && sameContent(uDir, lDir, name, us, ls);
}

function hashAt(rootFd: number, rel: string): string | undefined {
  try {
    const parts = splitRel(rel);
    return inDir(rootFd, parts.slice(0, -1), (d) => {
      const fd = openFileAt(d, parts.at(-1)!);
      try {
        return `${fstatSync(fd).size}:${sha256OfFd(fd)}`;
      } finally {
        closeSync(fd);
      }
    });
  } catch {
    return undefined;
  }
}

/** Directories overlayfs marked opaque (node has no xattr API: the native helper reads them). */
export function opaqueDirs(upper: string, helper: string): Set<string> {
  // The box wrote nothing (the common case): no directory to mark, no helper to start.
  if (readdirSync(upper).length === 0) return new Set();
  const r = spawnSync(helper, ["--opaque", upper], { encoding: "buffer", maxBuffer: 64 * 1024 * 1024 });
  if (r.status !== 0)
    throw new Error(
      `cannot read the overlay's opaque directories: ${r.stderr?.toString().trim() || r.error?.message}`,
    );
  return new Set(r.stdout.toString("utf8").split("\0").filter(Boolean));
}

/** What a workdir path will be after the apply: the upper layer's entry over the workdir's. */
export function mergedKind(upperFd: number, lowerFd: number, rel: string): EntryKind {
  const kindIn = (root: number): EntryKind | undefined => {
    try {
      const parts = splitRel(rel);
      const s = inDir(root, parts.slice(0, -1), (d) => lstatSync(at(d, parts.at(-1)!)));
      if (isWhiteout(s)) return "missing";
      return s.isSymbolicLink() ? "symlink" : s.isDirectory() ? "dir" : "other";
    } catch (error) {
      // a symlink on the way is not followed: say so, so the caller asks
      return (error as NodeJS.ErrnoException).code === "ELOOP" ? "symlink" : undefined;
    }
  };
  return kindIn(upperFd) ?? kindIn(lowerFd) ?? "missing";
}

export function readChangeSet(
  upper: string,
  lower: string,
  opaque: Set<string>,
  policy: GatePolicy["fs"],
  /**
   * Paths this run already made on the host (the live layer, live.ts) that are still as fourwall
   * left them: what differs there is new work of this run and flows like a new file.
   */
  made: ReadonlySet<string> = new Set(),
): ChangeSet {
  const creates: string[] = [];
  const raw: (FsChange & { how: ApplyHow; base?: FsOp; alwaysAsk?: boolean })[] = [];
  const unreadable: string[] = [];
  const heldNew = new Set<string>();
  const upperRoot = openDir(upper);
  const lowerRoot = openDir(lower);
  const escapes = (rel: string, target: string) =>
    symlinkEscapes(rel, target, (r) => mergedKind(upperRoot, lowerRoot, r));

  /** New symlinks leading out and new git repositories, anywhere in a new subtree. */
  const scanNew = (dirFd: number, name: string, rel: string, s: Stats) => {
    // A new repository brings hooks and config of the box's choosing (core.fsmonitor, hooks/*) that
    // run when the user later works there: the filesystem wall can only guard names that exist at
    // plan time, so the gate holds every new .git (directory or pointer file) until a human says yes.
    if (name === ".git") {
      heldNew.add(rel);
      raw.push({
        op: "new-repo",
        path: rel,
        detail: `a new git repository${s.isDirectory() ? "" : " pointer"}: its hooks and config would run on the host`,
        how: "copy",
        alwaysAsk: true,
      });
      return;
    }
    // Tool config that makes a host tool run a program (`.npmrc` script-shell, `.cargo/config.toml`
    // rustc-wrapper, ...), anywhere: the wall guards those that exist; a new one is asked about.
    const tool = s.isDirectory()
      ? undefined
      : ((isToolConfigName(name) ? toolConfigWhy(rel) : undefined) ??
        (s.isSymbolicLink() ? toolConfigDirWhy(rel) : undefined));
    if (tool) {
      heldNew.add(rel);
      raw.push({
        op: "tool-config",
        path: rel,
        detail: `new tool config: ${tool}`,
        how: "copy",
        alwaysAsk: true,
      });
      return;
    }
    if (s.isSymbolicLink()) {
      const target = readlinkSync(at(dirFd, name));
      if (escapes(rel, target)) {
        heldNew.add(rel);
        raw.push({
          op: "symlink-out",
          path: rel,
          detail: `new symlink → ${target}`,
          how: "copy",
          alwaysAsk: true,
        });
      }
      return;
    }
    if (!s.isDirectory()) return;
    const fd = openDirAt(dirFd, name);
    try {
      const children = readdirSync(at(fd));
      // a new bare repository (HEAD, objects/, refs/: no `.git` in its path) is a new repository too
      if (looksLikeGitDir(children)) {
        heldNew.add(rel);
        raw.push({ op: "new-repo", path: rel, detail: bareDetail(rel), how: "copy", alwaysAsk: true });
        return;
      }
      for (const child of children) scanNew(fd, child, `${rel}/${child}`, lstatSync(at(fd, child)));
    } finally {
      closeSync(fd);
    }
  };

  const walk = (uFd: number, lFd: number, rel: string) => {
    const entries: Dirent[] = readdirSync(at(uFd), { withFileTypes: true });
    // the host directory's names, read only when needed (an opaque directory, a git dir's shape)
    let lower: string[] | undefined;
    const lowerNames = () => (lower ??= readdirSync(at(lFd)));
    if (rel && opaque.has(rel)) {
      const kept = new Set(entries.map((e) => e.name));
      for (const name of lowerNames())
        if (!kept.has(name)) raw.push({ op: "delete", path: `${rel}/${name}`, how: "delete" });
    }
    const madeRepo = newShapeEntries(uFd, rel, entries, lowerNames, opaque);
    if (madeRepo.length > 0) {
      // an existing directory the box turns into a git dir: the names that complete the shape wait
      for (const name of madeRepo) {
        const r = rel ? `${rel}/${name}` : name;
        heldNew.add(r);
        raw.push({ op: "new-repo", path: r, detail: bareDetail(rel), how: "copy", alwaysAsk: true });
      }
    }
    for (const entry of entries) {
      const name = entry.name;
      const r = rel ? `${rel}/${name}` : name;
      if (madeRepo.includes(name)) {
        creates.push(r);
        continue;
      }
      try {
        const us = lstatSync(at(uFd, name));
        const ls = lstatOrNull(at(lFd, name));
        if (isWhiteout(us)) {
          if (ls)
            raw.push({
              op: "delete",
              path: r,
              detail: ls.isDirectory() ? "directory" : undefined,
              how: "delete",
            });
          continue;
        }
        if (!ls) {
          creates.push(r);
          scanNew(uFd, name, r, us);
          continue;
        }
        if (made.has(r) && !(us.isDirectory() && ls.isDirectory())) {
          if (!sameAsApplied(uFd, lFd, name, us, ls)) {
            creates.push(r);
            scanNew(uFd, name, r, us);
          }
          continue;
        }
        const change = `${octal(ls.mode)} → ${octal(us.mode)}`;
        if (us.isDirectory() && ls.isDirectory()) {
          if ((us.mode & 0o7777) !== (ls.mode & 0o7777) && !made.has(r))
            raw.push({ op: "chmod", path: r, detail: change, how: "chmod" });
          const u2 = openDirAt(uFd, name);
          try {
            const l2 = openDirAt(lFd, name);
            try {
              walk(u2, l2, r);
            } finally {
              closeSync(l2);
            }
          } finally {
            closeSync(u2);
          }
          continue;
        }
        const target = us.isSymbolicLink() ? readlinkSync(at(uFd, name)) : undefined;
        if (us.isDirectory() !== ls.isDirectory() || us.isSymbolicLink() !== ls.isSymbolicLink()) {
          const was = ls.isDirectory() ? "directory" : ls.isSymbolicLink() ? "symlink" : "file";
          if (target !== undefined && escapes(r, target))
            raw.push({
              op: "symlink-out",
              path: r,
              detail: `${was} replaced by a symlink → ${target}`,
              how: "copy",
              base: "delete",
              alwaysAsk: true,
            });
          else if (us.isFile() && addsExec(undefined, us.mode))
            raw.push({
              op: "exec",
              path: r,
              detail: `${was} replaced by an executable file (${octal(us.mode)})`,
              how: "copy",
              base: "delete",
              alwaysAsk: true,
            });
          else {
            raw.push({ op: "replace", path: r, detail: `${was} replaced`, how: "copy", base: "delete" });
            // a new directory in its place: its symlinks out are their own changes
            if (us.isDirectory()) scanNew(uFd, name, r, us);
          }
          continue;
        }
        if (target !== undefined) {
          if (target === readlinkSync(at(lFd, name))) continue;
          if (escapes(r, target))
            raw.push({
              op: "symlink-out",
              path: r,
              detail: `symlink now → ${target}`,
              how: "copy",
              base: "overwrite",
              alwaysAsk: true,
            });
          else raw.push({ op: "overwrite", path: r, detail: `symlink now → ${target}`, how: "copy" });
          continue;
        }
        if (!us.isFile() || !ls.isFile()) continue; // fifos, sockets, devices: nothing to keep after the box
        const exec = addsExec(ls.mode, us.mode);
        if (!sameContent(uFd, lFd, name, us, ls)) {
          if (exec)
            raw.push({
              op: "exec",
              path: r,
              detail: `overwritten and made executable: ${change}`,
              how: "copy",
              base: "overwrite",
              alwaysAsk: true,
            });
          else raw.push({ op: "overwrite", path: r, how: "copy" });
        } else if ((us.mode & 0o7777) !== (ls.mode & 0o7777)) {
          if (exec)
            raw.push({
              op: "exec",
              path: r,
              detail: `made executable: ${change}`,
              how: "chmod",
              base: "chmod",
              alwaysAsk: true,
            });
          else raw.push({ op: "chmod", path: r, detail: change, how: "chmod" });
        }
        // same content and mode: opened for writing or touched, nothing lost
      } catch (error) {
        unreadable.push(`${r}: ${(error as Error).message}`);
      }
    }
  };
  try {
    walk(upperRoot, lowerRoot, "");
    // Renames: a deleted file whose exact content is now a new file.
    const renamedTo = new Set<string>();
    if (raw.some((c) => c.op === "delete")) {
      const newByHash = new Map<string, string>();
      for (const c of creates) {
        const h = hashAt(upperRoot, c);
        if (h && !newByHash.has(h)) newByHash.set(h, c);
      }
      for (const change of raw) {
        if (change.op !== "delete") continue;
        const h = hashAt(lowerRoot, change.path);
        const to = h ? newByHash.get(h) : undefined;
        if (to && !renamedTo.has(to) && !heldNew.has(to)) {
          change.op = "rename";
          change.how = "rename";
          change.to = to;
          renamedTo.add(to);
        }
      }
    }
    const held: HeldChange[] = raw.map(({ base, alwaysAsk, ...c }) => {
      const op: FsOp | undefined = base ?? (c.op === "replace" ? "delete" : (c.op as FsOp));
      // a new symlink out or repository has no policy op: it is asked (only a deny rule is stricter)
      const fromPolicy =
        (c.op === "symlink-out" || c.op === "new-repo" || c.op === "tool-config") && !base
          ? "ask"
          : decideFs(policy.rules, policy.default, c.path, op!).decision;
      return { ...c, decision: alwaysAsk ? strictest([fromPolicy, "ask"], "ask") : fromPolicy };
    });
    return { creates: creates.filter((c) => !renamedTo.has(c)), held, heldNew, unreadable };
  } finally {
    closeSync(upperRoot);
    closeSync(lowerRoot);
  }
}

const bareDetail = (dir: string) =>
  `${dir ? `${dir}/` : "the workdir"} becomes a git repository (bare: HEAD, objects/, refs/): git there runs its config (core.pager, core.fsmonitor) on the host`;

/**
 * The entries of an existing directory that make it a git dir by its shape (looksLikeGitDir) now
 * when it was none on the host: the shape's names (HEAD, objects, refs, commondir) the box added.
 * Empty when the directory is no git dir after the apply, or was one before.
 */
function newShapeEntries(
  uFd: number,
  rel: string,
  upper: readonly Dirent[],
  readLower: () => readonly string[],
  opaque: ReadonlySet<string>,
): string[] {
  if (!upper.some((e) => (GIT_DIR_SHAPE_NAMES as readonly string[]).includes(e.name))) return [];
  const lowerNames = readLower();
  const after = new Set(rel && opaque.has(rel) ? [] : lowerNames);
  const added: string[] = [];
  for (const e of upper) {
    const s = lstatSync(at(uFd, e.name));
    if (isWhiteout(s)) {
      after.delete(e.name);
      continue;
    }
    if (!lowerNames.includes(e.name) && (GIT_DIR_SHAPE_NAMES as readonly string[]).includes(e.name))
      added.push(e.name);
    after.add(e.name);
  }
  return added.length > 0 && looksLikeGitDir(after) && !looksLikeGitDir(lowerNames) ? added : [];
}

export function summarise(changes: readonly FsChange[]): string {
  const counts = new Map<string, number>();
  for (const c of changes) counts.set(c.op, (counts.get(c.op) ?? 0) + 1);
  return [...counts]
    .map(([op, n]) => `${op} ${n} ${op === "history" ? "ref" : "file"}${n === 1 ? "" : "s"}`)
    .join(", ");
}

export interface ApplyOptions {
  upper: string;
  workdir: string;
  /** Owner of what fourwall writes into the workdir (root mode: the workdir's owner, not root). */
  owner?: { uid: number; gid: number };
  /** New symlinks leading out that were not approved: left out of the new subtrees. */
  skip?: ReadonlySet<string>;
}

/**
 * Applies changes to the real workdir through directory fds (fsat.ts): every directory on the way
 * is opened without following a symlink, so nothing is ever written through one and nothing lands
 * outside the workdir; a symlink is only ever made as a symlink. Modes are masked (appliedMode).
 * Temporary names are short (a 255-byte name is applied like any other), and paths deeper than
 * PATH_MAX are reached one directory at a time. Failures are collected, never thrown.
 */
export class Applier {
  readonly failures: string[] = [];
  private readonly upperRoot: number;
  private readonly workRoot: number;
  /** New symlinks out not (yet) approved: never written, wherever they sit in a copied tree. */
  private readonly skip: Set<string>;

  constructor(private readonly o: ApplyOptions) {
    this.skip = new Set(o.skip);
    this.upperRoot = openDir(o.upper);
    this.workRoot = openDir(o.workdir);
  }

  close(): void {
    closeSync(this.upperRoot);
    closeSync(this.workRoot);
  }

  /** Runs fn in the parent directories of `rel` in the upper layer and in the workdir. */
  private inParents(rel: string, fn: (upperDir: number, workDir: number, name: string) => void): void {
    const parts = splitRel(rel);
    const dirs = parts.slice(0, -1);
    let workDir: number;
    try {
      workDir = inDir(this.workRoot, dirs, (d) => openDirAt(d, "."));
    } catch {
      return void this.failures.push(`${rel}: its directory is gone or is not a directory`);
    }
    try {
      inDir(this.upperRoot, dirs, (u) => fn(u, workDir, parts.at(-1)!));
    } finally {
      closeSync(workDir);
    }
  }

  private own(fd: number) {
    if (this.o.owner) fchownSync(fd, this.o.owner.uid, this.o.owner.gid);
  }

  private copyEntry(upperDir: number, workDir: number, name: string, rel: string): void {
    const s = lstatSync(at(upperDir, name));
    if (isWhiteout(s) || this.skip.has(rel)) return;
    const existing = lstatOrNull(at(workDir, name));
    if (s.isDirectory()) {
      if (existing && !existing.isDirectory()) removeAt(workDir, name);
      if (!existing?.isDirectory()) mkdirSync(at(workDir, name), { mode: 0o700 });
      const u = openDirAt(upperDir, name);
      const w = openDirAt(workDir, name);
      try {
        this.own(w);
        fchmodSync(w, appliedMode(s.mode, true, existing?.isDirectory() ? existing.mode : undefined));
        for (const child of readdirSync(at(u))) this.copyEntry(u, w, child, `${rel}/${child}`);
      } finally {
        closeSync(u);
        closeSync(w);
      }
      return;
    }
    if (!s.isFile() && !s.isSymbolicLink()) return; // sockets, fifos, devices: nothing to keep after the box
    const tmp = tempName();
    try {
      if (s.isSymbolicLink()) {
        symlinkSync(readlinkSync(at(upperDir, name)), at(workDir, tmp));
        if (this.o.owner) lchownSync(at(workDir, tmp), this.o.owner.uid, this.o.owner.gid);
      } else {
        const from = openFileAt(upperDir, name);
        try {
          const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
          const to = openSync(at(workDir, tmp), flags, 0o600);
          try {
            copyFd(from, to);
            this.own(to);
            fchmodSync(to, appliedMode(s.mode, false)); // after chown, which may clear bits
          } finally {
            closeSync(to);
          }
        } finally {
          closeSync(from);
        }
      }
      if (existing?.isDirectory()) removeAt(workDir, name);
      renameSync(at(workDir, tmp), at(workDir, name));
    } catch (error) {
      try {
        removeAt(workDir, tmp);
      } catch {}
      throw error;
    }
  }

  private attempt(what: string, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.failures.push(`${what}: ${(error as Error).message}`);
    }
  }

  create(rel: string): void {
    this.attempt(rel, () => this.inParents(rel, (u, w, name) => this.copyEntry(u, w, name, rel)));
  }

  apply(change: HeldChange): void {
    const rel = change.path;
    if (change.op === "symlink-out" || change.op === "new-repo" || change.op === "tool-config")
      this.skip.delete(rel);
    this.attempt(`${change.op} ${rel}`, () =>
      this.inParents(rel, (u, w, name) => {
        switch (change.how) {
          case "delete":
            removeAt(w, name);
            break;
          case "rename":
            removeAt(w, name);
            if (change.to) this.create(change.to);
            break;
          case "copy":
            this.copyEntry(u, w, name, rel);
            break;
          case "none": // a history change (history.ts) is described only: the files that carry it apply
            break;
          case "chmod": {
            const s = lstatSync(at(u, name));
            const old = lstatSync(at(w, name));
            chmodNoFollow(w, name, appliedMode(s.mode, old.isDirectory(), old.mode));
            break;
          }
        }
      }),
    );
  }
}
