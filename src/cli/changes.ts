import { closeSync } from "node:fs";
import path from "node:path";
import pc from "picocolors";
import {
  applyKept,
  boundedDiff,
  changesDir,
  diffLines,
  dropKept,
  type FileFacts,
  type FsChange,
  factsAt,
  type GateRequest,
  type KeptChange,
  type KeptChangeSet,
  listKept,
  loadKept,
  openDir,
  overlayHelperPath,
  readHead,
  sameFacts,
  TerminalApprover,
  visible,
} from "../walls/gate/index.js";

/**
 * `fourwall changes ls | show | diff | apply | drop`: the change-sets fourwall kept instead of
 * applying (store.ts). Everything the box chose (names, targets, diff lines) is shown through
 * `visible`; `--json` gives the raw values.
 */

const out = (s: string) => process.stdout.write(s);
const fail = (message: string) => {
  process.stderr.write(`${pc.red(`fourwall changes: ${message}`)}\n`);
  return 1;
};

/** Kinds a human must see called out: applying them is a yes to exactly that. */
const LOUD: Record<string, string> = {
  exec: "makes a file executable",
  "symlink-out": "a symlink leading out of the workdir",
  "new-repo": "a new git repository: its hooks and config run when you use git there",
  "tool-config": "tool config: a host tool runs what it names (npm, cargo, mise, ...)",
  history: "rewrites git history",
};

const short = (f: FileFacts | undefined): string => {
  if (!f) return "(no record)";
  if (f.kind === "missing") return "absent";
  if (f.kind === "symlink") return `symlink → ${visible(f.target ?? "", 120)}`;
  if (f.kind !== "file") return `${f.kind} ${f.mode ?? ""}`.trim();
  return `${f.mode} ${f.size} B sha256:${f.sha256?.slice(0, 12)}`;
};

const changeText = (c: KeptChange): string =>
  `${c.op.padEnd(11)} ${visible(c.path)}${c.to ? ` → ${visible(c.to)}` : ""}${c.detail ? `  (${visible(c.detail)})` : ""}`;

function load(id: string): (KeptChangeSet & { dir: string; upper: string }) | number {
  try {
    return loadKept(id, overlayHelperPath());
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    return fail(
      code === "ENOENT" ? `no change-set ${visible(id)} (fourwall changes ls)` : (error as Error).message,
    );
  }
}

export function changesLs(o: { json?: boolean }): number {
  const sets = listKept(overlayHelperPath());
  if (o.json) {
    out(`${JSON.stringify(sets, null, 2)}\n`);
    return 0;
  }
  if (sets.length === 0) {
    out(`no kept change-sets (${changesDir()})\n`);
    return 0;
  }
  for (const s of sets)
    out(
      `${pc.bold(s.id)}  ${s.kept}  ${String(s.changes.length + s.creates.length).padStart(3)} change(s)  ${visible(s.workdir)}\n    ${visible(s.reason)}\n`,
    );
  return 0;
}

export function changesShow(id: string, o: { json?: boolean }): number {
  const kept = load(id);
  if (typeof kept === "number") return kept;
  const { dir: _d, upper: _u, ...meta } = kept;
  if (o.json) {
    out(`${JSON.stringify(meta, null, 2)}\n`);
    return 0;
  }
  out(`${pc.bold(`change-set ${kept.id}`)} · box ${visible(kept.box)} · kept ${kept.kept}\n`);
  out(`  workdir  ${visible(kept.workdir)}\n  why      ${visible(kept.reason)}\n`);
  if (kept.unreviewed)
    out(
      pc.yellow("  never reviewed: no record of the host files it changes (apply needs --force for those)\n"),
    );
  for (const c of kept.changes) {
    out(`  ${changeText(c)}\n`);
    if (c.how !== "none")
      out(pc.dim(`              ${short(c.before)} → ${short(c.after)}   refused by ${c.refusedBy}\n`));
    if (LOUD[c.op]) out(pc.yellow(`              ! ${LOUD[c.op]}\n`));
  }
  for (const rel of kept.creates) out(`  ${"create".padEnd(11)} ${visible(rel)}\n`);
  return 0;
}

const selected = (paths: string[], rel: string, to?: string) =>
  paths.length === 0 ||
  paths.some((p) => {
    const n = p.replace(/^\.\/+/, "").replace(/\/+$/, "");
    return [rel, to].some((r) => r !== undefined && (r === n || r.startsWith(`${n}/`)));
  });

interface DiffEntry {
  op: string;
  path: string;
  to?: string;
  diff?: string;
  note?: string;
  /** The host's entry is not the one recorded at the review. */
  hostChanged: boolean;
}

/** Each selected change against the host's files now: a bounded diff, and whether the host moved on. */
function diffsOf(kept: KeptChangeSet & { upper: string }, paths: string[]): DiffEntry[] {
  const entries: DiffEntry[] = [];
  const host = openDir(kept.workdir);
  const upper = openDir(kept.upper);
  const limit = 256 * 1024 + 1;
  try {
    const one = (op: string, rel: string, before: FileFacts | undefined, to?: string, deleted = false) => {
      const now = factsAt(host, rel);
      const hostChanged = before !== undefined && !sameFacts(before, now);
      const a = now.kind === "file" ? readHead(host, rel, limit) : undefined;
      const b = deleted ? undefined : readHead(upper, to ?? rel, limit);
      const d =
        !a && !b
          ? { note: "no file on either side (a directory, symlink or mode change)" }
          : boundedDiff(rel, a, b);
      entries.push({ op, path: rel, to, diff: d.diff, note: d.note, hostChanged });
    };
    for (const c of kept.changes)
      if (c.how !== "none" && selected(paths, c.path, c.to))
        one(c.op, c.path, c.before, c.to, c.how === "delete");
    for (const rel of kept.creates) if (selected(paths, rel)) one("create", rel, { kind: "missing" });
  } finally {
    closeSync(host);
    closeSync(upper);
  }
  return entries;
}

