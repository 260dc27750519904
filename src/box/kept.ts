import type { KeptChangeSet } from "../walls/gate/index.js";

// Kept apart from gate.ts, which the supervisor loads lazily: only types and a line here.

/** `run --strict-gate`: the exit status when the box exited 0 but changes were kept, not applied. */
export const EXIT_CHANGES_KEPT = 123;

/** The one loud line a run or `down` ends with when its changes were not all applied. */
export function keptLine(kept: KeptChangeSet): string {
  const n = kept.changes.length + kept.creates.length;
  const what = kept.unreviewed && n === 0 ? "the box's changes (not reviewed)" : `${n} change(s)`;
  return `fourwall: ${what} NOT applied, kept as change-set ${kept.id} (${kept.reason.replace(/[\p{Cc}\p{Cf}]/gu, "?")}) — fourwall changes show ${kept.id} · diff · apply · drop`;
}
