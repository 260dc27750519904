// The pause's at-once path, effectful part: records the host entries a question is about when it
// is asked, then, after the yes, applies to the host exactly the approved change once the layer
// shows it (coveredAtOnce, pause.ts) — checked on the very fds it copies from, never on a path
// looked up again. Anything else the box left at the path waits in the layer for the review.
import { createHash } from "node:crypto";
import {
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  fstatSync,
  linkSync,
  lstatSync,
  openSync,
  readSync,
  renameSync,
  rmdirSync,
  type Stats,
  unlinkSync,
  writeSync,
} from "node:fs";
import { appliedMode, isWhiteout } from "./changeset.js";
import { at, chmodNoFollow, inDir, openDir, openDirAt, openFileAt, splitRel, tempName } from "./fsat.js";
import { askedPaths, coveredAtOnce, type EntryFacts, type PauseExpect } from "./pause.js";

const kindOf = (s: Stats): EntryFacts["kind"] =>
  isWhiteout(s)
    ? "whiteout"
    : s.isFile()
      ? "file"
      : s.isDirectory()
        ? "dir"
        : s.isSymbolicLink()
          ? "symlink"
          : "other";

const factsOf = (s: Stats): EntryFacts => ({ kind: kindOf(s), mode: s.mode, ino: s.ino, size: s.size });

/** Runs fn in the directory holding `rel` (walked without following symlinks); undefined when gone. */
function inParent<T>(root: number, rel: string, fn: (dir: number, name: string) => T): T | undefined {
  const parts = splitRel(rel);
  try {
    return inDir(root, parts.slice(0, -1), (d) => fn(d, parts.at(-1)!));
  } catch {
    return undefined;
  }
}

const lstatAt = (dir: number, name: string): Stats | undefined => {
  try {
    return lstatSync(at(dir, name));
  } catch {
    return undefined;
  }
};

/** sha256 of an open file's content, and of it cut or zero-padded to `cut` bytes. */
function hashFd(fd: number, cut?: number): { sha256: string; cutSha256?: string } {
  const all = createHash("sha256");
  const part = cut === undefined ? undefined : createHash("sha256");
  const buf = Buffer.allocUnsafe(1 << 20);
  let seen = 0;
  for (let n = readSync(fd, buf, 0, buf.length, 0); n > 0; n = readSync(fd, buf, 0, buf.length, seen)) {
    all.update(buf.subarray(0, n));
    if (part && cut !== undefined && seen < cut) part.update(buf.subarray(0, Math.min(n, cut - seen)));
    seen += n;
  }
  if (part && cut !== undefined)
    for (let left = cut - seen; left > 0; left -= Math.min(left, buf.length))
      part.update(Buffer.alloc(Math.min(left, buf.length)));
  return { sha256: all.digest("hex"), cutSha256: part?.digest("hex") };
}

/**
 * The host entries an approval is about, as they are when the question is asked (before the
 * syscall continues): kind, mode, inode, and a regular file's size and sha256.
 */
export function recordAsked(
  workdir: string,
  upper: string,
  expect: readonly PauseExpect[],
): Map<string, EntryFacts> {
  const facts = new Map<string, EntryFacts>();
  const root = openDir(workdir);
  const layer = openDir(upper);
  try {
    for (const rel of askedPaths(expect)) {
      const cut = expect.find((e) => e.kind === "truncated" && e.path === rel);
      // a rename's source made in this run: the layer's file is the one asked about
      const inLayer = expect.some((e) => e.kind === "moved" && e.fromLayer && e.from === rel);
      // content is judged only for a rename's source, a rewrite and a truncation (a delete or a
      // chmod of a large tree hashes nothing)
      const content = expect.some(
        (e) =>
          (e.kind === "moved" && e.from === rel) ||
          ((e.kind === "rewritten" || e.kind === "truncated") && e.path === rel),
      );
      const f = inParent(inLayer ? layer : root, rel, (d, name): EntryFacts | undefined => {
        const s = lstatAt(d, name);
        if (!s) return undefined;
        if (!s.isFile() || !content) return factsOf(s);
        const fd = openFileAt(d, name);
        try {
          const fs = fstatSync(fd);
          return { ...factsOf(fs), ...hashFd(fd, cut?.kind === "truncated" ? cut.length : undefined) };
        } finally {
          closeSync(fd);
        }
      });
      if (f) facts.set(rel, f);
    }
  } finally {
    closeSync(root);
    closeSync(layer);
  }
  return facts;
}

export interface AtOnceOptions {
  upper: string;
  workdir: string;
  owner?: { uid: number; gid: number };
}

/** A regular file of the layer copied into a temporary name next to its host place, hashed as copied. */
interface Staged {
  dir: number;
  tmp: string;
}

