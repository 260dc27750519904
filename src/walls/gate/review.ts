import { writeFileSync } from "node:fs";
import path from "node:path";
import type { AuditLog } from "../../audit/log.js";
import type { Broker } from "./broker.js";
import { Applier, type HeldChange, opaqueDirs, readChangeSet, summarise } from "./changeset.js";
import { reviewHistory } from "./history-review.js";
import type { GatePolicy } from "./schema.js";
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
  approvedAtAction?: readonly { op: string; path: string }[];
}

export interface ReviewResult {
  created: number;
  applied: number;
  refused: number;
  failures: string[];
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
  const applier = new Applier({ upper: o.upper, workdir: o.workdir, owner: o.owner, skip: set.heldNew });
  try {
    for (const rel of set.creates) applier.create(rel);
  } catch (error) {
    applier.failures.push((error as Error).message);
  }
  const allowed = set.held.filter((c) => c.decision === "allow");
  const denied = set.held.filter((c) => c.decision === "deny");
  const atAction = new Set((o.approvedAtAction ?? []).map((a) => `${a.op}\0${a.path}`));
  const earlier = (c: HeldChange) => c.decision === "ask" && atAction.has(`${c.op}\0${c.path}`);
  const asked = set.held.filter((c) => c.decision === "ask" && !earlier(c));
  const auditNote = "all of them in the --audit log's change-set line";
  let approved = [...allowed, ...set.held.filter(earlier)];
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
    if (answer.decision === "allow") approved = [...approved, ...asked];
    else
      o.notify(
        `fourwall gate: kept the originals of ${asked.length} file(s) (${answer.reason}): ${listSome(asked, auditNote)}`,
      );
  }
  for (const c of approved) applier.apply(c);
  applier.close();
  if (denied.length > 0)
    o.notify(`fourwall gate: the policy refused ${denied.length} change(s): ${listSome(denied, auditNote)}`);
  applier.failures.push(...set.unreadable.map((u) => `(unreadable in the layer) ${u}`));
  const refused = set.held.length - approved.length;
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
    refused: set.held.filter((c) => !approved.includes(c)).map((c) => ({ op: c.op, path: c.path, to: c.to })),
    failures: applier.failures,
  });
  for (const f of applier.failures) o.notify(`fourwall gate: could not apply ${f}`);
  return { created: set.creates.length, applied: approved.length, refused, failures: applier.failures };
}
