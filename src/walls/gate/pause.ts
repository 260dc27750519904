// The pause at the action, pure part: what a paused syscall (as native/fourwall-pause reports it)
// would change, what the policy says, and what fourwall looks for in the layer after a yes.
import { addsExec } from "./changeset.js";
import { decideFs, strictest } from "./rules.js";
import type { Decision, FsOp, GatePolicy } from "./schema.js";
import type { FsChange } from "./types.js";

/** One path of a paused syscall, as the supervisor resolved it. */
export interface PauseTarget {
  /** target: the file acted on; from/to: a rename's source and destination. */
  role: "target" | "from" | "to";
  /** Below the workdir: `path` is relative to it; else the absolute path as the box sees it. */
  inWorkdir: boolean;
  path: string;
  /** An entry of the real workdir before the call (a file that existed before the run). */
  exists: boolean;
  /** Its st_mode in the real workdir. */
  mode: number;
}

export type PauseSys = "unlink" | "rmdir" | "rename" | "renameat2" | "truncate" | "open" | "creat" | "chmod";

/** A paused syscall the supervisor could not settle on its own (a pre-existing workdir file is involved). */
export interface PauseNotice {
  id: string;
  pid: number;
  sys: PauseSys;
  flags: number;
  /** chmod: the new mode. */
  mode: number;
  /** truncate: the new length. */
  length: number;
  paths: PauseTarget[];
  /**
   * A delete: the topmost pre-existing workdir directory the deleting process holds open that
   * contains the target (a tree being removed: rm -r, find -delete, shutil.rmtree); "" when none.
   */
  walk?: string;
}

export type PauseLine =
  | { kind: "notice"; notice: PauseNotice }
  | { kind: "event"; event: "listening" | "attached" }
  | { kind: "done"; continued: number; asked: number; unresolved: number };

/** Parses one line of the supervisor's output (paths arrive hex-encoded: any byte is data). */
export function parsePauseLine(line: string): PauseLine | undefined {
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(line);
  } catch {
    return undefined;
  }
  if (raw.event === "listening" || raw.event === "attached") return { kind: "event", event: raw.event };
  if (raw.event === "done")
    return {
      kind: "done",
      continued: Number(raw.continued),
      asked: Number(raw.asked),
      unresolved: Number(raw.unresolved),
    };
  // "ID" (the box's own listener) or "N:ID" (the listener of `fourwall exec` number N)
  if (typeof raw.id !== "string" || !/^(\d+:)?\d+$/.test(raw.id) || !Array.isArray(raw.paths))
    return undefined;
  const paths = (raw.paths as Record<string, unknown>[]).map(
    (p): PauseTarget => ({
      role: p.role === "from" || p.role === "to" ? p.role : "target",
      inWorkdir: p.inWorkdir === true,
      path: Buffer.from(String(p.path), "hex").toString("utf8"),
      exists: p.exists === true,
      mode: Number(p.mode) || 0,
    }),
  );
  return {
    kind: "notice",
    notice: {
      id: raw.id,
      pid: Number(raw.pid),
      sys: raw.sys as PauseSys,
      flags: Number(raw.flags) || 0,
      mode: Number(raw.mode) || 0,
      length: Number(raw.length) || 0,
      paths,
      walk: typeof raw.walk === "string" ? Buffer.from(raw.walk, "hex").toString("utf8") : "",
    },
  };
}

/**
 * What an approval at the pause covers, path by path: the one change asked about, on the object
 * asked about. Only when the layer shows exactly that (coveredAtOnce) does it reach the host at
 * once; anything else at the path stays in the layer for the review at exit.
 */
export type PauseExpect =
  /** deleted (a whiteout in the upper layer); the host entry is still the one asked about */
  | { path: string; kind: "gone" }
  /**
   * a rename's destination: a regular file holding exactly what `from` held when asked — the host's
   * file, or (`fromLayer`: a file of this run, not on the host) the layer's
   */
  | { path: string; kind: "moved"; from: string; fromLayer?: boolean }
  /** opened with O_TRUNC: still a regular file of the mode asked about, its content written anew */
  | { path: string; kind: "rewritten" }
  /** truncate(2): the content asked about, cut (or zero-padded) to `length`, the same mode */
  | { path: string; kind: "truncated"; length: number }
  /** chmod-ed to exactly this mode, the same kind of entry as asked about */
  | { path: string; kind: "mode"; mode: number };

/** One entry as fourwall saw it (host or layer); sha256 and size of a regular file's content. */
export interface EntryFacts {
  kind: "file" | "dir" | "symlink" | "whiteout" | "other";
  mode: number;
  ino: number;
  size: number;
  sha256?: string;
  /** truncate(2) asked: the sha256 of the content cut or padded to the asked length */
  cutSha256?: string;
}

