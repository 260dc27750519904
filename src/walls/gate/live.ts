import {
  type BigIntStats,
  closeSync,
  constants,
  fchmodSync,
  fchownSync,
  fstatSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readdirSync,
  readlinkSync,
  renameSync,
  rmdirSync,
  symlinkSync,
  unlinkSync,
} from "node:fs";
import type { AuditLog } from "../../audit/log.js";
import { isToolConfigName, toolConfigDirWhy, toolConfigWhy } from "../filesystem/index.js";
import { appliedMode, isWhiteout, mergedKind, symlinkEscapes } from "./changeset.js";
import { at, copyFd, inDir, openDir, openDirAt, openFileAt, splitRel, tempName } from "./fsat.js";

/**
 * The live layer: while the box runs, what the policy lets flow without a question reaches the
 * real workdir within about a second — new files and directories, and later changes to the files
 * this run made — so a host process watching the workdir sees the box's work as it happens.
 *
 * A loop in the fourwall process (the box has no path to it, nor to the layer) reads the upper
 * directory by fd every tick and applies through directory fds (fsat.ts: O_NOFOLLOW, nothing
 * written through a symlink, modes masked as at the end). It never touches what the gate holds:
 *   - anything that existed on the host before (changes to it wait for the end review);
 *   - anything under a `.git` (new repositories are always asked; a new ref file can move a
 *     branch: history.ts judges those at the end);
 *   - new symlinks leading out of the workdir (asked at the end);
 *   - the box's placeholders (fourwall's own, never the box's work).
 * A file is copied only when it holds still: unchanged (inode, size, mtime, ctime) since the last
 * tick or untouched for SETTLE_MS, and unchanged while it was copied (checked on the open fd
 * after the copy); a file that changes later flows again. What fourwall wrote is kept in a ledger
 * (the host entry's inode, size, mtime): only an entry that is still what fourwall left there is
 * ever replaced or removed — a host user's edit in the meantime wins, and the end review asks.
 * Entries the box removes again (whiteout, or gone from the upper layer) are removed from the host.
 */

/** How often the loop looks (ms). */
export const LIVE_TICK_MS = 1000;
/** A file untouched this long is taken as written (ms); otherwise it must hold still for a tick. */
export const SETTLE_MS = 500;

/** The pause after a tick is at least this many times what the tick took. */
export const IDLE_FACTOR = 4;

/**
 * Work one tick may do before it leaves the rest to the next (ms): ticks run in fourwall's event
 * loop, beside the proxy and the gate, which must not stall behind a large copy.
 */
export const TICK_BUDGET_MS = 150;

/** What fourwall left on the host for one path. */
interface Written {
  kind: "file" | "dir" | "symlink";
  /** The host entry: inode, size and mtime (ns) right after fourwall wrote it. */
  host: string;
  /** The upper entry it was copied from (files and symlinks): to see a later change. */
  upper?: string;
}

const hostPrint = (s: BigIntStats) => `${s.ino}:${s.size}:${s.mtimeNs}`;
const upperPrint = (s: BigIntStats) => `${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}:${s.mode}`;
const kindOf = (s: BigIntStats): Written["kind"] | undefined =>
  s.isDirectory() ? "dir" : s.isFile() ? "file" : s.isSymbolicLink() ? "symlink" : undefined;

function lstatBig(p: string): BigIntStats | undefined {
  try {
    return lstatSync(p, { bigint: true });
  } catch {
    return undefined;
  }
}

/**
 * A path the live loop never lets through: git's (history and new repositories), fourwall's own,
 * tool config that runs code on the host (asked at the end), and the names without which no
 * directory is a git dir (HEAD, commondir: a bare repository the box makes stays inert on the host
 * until the end review asks about it).
 */
export function heldUntilEnd(rel: string, hidden: ReadonlySet<string>): boolean {
  const parts = rel.split("/");
  const name = parts.at(-1)!;
  return (
    parts.includes(".git") ||
    hidden.has(rel) ||
    name === "HEAD" ||
    name === "commondir" ||
    (isToolConfigName(name) && toolConfigWhy(rel) !== undefined)
  );
}

export interface LiveOptions {
  upper: string;
  workdir: string;
  /** Owner of what fourwall writes (root mode: the workdir's owner). */
  owner?: { uid: number; gid: number };
  /** Relative paths that are fourwall's own (placeholders in the layer): never applied. */
  hidden?: ReadonlySet<string>;
  /** For tests: the clock. */
  now?: () => number;
}

export interface TickResult {
  applied: string[];
  removed: string[];
  failures: string[];
}