export function changesDiff(id: string, paths: string[], o: { json?: boolean }): number {
  const kept = load(id);
  if (typeof kept === "number") return kept;
  const entries = diffsOf(kept, paths);
  if (o.json) {
    out(`${JSON.stringify(entries, null, 2)}\n`);
    return 0;
  }
  const colour = process.stdout.isTTY;
  for (const e of entries) {
    out(pc.bold(`== ${e.op} ${visible(e.path)}${e.to ? ` → ${visible(e.to)}` : ""}\n`));
    if (e.hostChanged)
      out(pc.yellow("   the host file changed since the review: this is the diff against it now\n"));
    if (e.note) out(pc.dim(`   ${e.note}\n`));
    for (const line of e.diff ? diffLines(e.diff) : []) {
      const painted = !colour
        ? line
        : line.startsWith("+") && !line.startsWith("+++")
          ? pc.green(line)
          : line.startsWith("-") && !line.startsWith("---")
            ? pc.red(line)
            : line.startsWith("@@")
              ? pc.cyan(line)
              : line;
      out(`${painted}\n`);
    }
  }
  return 0;
}

export function changesApply(id: string, paths: string[], o: { force?: boolean }): number {
  const kept = load(id);
  if (typeof kept === "number") return kept;
  let r: ReturnType<typeof applyKept>;
  try {
    r = applyKept(id, { helper: overlayHelperPath(), paths, force: o.force });
  } catch (error) {
    return fail((error as Error).message);
  }
  for (const p of r.unknown) process.stderr.write(pc.red(`not in change-set ${id}: ${visible(p)}\n`));
  for (const c of r.applied) {
    out(
      `${pc.green("applied")} ${c.op} ${visible(c.path)}${"to" in c && c.to ? ` → ${visible(c.to)}` : ""}\n`,
    );
    if (LOUD[c.op])
      out(pc.yellow(`        ! ${LOUD[c.op]}${"detail" in c && c.detail ? `: ${visible(c.detail)}` : ""}\n`));
  }
  for (const x of r.refused)
    process.stderr.write(
      pc.yellow(`not applied ${visible(x.path)}: ${x.why} (--force to apply it anyway)\n`),
    );
  for (const f of r.failures) process.stderr.write(pc.red(`could not apply ${visible(f)}\n`));
  out(
    r.dropped
      ? `change-set ${id} is applied and gone\n`
      : `change-set ${id} still holds what was not applied: fourwall changes show ${id}\n`,
  );
  return r.refused.length + r.failures.length + r.unknown.length > 0 ? 1 : 0;
}

/**
 * Asks at the terminal about a kept change-set (`down`, `changes review`): the same question as at
 * the end of a run — the file-by-file review with diffs against the host's files now — and
 * applies what the human chose (as `changes apply` would: a host file that changed since is
 * refused). Returns what is still kept, or undefined when nothing is.
 */
export async function reviewKept(id: string, why: string): Promise<KeptChangeSet | undefined> {
  const kept = load(id);
  if (typeof kept === "number") return undefined;
  if (!TerminalApprover.available()) return kept;
  const diffs = new Map(diffsOf(kept, []).map((d) => [d.path, d]));
  const changes: FsChange[] = [
    ...kept.changes.map(({ how: _h, refusedBy: _r, ...c }) => c),
    ...kept.creates.map((rel) => ({ op: "create" as const, path: rel })),
  ].map((c) => ({ ...c, diff: diffs.get(c.path)?.diff, diffNote: diffs.get(c.path)?.note }));
  const request: GateRequest = {
    id: kept.id,
    box: kept.box,
    kind: "fs",
    summary: `${changes.length} change(s) not applied`,
    cwd: kept.workdir,
    why: [why, `not applied: ${kept.reason}`],
    via: "kept change-set",
    changes,
    alwaysAllowed: false,
    time: new Date().toISOString(),
  };
  const answer = await new TerminalApprover().ask(request, new AbortController().signal);
  if (answer === "no") return kept;
  const paths = typeof answer === "object" ? answer.approve : [];
  const code = changesApply(id, paths, {});
  void code;
  try {
    return loadKept(id, overlayHelperPath());
  } catch {
    return undefined; // applied and gone
  }
}

export function changesReviewCommand(id: string): Promise<number> {
  return reviewKept(id, "kept earlier").then((left) => {
    if (left) out(`change-set ${id} still holds ${left.changes.length + left.creates.length} change(s)\n`);
    return 0;
  });
}

export function changesDrop(id: string): number {
  let failure: string | undefined;
  try {
    failure = dropKept(id);
  } catch (error) {
    failure = (error as Error).message;
  }
  if (failure) return fail(failure);
  out(`dropped ${id}\n`);
  return 0;
}

/** For `down`: where the store is (its messages name it). */
export const storePath = (): string => path.resolve(changesDir());