/**
 * Whether the layer now shows exactly what a human approved at the pause for this path (pure).
 * `asked(rel)`: the host entry as recorded when asking; `upper`: the layer's entry now (a regular
 * file's sha256 is of the very bytes that would be copied: "content" when not read yet); `host`:
 * the host entry now. A symlink, a directory tree, another kind of file, a mode with more bits, or
 * a host entry replaced meanwhile is never covered.
 */
export function coveredAtOnce(
  e: PauseExpect,
  asked: (rel: string) => EntryFacts | undefined,
  upper: EntryFacts | undefined,
  host: EntryFacts | undefined,
): boolean | "content" {
  const was = asked(e.path);
  const hostUnchanged = was ? host?.ino === was.ino && host.kind === was.kind : host === undefined;
  if (!upper || !hostUnchanged) return false;
  const sameMode = (a: EntryFacts, b: EntryFacts) => (a.mode & 0o7777) === (b.mode & 0o7777);
  switch (e.kind) {
    case "gone":
      return was !== undefined && upper.kind === "whiteout";
    case "mode":
      return (
        was !== undefined &&
        (was.kind === "file" || was.kind === "dir") &&
        upper.kind === was.kind &&
        (upper.mode & 0o7777) === e.mode
      );
    case "moved": {
      const from = asked(e.from);
      if (from?.kind !== "file" || from.sha256 === undefined || upper.kind !== "file") return false;
      if (upper.size !== from.size || !sameMode(upper, from)) return false;
      return upper.sha256 === undefined ? "content" : upper.sha256 === from.sha256;
    }
    case "rewritten":
      if (was?.kind !== "file" || upper.kind !== "file" || !sameMode(upper, was)) return false;
      if (upper.size !== was.size) return true;
      return upper.sha256 === undefined ? "content" : upper.sha256 !== was.sha256;
    case "truncated":
      if (was?.kind !== "file" || was.cutSha256 === undefined) return false;
      if (upper.kind !== "file" || !sameMode(upper, was) || upper.size !== e.length) return false;
      return upper.sha256 === undefined ? "content" : upper.sha256 === was.cutSha256;
  }
}

/** The host paths whose facts are recorded when asking (pure): each expectation's path and source. */
export const askedPaths = (expect: readonly PauseExpect[]): string[] => [
  ...new Set(expect.flatMap((e) => (e.kind === "moved" ? [e.path, e.from] : [e.path]))),
];

/**
 * What an approval at the pause settles for the review at exit (pure): the review does not ask
 * again about exactly these (op, path[, to]). A rename inside the workdir covers that rename only,
 * not a bare delete of its source (whose content never reached the new name), nor what the box
 * later put at the destination; a rename out of the workdir is the source's delete.
 */
export function reviewKeysOf(v: PauseVerdict): { op: string; path: string; to?: string }[] {
  return v.changes.flatMap((c): { op: string; path: string; to?: string }[] => {
    if (c.op === "rename")
      return c.to?.endsWith(OUTSIDE)
        ? [{ op: "delete", path: c.path }]
        : [{ op: "rename", path: c.path, to: c.to }];
    if (c.op === "overwrite" && c.detail?.startsWith("replaced by ")) return [];
    return [{ op: c.op, path: c.path }];
  });
}

export interface PausedChange extends FsChange {
  decision: Decision;
}

export interface PauseVerdict {
  /** allow: continue at once; deny: EACCES at once; ask: a human decides. */
  decision: Decision;
  changes: PausedChange[];
  /** After a yes: what to look for in the layer, and apply to the host at once. */
  expect: PauseExpect[];
}

const S_IFMT = 0o170000;
const isDir = (mode: number) => (mode & S_IFMT) === 0o040000;
const isLink = (mode: number) => (mode & S_IFMT) === 0o120000;
const octal = (mode: number) => (mode & 0o7777).toString(8);
const RENAME_NOREPLACE = 1;
const RENAME_EXCHANGE = 2;

/** How a change is shown: a workdir path as is, anything else as the box's absolute path. */
const OUTSIDE = " (outside the workdir)";
const shown = (t: PauseTarget) => (t.inWorkdir ? t.path : `${t.path}${OUTSIDE}`);

/**
 * The verdict on one paused syscall (pure). Only pre-existing workdir entries count (the supervisor
 * sends nothing else); the policy is the layer's own (`gate.fs`), so the pause asks exactly what
 * the review at exit would have asked. A syscall that follows a symlink (open, truncate, chmod of a
 * symlink) acts on a target not resolved here: it continues, and the layer holds what it changes.
 */