export class LiveSync {
  private readonly ledger = new Map<string, Written>();
  /** Upper fingerprints of files seen last tick and not yet applied (stability). */
  private seen = new Map<string, string>();
  private timer?: NodeJS.Timeout;
  private stopped = false;
  private readonly hidden: ReadonlySet<string>;
  private readonly now: () => number;
  /** Every path applied during the run (for the audit log). */
  readonly flowed = new Set<string>();

  constructor(private readonly o: LiveOptions) {
    this.hidden = o.hidden ?? new Set();
    this.now = o.now ?? Date.now;
  }

  /**
   * Ticks every `ms` until stop(). A tick over a large layer costs time in fourwall's event loop
   * (measured: ~20-70 µs per entry on this host), so the pause after a tick is at least
   * IDLE_FACTOR times what it took: the loop never takes more than about a fifth of a core.
   */
  start(ms = LIVE_TICK_MS, onTick?: (r: TickResult) => void): void {
    this.stopped = false;
    const next = (delay: number) => {
      if (this.stopped) return;
      this.timer = setTimeout(() => {
        const started = performance.now();
        const r = this.tick();
        onTick?.(r);
        next(Math.max(ms, IDLE_FACTOR * (performance.now() - started)));
      }, delay);
      this.timer.unref();
    };
    next(ms);
  }

  stop(): void {
    this.stopped = true;
    clearTimeout(this.timer);
    this.timer = undefined;
  }

  /**
   * The paths this run made on the host that are still exactly what fourwall left there: the
   * end review treats changes to them as new files (they flow), not as changes to old ones.
   */
  made(): Set<string> {
    const out = new Set<string>();
    let root: number;
    try {
      root = openDir(this.o.workdir);
    } catch {
      return out;
    }
    try {
      for (const [rel, w] of this.ledger) if (this.stillOurs(root, rel, w)) out.add(rel);
    } finally {
      closeSync(root);
    }
    return out;
  }

  /**
   * One pass. `final`: the box is dead (its layer frozen), so every file is as it will stay: no
   * stability wait.
   */
  tick(final = false): TickResult {
    const result: TickResult = { applied: [], removed: [], failures: [] };
    let upperRoot: number;
    let workRoot: number;
    try {
      upperRoot = openDir(this.o.upper);
    } catch (error) {
      result.failures.push(`the layer: ${(error as Error).message}`);
      return result;
    }
    try {
      workRoot = openDir(this.o.workdir);
    } catch (error) {
      closeSync(upperRoot);
      result.failures.push(`the workdir: ${(error as Error).message}`);
      return result;
    }
    const nextSeen = new Map<string, string>();
    const present = new Set<string>();
    const deadline = final ? Number.POSITIVE_INFINITY : performance.now() + TICK_BUDGET_MS;
    try {
      this.walk(upperRoot, workRoot, "", { upperRoot, workRoot, final, result, nextSeen, present, deadline });
      this.removeGone(upperRoot, workRoot, result, present);
    } finally {
      this.seen = nextSeen;
      closeSync(upperRoot);
      closeSync(workRoot);
    }
    for (const p of result.applied) this.flowed.add(p);
    return result;
  }

  private stillOurs(workRoot: number, rel: string, w: Written): boolean {
    const parts = splitRel(rel);
    try {
      const s = inDir(workRoot, parts.slice(0, -1), (d) => lstatSync(at(d, parts.at(-1)!), { bigint: true }));
      return (
        kindOf(s) === w.kind && (w.kind === "dir" ? s.ino.toString() === w.host : hostPrint(s) === w.host)
      );
    } catch {
      return false;
    }
  }

  private walk(uFd: number, wFd: number, rel: string, t: TickState): void {
    let names: string[];
    try {
      names = readdirSync(at(uFd));
    } catch (error) {
      return void t.result.failures.push(`${rel || "."}: ${(error as Error).message}`);
    }
    // a directory with a HEAD (the box's or the host's): its objects/ and refs/ wait too, or the
    // host's directory would be a git dir while the box runs (and no longer new at the end)
    const shaped =
      names.some((n) => n === "objects" || n === "refs") &&
      (names.includes("HEAD") || lstatBig(at(wFd, "HEAD")) !== undefined);
    for (const name of names) {
      const r = rel ? `${rel}/${name}` : name;
      if (heldUntilEnd(r, this.hidden)) continue;
      if (shaped && (name === "objects" || name === "refs")) continue;
      try {
        this.entry(uFd, wFd, name, r, t);
      } catch (error) {
        t.result.failures.push(`${r}: ${(error as Error).message}`);
      }
    }
  }

