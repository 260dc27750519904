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

/** What the layer must show for a path before an approved change of it is applied to the host. */
export type PauseExpect =
  /** deleted (a whiteout in the upper layer) */
  | { path: string; kind: "gone" }
  /** written: an entry in the upper layer that differs from the host's */
  | { path: string; kind: "changed" }
  /** chmod-ed to exactly this mode */
  | { path: string; kind: "mode"; mode: number };

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
const shown = (t: PauseTarget) => (t.inWorkdir ? t.path : `${t.path} (outside the workdir)`);

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
        expect.push(exchange ? { path: from.path, kind: "changed" } : { path: from.path, kind: "gone" });
      }
      if (to.exists && to.inWorkdir && replaces)
        add({ op: "overwrite", path: to.path, detail: `replaced by ${shown(from)}` }, "overwrite");
      // the destination gets the source's content: applied with the rename or the overwrite
      if (to.inWorkdir && changes.length > 0) expect.push({ path: to.path, kind: "changed" });
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
        expect.push({ path: target.path, kind: "changed" });
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