export function judgePause(n: PauseNotice, policy: GatePolicy["fs"]): PauseVerdict {
  const changes: PausedChange[] = [];
  const expect: PauseExpect[] = [];
  const add = (change: FsChange, op: FsOp, alwaysAsk = false) => {
    const fromPolicy = decideFs(policy.rules, policy.default, change.path, op).decision;
    changes.push({ ...change, decision: alwaysAsk ? strictest([fromPolicy, "ask"], "ask") : fromPolicy });
  };
  const target = n.paths.find((p) => p.role === "target");
  switch (n.sys) {
    case "unlink":
    case "rmdir":
      if (target?.exists && target.inWorkdir) {
        add(
          { op: "delete", path: target.path, detail: isDir(target.mode) ? "directory" : undefined },
          "delete",
        );
        expect.push({ path: target.path, kind: "gone" });
      }
      break;
    case "rename":
    case "renameat2": {
      const from = n.paths.find((p) => p.role === "from");
      const to = n.paths.find((p) => p.role === "to");
      if (!from || !to) break;
      const exchange = n.sys === "renameat2" && (n.flags & RENAME_EXCHANGE) !== 0;
      const replaces = !(n.sys === "renameat2" && (n.flags & RENAME_NOREPLACE) !== 0);
      if (from.exists && from.inWorkdir) {
        add(
          { op: "rename", path: from.path, to: shown(to), detail: exchange ? "exchanged" : undefined },
          "rename",
        );
        expect.push(
          exchange && to.inWorkdir
            ? { path: from.path, kind: "moved", from: to.path, ...(to.exists ? {} : { fromLayer: true }) }
            : { path: from.path, kind: "gone" },
        );
      }
      if (to.exists && to.inWorkdir && replaces)
        add({ op: "overwrite", path: to.path, detail: `replaced by ${shown(from)}` }, "overwrite");
      // the destination gets the source's file: applied at once only if it holds exactly that
      if (to.inWorkdir && changes.length > 0)
        expect.push(
          from.inWorkdir
            ? { path: to.path, kind: "moved", from: from.path, ...(from.exists ? {} : { fromLayer: true }) }
            : { path: to.path, kind: "rewritten" },
        );
      break;
    }
    case "truncate":
    case "open":
    case "creat":
      if (target?.exists && target.inWorkdir && !isLink(target.mode) && !isDir(target.mode)) {
        const detail =
          n.sys === "truncate"
            ? `truncated to ${n.length} bytes`
            : "opened with O_TRUNC: its content is thrown away and written anew";
        add({ op: "overwrite", path: target.path, detail }, "overwrite");
        expect.push(
          n.sys === "truncate"
            ? { path: target.path, kind: "truncated", length: n.length }
            : { path: target.path, kind: "rewritten" },
        );
      }
      break;
    case "chmod":
      if (target?.exists && target.inWorkdir && !isLink(target.mode)) {
        if ((n.mode & 0o7777) === (target.mode & 0o7777)) break; // the same mode: nothing changes
        const change = `${octal(target.mode)} → ${octal(n.mode)}`;
        if (!isDir(target.mode) && addsExec(target.mode, n.mode))
          add({ op: "exec", path: target.path, detail: `made executable: ${change}` }, "chmod", true);
        else add({ op: "chmod", path: target.path, detail: change }, "chmod");
        expect.push({ path: target.path, kind: "mode", mode: n.mode & 0o7777 });
      }
      break;
  }
  const decision = strictest(
    changes.map((c) => c.decision),
    "allow",
  );
  return { decision, changes, expect };
}

/** The syscall as the human reads it: "unlink(2)", "open(2) with O_TRUNC". */
export function pauseSyscallName(n: PauseNotice): string {
  if (n.sys === "open") return "open(2) with O_TRUNC";
  return `${n.sys}(2)`;
}

/** Whether `rel` is the directory `dir` or below it (paths relative to the workdir). */
export const isAtOrUnder = (rel: string, dir: string) => rel === dir || rel.startsWith(`${dir}/`);

/**
 * The tree a paused delete asks about as a whole (pure): a delete (unlink, rmdir) of a pre-existing
 * workdir entry, made by a process walking a pre-existing directory that contains it. Undefined:
 * asked about on its own.
 */
export function pauseGroupOf(n: PauseNotice): string | undefined {
  if (n.sys !== "unlink" && n.sys !== "rmdir") return undefined;
  const target = n.paths.find((p) => p.role === "target");
  if (!target?.exists || !target.inWorkdir || !n.walk) return undefined;
  return target.path.startsWith(`${n.walk}/`) ? n.walk : undefined;
}