  private entry(uFd: number, wFd: number, name: string, r: string, t: TickState): void {
    const us = lstatBig(at(uFd, name));
    if (!us || isWhiteout(us)) return; // removals: removeGone
    t.present.add(r);
    const mine = this.ledger.get(r);
    // the common case, cheaply: a file or symlink already on the host as it is in the layer
    if (mine && mine.kind !== "dir" && mine.upper === upperPrint(us)) return;
    const hs = lstatBig(at(wFd, name));
    const ours = mine !== undefined && hs !== undefined && this.matches(hs, mine);
    if (hs && !ours) {
      // on the host before the run (or changed there since fourwall wrote it): the end review's
      if (us.isDirectory() && hs.isDirectory()) this.descend(uFd, wFd, name, r, t);
      return;
    }
    const kind = kindOf(us);
    if (!kind) return; // fifos, sockets: nothing to keep after the box
    if (kind === "symlink" && toolConfigDirWhy(r)) return; // `pkg/.cargo` → elsewhere: asked at the end
    if (hs && mine && mine.kind !== kind) {
      // the box replaced what it made by another type: take fourwall's copy away, then as new
      this.removeOurs(wFd, name, r, mine);
      t.result.removed.push(r);
      this.entry(uFd, wFd, name, r, t);
      return;
    }
    const overBudget = !t.final && performance.now() > t.deadline;
    if (kind === "dir") {
      if (!hs) {
        if (overBudget) return; // next tick
        mkdirSync(at(wFd, name), { mode: 0o700 });
        const d = openDirAt(wFd, name);
        try {
          if (this.o.owner) fchownSync(d, this.o.owner.uid, this.o.owner.gid);
          fchmodSync(d, appliedMode(Number(us.mode), true));
          this.ledger.set(r, { kind, host: fstatSync(d, { bigint: true }).ino.toString() });
        } finally {
          closeSync(d);
        }
        t.result.applied.push(r);
      } else {
        const want = appliedMode(Number(us.mode), true);
        if ((Number(hs.mode) & 0o7777) !== want) {
          const d = openDirAt(wFd, name);
          try {
            fchmodSync(d, want);
          } finally {
            closeSync(d);
          }
        }
      }
      this.descend(uFd, wFd, name, r, t);
      return;
    }
    const print = upperPrint(us);
    if (overBudget) {
      if (this.seen.has(r)) t.nextSeen.set(r, this.seen.get(r)!); // keep what was seen
      return;
    }
    if (kind === "symlink") {
      this.symlink(uFd, wFd, name, r, t, print, hs !== undefined);
      return;
    }
    const settled =
      this.now() - Number(us.mtimeNs / 1_000_000n) >= SETTLE_MS &&
      this.now() - Number(us.ctimeNs / 1_000_000n) >= SETTLE_MS;
    if (!t.final && !settled && this.seen.get(r) !== print) {
      t.nextSeen.set(r, print); // still being written: next tick
      return;
    }
    this.copyFile(uFd, wFd, name, r, t, print, hs !== undefined);
  }

  private descend(uFd: number, wFd: number, name: string, r: string, t: TickState): void {
    const u = openDirAt(uFd, name);
    try {
      const w = openDirAt(wFd, name);
      try {
        this.walk(u, w, r, t);
      } finally {
        closeSync(w);
      }
    } finally {
      closeSync(u);
    }
  }

  private matches(hs: BigIntStats, w: Written): boolean {
    return (
      kindOf(hs) === w.kind && (w.kind === "dir" ? hs.ino.toString() === w.host : hostPrint(hs) === w.host)
    );
  }

  private symlink(
    uFd: number,
    wFd: number,
    name: string,
    r: string,
    t: TickState,
    print: string,
    replace: boolean,
  ) {
    const target = readlinkSync(at(uFd, name));
    // a symlink leading out is asked at the end (changeset.ts), never let through here
    if (symlinkEscapes(r, target, (rel) => mergedKind(t.upperRoot, t.workRoot, rel))) return;
    const tmp = tempName();
    symlinkSync(target, at(wFd, tmp));
    this.place(wFd, tmp, name, replace, (s) => {
      this.ledger.set(r, { kind: "symlink", host: hostPrint(s), upper: print });
      t.result.applied.push(r);
    });
  }

