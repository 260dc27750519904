import { spawnSync } from "node:child_process";
import { createHash } from "node:crypto";
import {
  chmodSync,
  copyFileSync,
  type Dirent,
  lchownSync,
  lstatSync,
  mkdirSync,
  readdirSync,
  readFileSync,
  readlinkSync,
  renameSync,
  rmSync,
  type Stats,
  symlinkSync,
} from "node:fs";
import path from "node:path";
import { decideFs } from "./rules.js";
import type { Decision, FsOp, GatePolicy } from "./schema.js";
import type { FsChange } from "./types.js";

/**
 * The change-set of one box run, read from the overlay's upper layer after the box has exited
 * (nothing in the box runs any more: no race with the agent). Entries:
 *   - a whiteout (char device 0:0): an entry of the real workdir deleted;
 *   - an opaque directory: every older entry inside it deleted (the box removed and remade it);
 *   - an entry with no counterpart in the real workdir: new, applied without asking;
 *   - an entry over an older one: overwritten (content), chmod-ed (mode only) or replaced (type).
 * Deleted files whose content reappears under a new name are shown as renames.
 */

export interface HeldChange extends FsChange {
  op: FsOp | "replace";
  /** The policy's decision for it. */
  decision: Decision;
}

export interface ChangeSet {
  /** New paths (whole subtrees), relative to the workdir. */
  creates: string[];
  /** Changes to entries that existed before the run. */
  held: HeldChange[];
}

const isWhiteout = (s: Stats) => s.isCharacterDevice() && s.rdev === 0;

function lstatOrNull(p: string): Stats | null {
  try {
    return lstatSync(p);
  } catch {
    return null;
  }
}

function sameFile(a: string, b: string, sa: Stats, sb: Stats): boolean {
  if (sa.isSymbolicLink() && sb.isSymbolicLink()) return readlinkSync(a) === readlinkSync(b);
  if (!sa.isFile() || !sb.isFile() || sa.size !== sb.size) return false;
  return readFileSync(a).equals(readFileSync(b));
}

const hashOf = (p: string) => {
  try {
    const s = lstatSync(p);
    return s.isFile() ? `${s.size}:${createHash("sha256").update(readFileSync(p)).digest("hex")}` : undefined;
  } catch {
    return undefined;
  }
};

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

export function readChangeSet(
  upper: string,
  lower: string,
  opaque: Set<string>,
  policy: GatePolicy["fs"],
): ChangeSet {
  const creates: string[] = [];
  const raw: FsChange[] = [];
  const walk = (rel: string) => {
    let entries: Dirent[];
    try {
      entries = readdirSync(path.join(upper, rel), { withFileTypes: true });
    } catch {
      return;
    }
    if (rel && opaque.has(rel)) {
      const kept = new Set(entries.map((e) => e.name));
      for (const name of safeReaddir(path.join(lower, rel)))
        if (!kept.has(name)) raw.push({ op: "delete", path: path.join(rel, name) });
    }
    for (const entry of entries) {
      const r = rel ? path.join(rel, entry.name) : entry.name;
      const u = path.join(upper, r);
      const l = path.join(lower, r);
      const us = lstatSync(u);
      const ls = lstatOrNull(l);
      if (isWhiteout(us)) {
        if (ls) raw.push({ op: "delete", path: r, detail: ls.isDirectory() ? "directory" : undefined });
        continue;
      }
      if (!ls) {
        creates.push(r);
        continue;
      }
      if (us.isDirectory() && ls.isDirectory()) {
        if ((us.mode & 0o7777) !== (ls.mode & 0o7777))
          raw.push({
            op: "chmod",
            path: r,
            detail: `${(ls.mode & 0o7777).toString(8)} → ${(us.mode & 0o7777).toString(8)}`,
          });
        walk(r);
        continue;
      }
      if (us.isDirectory() !== ls.isDirectory() || us.isSymbolicLink() !== ls.isSymbolicLink()) {
        raw.push({
          op: "replace",
          path: r,
          detail: `${ls.isDirectory() ? "directory" : ls.isSymbolicLink() ? "symlink" : "file"} replaced`,
        });
        continue;
      }
      if (!sameFile(u, l, us, ls)) raw.push({ op: "overwrite", path: r });
      else if ((us.mode & 0o7777) !== (ls.mode & 0o7777))
        raw.push({
          op: "chmod",
          path: r,
          detail: `${(ls.mode & 0o7777).toString(8)} → ${(us.mode & 0o7777).toString(8)}`,
        });
      // same content and mode: opened for writing or touched, nothing lost
    }
  };
  walk("");
  // Renames: a deleted file whose exact content is now a new file.
  const newByHash = new Map<string, string>();
  for (const c of creates) {
    const h = hashOf(path.join(upper, c));
    if (h && !newByHash.has(h)) newByHash.set(h, c);
  }
  const renamedTo = new Set<string>();
  for (const change of raw) {
    if (change.op !== "delete") continue;
    const h = hashOf(path.join(lower, change.path));
    const to = h ? newByHash.get(h) : undefined;
    if (to && !renamedTo.has(to)) {
      change.op = "rename";
      change.to = to;
      renamedTo.add(to);
    }
  }
  const held: HeldChange[] = raw.map((c) => {
    const op: FsOp = c.op === "replace" ? "delete" : (c.op as FsOp);
    return {
      ...c,
      op: c.op,
      decision: decideFs(policy.rules, policy.default, c.path, op).decision,
    } as HeldChange;
  });
  return { creates: creates.filter((c) => !renamedTo.has(c)), held };
}

