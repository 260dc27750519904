import { closeSync, writeFileSync } from "node:fs";
import path from "node:path";
import type { AuditLog } from "../../audit/log.js";
import { boundedDiff } from "./approvers/diff.js";
import type { Broker } from "./broker.js";
import { Applier, type HeldChange, opaqueDirs, readChangeSet, summarise } from "./changeset.js";
import { factsAt, readHead } from "./facts.js";
import { openDir } from "./fsat.js";
import { reviewHistory } from "./history-review.js";
import type { GatePolicy } from "./schema.js";
import type { KeptChange } from "./store.js";
import type { FsChange } from "./types.js";

/** One line per change, as every approver and notice shows it. */
export const changeLine = (c: FsChange): string =>
  `${c.op} ${c.path}${c.to ? ` → ${c.to}` : ""}${c.detail ? `  (${c.detail})` : ""}`;

/** The first few changes, and how many more there are and where all of them are: never cut silently. */
export function listSome(changes: readonly FsChange[], where: string, n = 5): string {
  const shown = changes.slice(0, n).map((c) => `${c.op} ${c.path}`);
  return changes.length > n
    ? `${shown.join(", ")}, and ${changes.length - n} more (${where})`
    : shown.join(", ");
}

const forApprover = ({ decision: _d, how: _h, ...c }: HeldChange): FsChange => c;

/**
 * Both sides of each change as they are now (before anything is applied): kind, mode, size,
 * sha256 — recorded with a kept change-set so `changes apply` can tell whether the host file
 * moved on — and, for the ones a human is asked about, a bounded diff of text files.
 */
export function describeSides(
  changes: HeldChange[],
  o: { upper: string; workdir: string; diffs: (c: HeldChange) => boolean },
): HeldChange[] {
  const upperFd = openDir(o.upper);
  const lowerFd = openDir(o.workdir);
  try {
    return changes.map((c) => {
      if (c.how === "none") return c; // git history: a ref move, described by its own line
      if (c.decision === "allow") return c; // applied at once (kept only if that fails: then unreviewed-like)
      const before = factsAt(lowerFd, c.path);
      const after = c.how === "delete" ? { kind: "missing" as const } : factsAt(upperFd, c.to ?? c.path);
      if (!o.diffs(c)) return { ...c, before, after };
      if (before.kind !== "file" && after.kind !== "file")
        return { ...c, before, after, diffNote: `no diff (${before.kind} → ${after.kind})` };
      if (before.kind === "file" && after.kind === "file" && before.sha256 === after.sha256)
        return { ...c, before, after, diffNote: `same content (mode ${before.mode} → ${after.mode})` };
      const limit = 256 * 1024 + 1;
      const a = before.kind === "file" ? readHead(lowerFd, c.path, limit) : undefined;
      const b = after.kind === "file" ? readHead(upperFd, c.to ?? c.path, limit) : undefined;
      const d = boundedDiff(c.path, a, b);
      return { ...c, before, after, diff: d.diff, diffNote: d.note };
    });
  } finally {
    closeSync(upperFd);
    closeSync(lowerFd);
  }
}

export interface ReviewOptions {
  box: string;
  upper: string;
  workdir: string;
  /** The native helper that reads the overlay's opaque-directory marks. */
  helper: string;
  policy: GatePolicy["fs"];
  broker: Broker;
  audit: AuditLog;
  owner?: { uid: number; gid: number };
  /** Judge the workdir's git history with git (history.ts); off only in a deliberately weakened test box. */
  gitHistory?: boolean;
  /**
   * A private directory (the frozen layer's own, fourwall's, 0700) where the full list of the
   * changes asked about is written while the question is open: every item is reviewable there.
   */
  listDir?: string;
  /** Lines for the human on fourwall's stderr. */
  notify: (line: string) => void;
  /** What the live layer already made on the host in this run (live.ts): changes to it flow. */
  made?: ReadonlySet<string>;
  /**
   * (op, path) a human approved while the box ran (the pause at the action, pause-supervisor.ts):
   * not asked again; what the box did to that path afterwards (the rest of an overwrite) applies.
   */
  approvedAtAction?: readonly { op: string; path: string; to?: string }[];
  /**
   * false: the layer only carried the box's placeholders (plan.ts `holds`): the policy allows
   * every change, and what is otherwise always asked (exec, symlink-out, new-repo) applies too,
   * as it would have without a layer. Nothing is asked.
   */
  holds?: boolean;
}

export interface ReviewResult {
  created: number;
  applied: number;
  refused: number;
  failures: string[];
  /** What was not applied (refused, unanswered, failed), to keep as a change-set (store.ts). */
  kept: KeptChange[];
  /** New paths that failed to land. */
  keptCreates: string[];
  /** Why, in one sentence (the human's or the policy's answer). */
  keptWhy: string;
}

/**
 * At the end of a run: new files go to the workdir at once; changes to files that existed before
 * go through the policy (allow / deny) and the ones it says ask about go to a human as ONE
 * change-set (yes applies them all, anything else keeps the originals). The box has exited by
 * now, so what was reviewed is exactly what is applied.
 */