  private copyFile(
    uFd: number,
    wFd: number,
    name: string,
    r: string,
    t: TickState,
    print: string,
    replace: boolean,
  ) {
    const from = openFileAt(uFd, name);
    const tmp = tempName();
    try {
      const before = fstatSync(from, { bigint: true });
      if (upperPrint(before) !== print) return void t.nextSeen.set(r, upperPrint(before));
      const flags = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;
      const to = openSync(at(wFd, tmp), flags, 0o600);
      let written: BigIntStats;
      try {
        copyFd(from, to);
        if (this.o.owner) fchownSync(to, this.o.owner.uid, this.o.owner.gid);
        fchmodSync(to, appliedMode(Number(before.mode), false)); // after chown, which may clear bits
        written = fstatSync(to, { bigint: true });
      } finally {
        closeSync(to);
      }
      // written to while copied: not a snapshot; the next tick tries again
      if (upperPrint(fstatSync(from, { bigint: true })) !== print) {
        unlinkSync(at(wFd, tmp));
        return void t.nextSeen.set(r, "changed");
      }
      this.place(wFd, tmp, name, replace, () => {
        this.ledger.set(r, { kind: "file", host: hostPrint(written), upper: print });
        t.result.applied.push(r);
      });
    } finally {
      closeSync(from);
    }
  }

  /**
   * Puts the temporary entry in place: over fourwall's own earlier copy (rename), or as a new
   * name only if nothing is there (link: EEXIST when a host process made it meanwhile — then the
   * host's entry stays and the end review asks).
   */
  private place(
    wFd: number,
    tmp: string,
    name: string,
    replace: boolean,
    done: (s: BigIntStats) => void,
  ): void {
    try {
      if (replace) renameSync(at(wFd, tmp), at(wFd, name));
      else {
        linkSync(at(wFd, tmp), at(wFd, name));
        unlinkSync(at(wFd, tmp));
      }
    } catch (error) {
      try {
        unlinkSync(at(wFd, tmp));
      } catch {}
      if ((error as NodeJS.ErrnoException).code === "EEXIST") return;
      throw error;
    }
    done(lstatSync(at(wFd, name), { bigint: true }));
  }

  private removeOurs(wFd: number, name: string, r: string, w: Written): void {
    if (w.kind === "dir") rmdirSync(at(wFd, name));
    else unlinkSync(at(wFd, name));
    this.ledger.delete(r);
  }

  /**
   * What this run made and the box removed again (a whiteout, or no entry left in the upper
   * layer): removed from the host too, if still fourwall's; deepest first, a directory only once
   * empty (a host user's file in it keeps it).
   */
  private removeGone(
    upperRoot: number,
    workRoot: number,
    result: TickResult,
    present: ReadonlySet<string>,
  ): void {
    const paths = [...this.ledger.keys()]
      .filter((r) => !present.has(r))
      .sort((a, b) => b.split("/").length - a.split("/").length);
    for (const r of paths) {
      const w = this.ledger.get(r)!;
      const parts = splitRel(r);
      let inUpper: BigIntStats | undefined;
      try {
        inUpper = inDir(upperRoot, parts.slice(0, -1), (d) => lstatBig(at(d, parts.at(-1)!)));
      } catch {
        inUpper = undefined; // a directory on the way is gone, or is no directory any more
      }
      if (inUpper && !isWhiteout(inUpper)) continue;
      try {
        inDir(workRoot, parts.slice(0, -1), (d) => {
          const hs = lstatBig(at(d, parts.at(-1)!));
          if (!hs) return void this.ledger.delete(r);
          if (!this.matches(hs, w)) return void this.ledger.delete(r); // the host's now
          this.removeOurs(d, parts.at(-1)!, r, w);
          result.removed.push(r);
        });
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== "ENOTEMPTY")
          result.failures.push(`remove ${r}: ${(error as Error).message}`);
      }
    }
  }
}

interface TickState {
  upperRoot: number;
  workRoot: number;
  final: boolean;
  result: TickResult;
  nextSeen: Map<string, string>;
  /** Upper entries this tick saw (the others in the ledger may be gone). */
  present: Set<string>;
  /** performance.now() past which a tick copies nothing more. */
  deadline: number;
}

/**
 * Starts the live layer of one box: ticks every LIVE_TICK_MS, each tick that applied or removed
 * something (and each new failure, once) in the audit log as a `live` line.
 */
export function startLive(o: LiveOptions & { box: string; audit: AuditLog }): LiveSync {
  const live = new LiveSync(o);
  const told = new Set<string>();
  live.start(LIVE_TICK_MS, (r) => {
    const failures = r.failures.filter((f) => !told.has(f));
    for (const f of failures) told.add(f);
    if (r.applied.length + r.removed.length + failures.length === 0) return;
    o.audit.write({
      box: o.box,
      wall: "gate",
      event: "live",
      applied: r.applied,
      removed: r.removed,
      failures,
    });
  });
  return live;
}