/**
 * One approval's at-once apply. `tryApply` looks once: if every expectation is covered it lands
 * them all and returns true; else it changes nothing on the host and returns false (look again later).
 */
export class AtOnceApply {
  constructor(
    private readonly o: AtOnceOptions,
    private readonly expect: readonly PauseExpect[],
    private readonly asked: ReadonlyMap<string, EntryFacts>,
  ) {}

  tryApply(): boolean {
    const upper = openDir(this.o.upper);
    const host = openDir(this.o.workdir);
    const staged: (Staged | undefined)[] = [];
    try {
      for (const e of this.expect) {
        const s = this.look(e, upper, host);
        if (s === false) return false;
        staged.push(s === true ? undefined : s);
      }
      // every expectation holds: land them, the new content first, then deletes and modes
      this.expect.forEach((e, i) => {
        const s = staged[i];
        if (s) this.place(e, s);
      });
      for (const e of this.expect) if (e.kind === "gone" || e.kind === "mode") this.settle(e, host);
      return true;
    } finally {
      for (const s of staged)
        if (s) {
          try {
            unlinkSync(at(s.dir, s.tmp));
          } catch {}
          closeSync(s.dir);
        }
      closeSync(upper);
      closeSync(host);
    }
  }

  /** Whether `e` is covered now; a file's content is staged (copied and hashed from one fd). */
  private look(e: PauseExpect, upper: number, host: number): Staged | boolean {
    const hostNow = inParent(host, e.path, (d, name) => lstatAt(d, name));
    const hostFacts = hostNow ? factsOf(hostNow) : undefined;
    const asked = (rel: string) => this.asked.get(rel);
    return (
      inParent(upper, e.path, (ud, name): Staged | boolean => {
        const us = lstatAt(ud, name);
        const first = coveredAtOnce(e, asked, us ? factsOf(us) : undefined, hostFacts);
        if (first === false) return false;
        if (e.kind === "gone" || e.kind === "mode") return first === true;
        // content matters: open the layer's file once, and judge (and later copy) only those bytes
        const from = openFileAt(ud, name);
        let dir: number | undefined;
        let tmp: string | undefined;
        try {
          const fs = fstatSync(from);
          const pre = coveredAtOnce(e, asked, factsOf(fs), hostFacts);
          if (pre === false) return false;
          dir = inParent(host, e.path, (d) => openDirAt(d, "."));
          if (dir === undefined) return false;
          tmp = tempName();
          const to = openSync(
            at(dir, tmp),
            constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW,
            0o600,
          );
          const h = createHash("sha256");
          let size = 0;
          try {
            const buf = Buffer.allocUnsafe(1 << 20);
            for (
              let n = readSync(from, buf, 0, buf.length, 0);
              n > 0;
              n = readSync(from, buf, 0, buf.length, size)
            ) {
              h.update(buf.subarray(0, n));
              for (let off = 0; off < n; ) off += writeSync(to, buf, off, n - off);
              size += n;
            }
            if (this.o.owner) fchownSync(to, this.o.owner.uid, this.o.owner.gid);
            fchmodSync(to, appliedMode(fs.mode, false)); // after chown, which may clear bits
          } finally {
            closeSync(to);
          }
          const copied: EntryFacts = { ...factsOf(fs), size, sha256: h.digest("hex") };
          if (coveredAtOnce(e, asked, copied, hostFacts) !== true) throw new Error("not covered");
          const s: Staged = { dir, tmp };
          dir = undefined;
          return s;
        } catch {
          if (dir !== undefined) {
            if (tmp)
              try {
                unlinkSync(at(dir, tmp));
              } catch {}
            closeSync(dir);
          }
          return false;
        } finally {
          closeSync(from);
        }
      }) ?? false
    );
  }

  /** Puts a staged copy in place: over the entry asked about, or under a new name never over another. */
  private place(e: PauseExpect, s: Staged): void {
    const name = splitRel(e.path).at(-1)!;
    if (this.asked.has(e.path)) renameSync(at(s.dir, s.tmp), at(s.dir, name));
    else linkSync(at(s.dir, s.tmp), at(s.dir, name)); // EEXIST: a host process made it meanwhile
  }

  /** A delete (never a tree: a directory goes only when the host's is empty) or a mode. */
  private settle(e: PauseExpect, host: number): void {
    inParent(host, e.path, (d, name) => {
      const was = this.asked.get(e.path)!;
      if (e.kind === "gone") {
        if (was.kind === "dir") rmdirSync(at(d, name));
        else unlinkSync(at(d, name));
      } else if (e.kind === "mode") chmodNoFollow(d, name, appliedMode(e.mode, was.kind === "dir", was.mode));
    });
  }
}