export async function reviewChangeSet(o: ReviewOptions): Promise<ReviewResult> {
  const opaque = opaqueDirs(o.upper, o.helper);
  const files = readChangeSet(o.upper, o.workdir, opaque, o.policy, o.made);
  // Git's bookkeeping as history, not files: ref moves that rewrite it ask (history-review.ts).
  const set =
    o.gitHistory === false
      ? files
      : reviewHistory(files, { upper: o.upper, workdir: o.workdir, opaque, policy: o.policy });
  // Facts first: the apply below changes the workdir.
  const held = describeSides(set.held, {
    upper: o.upper,
    workdir: o.workdir,
    diffs: (c) => c.decision === "ask",
  });
  const applier = new Applier({ upper: o.upper, workdir: o.workdir, owner: o.owner, skip: set.heldNew });
  const keptCreates: string[] = [];
  for (const rel of set.creates) {
    const before = applier.failures.length;
    try {
      applier.create(rel);
    } catch (error) {
      applier.failures.push((error as Error).message);
    }
    if (applier.failures.length > before) keptCreates.push(rel);
  }
  const allowed = held.filter((c) => c.decision === "allow");
  const denied = held.filter((c) => c.decision === "deny");
  // (op, path) a human approved at the action (the pause) is not asked again
  // (a rename only to the very name approved)
  const key = (c: { op: string; path: string; to?: string }) =>
    `${c.op}\0${c.path}${c.op === "rename" ? `\0${c.to ?? ""}` : ""}`;
  const atAction = new Set((o.approvedAtAction ?? []).map(key));
  const earlier = (c: HeldChange) => c.decision === "ask" && atAction.has(key(c));
  const unasked = (c: HeldChange) => c.decision === "ask" && (earlier(c) || o.holds === false);
  const asked = held.filter((c) => c.decision === "ask" && !unasked(c));
  const auditNote = "all of them in the --audit log's change-set line";
  let approved = [...allowed, ...held.filter(unasked)];
  let refusedBy = "policy";
  let keptWhy = "refused by the gate policy";
  if (asked.length > 0) {
    let listFile: string | undefined;
    if (o.listDir) {
      listFile = path.join(o.listDir, "changes-asked.txt");
      writeFileSync(listFile, `${asked.map(changeLine).join("\n")}\n`, { mode: 0o600 });
    }
    const answer = await o.broker.decide(
      {
        kind: "fs",
        summary: summarise(asked),
        changes: asked.map(forApprover),
        listFile,
        cwd: o.workdir,
        why: [
          "the box changed files that existed before the run (or made a symlink leading out); they were held in a copy-on-write layer",
          ...(asked.some((c) => c.op === "history")
            ? [
                "it also rewrote git history (a branch moved other than forward, a ref deleted, a reflog rewritten, or commits that may carry held changes)",
              ]
            : []),
        ],
        via: "change-set",
      },
      "ask",
    );
    // A file-by-file answer allows only the paths it names; a plain yes allows them all.
    const yes =
      answer.decision !== "allow"
        ? []
        : answer.paths
          ? asked.filter((c) => answer.paths!.includes(c.path))
          : asked;
    approved = [...approved, ...yes];
    refusedBy = answer.by;
    keptWhy = answer.reason;
    const no = asked.filter((c) => !yes.includes(c));
    if (no.length > 0)
      o.notify(
        `fourwall gate: kept the originals of ${no.length} file(s) (${answer.reason}): ${listSome(no, auditNote)}`,
      );
  }
  const failed: HeldChange[] = [];
  for (const c of approved) {
    const before = applier.failures.length;
    applier.apply(c);
    if (applier.failures.length > before) failed.push(c);
  }
  applier.close();
  if (denied.length > 0)
    o.notify(`fourwall gate: the policy refused ${denied.length} change(s): ${listSome(denied, auditNote)}`);
  applier.failures.push(...set.unreadable.map((u) => `(unreadable in the layer) ${u}`));
  const refused = held.length - approved.length;
  o.audit.write({
    box: o.box,
    wall: "gate",
    event: "change-set",
    created: set.creates.length,
    applied: approved.map((c) => ({
      op: c.op,
      path: c.path,
      to: c.to,
      by: c.decision === "allow" ? "policy" : "human",
      detail: c.detail,
    })),
    refused: held.filter((c) => !approved.includes(c)).map((c) => ({ op: c.op, path: c.path, to: c.to })),
    failures: applier.failures,
  });
  for (const f of applier.failures) o.notify(`fourwall gate: could not apply ${f}`);
  const keep = ({ decision, how, diff: _d, diffNote: _n, ...c }: HeldChange, by: string): KeptChange => ({
    ...c,
    how,
    refusedBy: decision === "deny" ? "policy" : by,
  });
  const kept = [
    ...held.filter((c) => !approved.includes(c)).map((c) => keep(c, refusedBy)),
    ...failed.map((c) => keep(c, "apply-failed")),
  ];
  if (failed.length > 0 || keptCreates.length > 0) keptWhy = `${keptWhy}; some changes could not be applied`;
  return {
    created: set.creates.length,
    applied: approved.length - failed.length,
    refused,
    failures: applier.failures,
    kept,
    keptCreates,
    keptWhy:
      denied.length > 0 && asked.length > 0 ? `${keptWhy}; others refused by the gate policy` : keptWhy,
  };
}
