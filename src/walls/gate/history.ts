import type { ChangeSet, HeldChange } from "./changeset.js";
import { type GitVerdict, historyDecision } from "./git.js";
import { strictest } from "./rules.js";
import type { Decision } from "./schema.js";

/**
 * The hook between the change-set (files) and git's view of it (history): every change of git's
 * bookkeeping gets the stricter of its path rule and the history's decision, new files that carry
 * a ref (a loose ref over a packed one, a branch under a new directory) are held instead of applied
 * at once, and each ref move or reflog rewrite that is not allowed becomes a change of its own
 * ("history"), described as what it is. Applying a history change does nothing by itself: the
 * files that carry it are in the same set with the same decision.
 */

/** Is `rel` one of the files whose meaning is history (and judged by git.ts)? */
export const isGitBookkeeping = (rel: string): boolean =>
  /^\.git\/(?:HEAD|packed-refs|index|refs|logs)(?:\/|$)/.test(rel) ||
  /^\.git\/(?:shallow|info|info\/grafts)$/.test(rel);

/** Did the run hold back anything outside git's bookkeeping (asked or denied by the policy)? */
export const othersHeld = (set: ChangeSet): boolean =>
  set.held.some((c) => !isGitBookkeeping(c.path) && c.decision !== "allow");

export function holdHistory(set: ChangeSet, verdict: GitVerdict): ChangeSet {
  const decide = (c: { path: string; to?: string }): Decision | undefined => {
    const ds = [historyDecision(verdict, c.path), c.to ? historyDecision(verdict, c.to) : undefined].filter(
      (d): d is Decision => d !== undefined,
    );
    return ds.length ? strictest(ds, "allow") : undefined;
  };
  const held: HeldChange[] = set.held.map((c) => {
    const d = decide(c);
    return d ? { ...c, decision: strictest([c.decision, d], "allow") } : c;
  });
  const creates: string[] = [];
  for (const rel of set.creates) {
    const d = historyDecision(verdict, rel);
    if (d && d !== "allow") held.push({ op: "create", path: rel, decision: d, how: "copy" });
    else creates.push(rel);
  }
  const history = (path: string, detail: string, decision: Decision): HeldChange => ({
    op: "history",
    path,
    detail,
    decision,
    how: "none",
  });
  const described: HeldChange[] = [
    ...verdict.moves
      .filter((m) => m.decision !== "allow")
      .map((m) => history(`.git/${m.ref}`, m.detail, m.decision)),
    ...verdict.logs
      .filter((l) => l.decision !== "allow")
      .map((l) => history(`.git/logs/${l.log}`, l.detail, l.decision)),
    ...verdict.views
      .filter((w) => w.decision !== "allow")
      .map((w) => history(`.git/${w.log}`, w.detail, w.decision)),
  ];
  return { ...set, creates, held: [...described, ...held] };
}

/** When git cannot be asked at all: every change of its bookkeeping waits for a human. */
export function holdAllHistory(set: ChangeSet, why: string): ChangeSet {
  const held: HeldChange[] = set.held.map((c) =>
    isGitBookkeeping(c.path) || (c.to && isGitBookkeeping(c.to))
      ? { ...c, decision: strictest([c.decision, "ask"], "allow") }
      : c,
  );
  const creates = set.creates.filter((rel) => {
    if (!isGitBookkeeping(rel)) return true;
    held.push({ op: "create", path: rel, decision: "ask", how: "copy" });
    return false;
  });
  const touched = held.some((c) => isGitBookkeeping(c.path) && c.decision !== "allow");
  const described: HeldChange[] = touched
    ? [
        {
          op: "history",
          path: ".git",
          detail: `the history could not be judged: ${why}`,
          decision: "ask",
          how: "none",
        },
      ]
    : [];
  return { ...set, creates, held: [...described, ...held] };
}