function safeReaddir(p: string): string[] {
  try {
    return readdirSync(p);
  } catch {
    return [];
  }
}

export function summarise(changes: readonly FsChange[]): string {
  const counts = new Map<string, number>();
  for (const c of changes) counts.set(c.op, (counts.get(c.op) ?? 0) + 1);
  return [...counts].map(([op, n]) => `${op} ${n} file${n === 1 ? "" : "s"}`).join(", ");
}

export interface ApplyOptions {
  upper: string;
  workdir: string;
  /** Owner of what fourwall writes into the workdir (root mode: the workdir's owner, not root). */
  owner?: { uid: number; gid: number };
}

/**
 * Applies changes to the real workdir, never following a symlink in it: every parent of a path it
 * writes must be a real directory inside the workdir (the box may have left a symlink in the
 * upper layer, but a symlink is only ever copied as a symlink, never written through).
 */
export class Applier {
  readonly failures: string[] = [];

  constructor(private readonly o: ApplyOptions) {}

  private parentOk(rel: string): boolean {
    let dir = this.o.workdir;
    for (const part of path
      .dirname(rel)
      .split(path.sep)
      .filter((p) => p && p !== ".")) {
      dir = path.join(dir, part);
      const s = lstatOrNull(dir);
      if (!s?.isDirectory()) return false;
    }
    return true;
  }

  private own(p: string) {
    if (this.o.owner) {
      try {
        lchownSync(p, this.o.owner.uid, this.o.owner.gid);
      } catch {}
    }
  }

  private copy(rel: string): void {
    const src = path.join(this.o.upper, rel);
    const dst = path.join(this.o.workdir, rel);
    const s = lstatSync(src);
    if (isWhiteout(s)) return;
    if (s.isDirectory()) {
      const existing = lstatOrNull(dst);
      if (existing && !existing.isDirectory()) rmSync(dst, { force: true });
      if (!existing?.isDirectory()) mkdirSync(dst);
      chmodSync(dst, s.mode & 0o7777);
      this.own(dst);
      for (const name of readdirSync(src)) this.copy(path.join(rel, name));
      return;
    }
    const tmp = path.join(path.dirname(dst), `.fourwall-${process.pid}-${path.basename(dst)}`);
    rmSync(tmp, { force: true, recursive: true });
    if (s.isSymbolicLink()) symlinkSync(readlinkSync(src), tmp);
    else if (s.isFile()) {
      copyFileSync(src, tmp);
      chmodSync(tmp, s.mode & 0o7777);
    } else return; // sockets, fifos, devices: nothing to keep after the box
    this.own(tmp);
    const existing = lstatOrNull(dst);
    if (existing?.isDirectory()) rmSync(dst, { recursive: true, force: true });
    renameSync(tmp, dst);
  }

  private attempt(what: string, fn: () => void): void {
    try {
      fn();
    } catch (error) {
      this.failures.push(`${what}: ${(error as Error).message}`);
    }
  }

  create(rel: string): void {
    if (!this.parentOk(rel))
      return void this.failures.push(`${rel}: its directory is gone or is not a directory`);
    this.attempt(rel, () => this.copy(rel));
  }

  apply(change: FsChange): void {
    const rel = change.path;
    if (!this.parentOk(rel))
      return void this.failures.push(`${rel}: its directory is gone or is not a directory`);
    const real = path.join(this.o.workdir, rel);
    this.attempt(`${change.op} ${rel}`, () => {
      switch (change.op) {
        case "delete":
          rmSync(real, { recursive: true, force: true });
          break;
        case "rename":
          rmSync(real, { recursive: true, force: true });
          if (change.to) this.create(change.to);
          break;
        case "replace":
        case "overwrite":
          this.copy(rel);
          break;
        case "chmod": {
          const s = lstatSync(path.join(this.o.upper, rel));
          if (!lstatSync(real).isSymbolicLink()) chmodSync(real, s.mode & 0o7777);
          break;
        }
      }
    });
  }
}
