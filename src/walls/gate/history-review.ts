import { lstatSync } from "node:fs";
import path from "node:path";
import type { ChangeSet } from "./changeset.js";
import { judgeHistory } from "./git.js";
import { gitOracle } from "./git-oracle.js";
import { dirGitFiles, layerGitFiles } from "./git-view.js";
import { holdAllHistory, holdHistory, isGitBookkeeping, othersHeld } from "./history.js";
import { decideFs } from "./rules.js";
import type { GatePolicy } from "./schema.js";

export interface HistoryReviewOptions {
  upper: string;
  workdir: string;
  opaque: ReadonlySet<string>;
  policy: GatePolicy["fs"];
  /** git itself (tests: a missing one); default: the host's. */
  git?: string;
}

const isRealDir = (p: string) => {
  try {
    return lstatSync(p).isDirectory();
  } catch {
    return false;
  }
};

/**
 * The change-set, with the workdir's git history judged by git (git.ts): only when the workdir
 * had a repository of its own before the run (`.git` a real directory) and the box touched its
 * bookkeeping. Any failure holds all of git's bookkeeping for a human (fail closed).
 */
export function reviewHistory(set: ChangeSet, o: HistoryReviewOptions): ChangeSet {
  const lowerGit = path.join(o.workdir, ".git");
  const touched = set.held.some(
    (c) => isGitBookkeeping(c.path) || (c.to !== undefined && isGitBookkeeping(c.to)),
  );
  if (!isRealDir(lowerGit) || !(touched || set.creates.some(isGitBookkeeping))) return set;
  const before = dirGitFiles(lowerGit);
  let oracle: ReturnType<typeof gitOracle> | undefined;
  try {
    oracle = gitOracle({
      lowerObjects: path.join(lowerGit, "objects"),
      layerObjects: path.join(o.upper, ".git", "objects"),
      shallow: before.read("shallow"),
      git: o.git,
    });
    const verdict = judgeHistory({
      before,
      after: layerGitFiles(o.upper, o.workdir, o.opaque),
      oracle,
      othersHeld: othersHeld(set),
      pathDecision: (rel, op) => decideFs(o.policy.rules, o.policy.default, rel, op).decision,
    });
    return holdHistory(set, verdict);
  } catch (error) {
    return holdAllHistory(set, (error as Error).message);
  } finally {
    oracle?.close();
  }
}
