/**
 * Git as git sees it (src/walls/gate/git.ts, history.ts, git-view.ts, git-oracle.ts): ref moves
 * judged as history. First on fake data (every branch of the judgement, and what each file of
 * .git carries), then on real repositories made in a temp dir with the real git: the "before" is
 * a copy of .git taken before the attack, the "after" the repository the attack left.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { cpSync, mkdirSync, mkdtempSync, rmSync, truncateSync, unlinkSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import type { ChangeSet } from "../../../../src/walls/gate/changeset.js";
import {
  type GitFiles,
  type GitOracle,
  historyDecision,
  judgeHistory,
  MAX_JUDGED,
  parsePackedRefs,
  parseRef,
} from "../../../../src/walls/gate/git.js";
import { gitOracle } from "../../../../src/walls/gate/git-oracle.js";
import { dirGitFiles, layerGitFiles } from "../../../../src/walls/gate/git-view.js";
import { holdAllHistory, holdHistory, othersHeld } from "../../../../src/walls/gate/history.js";

const tmp = mkdtempSync(path.join(os.tmpdir(), "fourwall-history-unit-"));
after(() => rmSync(tmp, { recursive: true, force: true }));

// ---------------------------------------------------------------------------------------------
// fake data

/** A .git directory as a map of files (directories are implied by the paths). */
function fakeFiles(files: Record<string, string>): GitFiles {
  return {
    read: (rel) => (rel in files ? Buffer.from(files[rel]!) : undefined),
    list: (rel) => {
      const seen = new Map<string, boolean>();
      for (const f of Object.keys(files))
        if (f.startsWith(`${rel}/`)) {
          const rest = f.slice(rel.length + 1).split("/");
          seen.set(rest[0]!, rest.length > 1);
        }
      return [...seen].map(([name, dir]) => ({ name, dir }));
    },
  };
}

const A = "a".repeat(40);
const B = "b".repeat(40);
const C = "c".repeat(40);

/** History as a parent map: X → its parent. */
function fakeOracle(parents: Record<string, string | undefined>, newCommits = new Set<string>()): GitOracle {
  const chain = (x: string) => {
    const out: string[] = [];
    for (let c: string | undefined = x; c; c = parents[c]) out.push(c);
    return out;
  };
  return {
    isAncestor: (a, b) => (a in parents && b in parents ? chain(b).includes(a) : undefined),
    count: (from, not) => {
      if (!(from in parents)) return undefined;
      const hidden = new Set(not.flatMap(chain));
      return chain(from).filter((c) => !hidden.has(c) && (newCommits.size === 0 || newCommits.has(c))).length;
    },
    changedPaths: () => [{ path: "README.md", op: "overwrite" }],
  };
}

const judge = (
  before: Record<string, string>,
  afterFiles: Record<string, string>,
  o: { parents?: Record<string, string | undefined>; othersHeld?: boolean; pathAllows?: boolean } = {},
) =>
  judgeHistory({
    before: fakeFiles(before),
    after: fakeFiles(afterFiles),
    oracle: fakeOracle(o.parents ?? { [A]: undefined, [B]: A, [C]: B }),
    othersHeld: o.othersHeld ?? false,
    pathDecision: () => (o.pathAllows === false ? "ask" : "allow"),
  });

const HEAD = { HEAD: "ref: refs/heads/main\n" };

describe("judging ref moves (fake data)", () => {
  it("parses loose refs and packed-refs (header and peeled lines skipped)", () => {
    assert.deepEqual(parseRef(`${A}\n`), { sha: A });
    assert.deepEqual(parseRef("ref: refs/heads/x\n"), { symbolic: "refs/heads/x" });
    assert.ok("invalid" in parseRef("garbage"));
    const p = parsePackedRefs(
      `# pack-refs with: peeled fully-peeled sorted\n${A} refs/heads/main\n${B} refs/tags/v1\n^${C}\n`,
    );
    assert.deepEqual(
      [...p],
      [
        ["refs/heads/main", A],
        ["refs/tags/v1", B],
      ],
    );
  });

  it("a fast-forward flows; its reflog appended flows", () => {
    const allowed = judge(
      { ...HEAD, "refs/heads/main": A, "logs/HEAD": "1\n" },
      { ...HEAD, "refs/heads/main": B, "logs/HEAD": "1\n2\n" },
    );
    assert.equal(allowed.moves[0]!.decision, "allow", allowed.moves[0]!.detail);
    assert.equal(historyDecision(allowed, ".git/refs/heads/main"), "allow");
    assert.equal(historyDecision(allowed, ".git/logs/HEAD"), "allow");
    assert.equal(historyDecision(allowed, ".git/index"), "allow");
  });

  it("a branch moved backwards asks, described with the commits it drops; its reflogs go with it", () => {
    const v = judge({ ...HEAD, "refs/heads/main": C }, { ...HEAD, "refs/heads/main": A, "logs/HEAD": "x\n" });
    assert.equal(v.moves[0]!.decision, "ask");
    assert.match(v.moves[0]!.detail, /^branch main moved backwards from c{12} to a{12} \(drops 2 commits\)$/);
    assert.equal(historyDecision(v, ".git/refs/heads/main"), "ask");
    assert.equal(historyDecision(v, ".git/logs/HEAD"), "ask", "HEAD's reflog records the move");
    assert.equal(historyDecision(v, ".git/logs/refs/heads/main"), "ask");
    assert.equal(historyDecision(v, ".git/index"), "ask");
    assert.equal(historyDecision(v, ".git/objects/ab/cd"), undefined, "objects are not history");
    assert.equal(historyDecision(v, "src/app.ts"), undefined);
  });

  it("a sideways move (reset and commit) asks", () => {
    const parents = { [A]: undefined, [B]: A, [C]: A };
    const v = judge({ ...HEAD, "refs/heads/main": B }, { ...HEAD, "refs/heads/main": C }, { parents });
    assert.equal(v.moves[0]!.decision, "ask");
    assert.match(v.moves[0]!.detail, /does not descend from it.*drops 1 commit\)/);
  });

  it("a deleted ref asks; a deleted tag too; a moved tag asks even forward; new branches and tags flow", () => {
    const v = judge(
      { ...HEAD, "refs/heads/main": B, "refs/heads/old": A, "refs/tags/v1": A },
      { ...HEAD, "refs/heads/main": B, "refs/tags/v1": B, "refs/heads/new": A, "refs/tags/v2": B },
    );
    const by = Object.fromEntries(v.moves.map((m) => [m.ref, m]));
    assert.equal(by["refs/heads/old"]!.decision, "ask");
    assert.match(by["refs/heads/old"]!.detail, /branch old deleted/);
    assert.equal(by["refs/tags/v1"]!.decision, "ask");
    assert.match(by["refs/tags/v1"]!.detail, /tag v1 moved/);
    assert.equal(by["refs/heads/new"]!.decision, "allow");
    assert.equal(by["refs/tags/v2"]!.decision, "allow");
    assert.equal(historyDecision(v, ".git/refs/heads"), "ask", "a directory carries every ref under it");
    assert.equal(historyDecision(v, ".git/refs/heads/new"), "allow");
  });

  it("a symbolic HEAD switch (checkout) flows; a detached HEAD at an old commit flows", () => {
    const v = judge(
      { ...HEAD, "refs/heads/main": B, "refs/heads/dev": A },
      { HEAD: "ref: refs/heads/dev\n", "refs/heads/main": B, "refs/heads/dev": A },
    );
    assert.equal(v.moves[0]!.decision, "allow");
    assert.equal(historyDecision(v, ".git/HEAD"), "allow");
    const d = judge({ ...HEAD, "refs/heads/main": B }, { HEAD: `${A}\n`, "refs/heads/main": B });
    assert.equal(d.moves[0]!.decision, "allow", d.moves[0]!.detail);
  });

  it("packed-refs: a packed-only ref moved back by a new loose file asks, and so does that file", () => {
    const packed = `# pack-refs with: peeled\n${C} refs/heads/main\n`;
    const v = judge(
      { ...HEAD, "packed-refs": packed },
      { ...HEAD, "packed-refs": packed, "refs/heads/main": A },
    );
    assert.equal(v.moves[0]!.decision, "ask");
    assert.equal(historyDecision(v, ".git/refs/heads/main"), "ask");
    assert.equal(historyDecision(v, ".git/packed-refs"), "allow", "its own entries did not change");
  });

  it("packed-refs: a loose ref deleted while packed-refs still has an older value asks (the branch falls back)", () => {
    const packed = `${A} refs/heads/main\n`;
    const v = judge(
      { ...HEAD, "packed-refs": packed, "refs/heads/main": C },
      { ...HEAD, "packed-refs": packed },
    );
    assert.equal(v.moves[0]!.decision, "ask");
    assert.match(v.moves[0]!.detail, /moved backwards/);
    assert.equal(historyDecision(v, ".git/refs/heads/main"), "ask");
  });

  it("packed-refs: a rewrite that drops a ref or moves it back asks; pack-refs (loose into packed) flows", () => {
    const v = judge(
      { ...HEAD, "packed-refs": `${C} refs/heads/main\n${A} refs/heads/x\n` },
      { ...HEAD, "packed-refs": `${A} refs/heads/main\n` },
    );
    assert.equal(historyDecision(v, ".git/packed-refs"), "ask");
    assert.equal(v.moves.filter((m) => m.decision === "ask").length, 2);
    const packRefs = judge(
      { ...HEAD, "refs/heads/main": C },
      { ...HEAD, "packed-refs": `${C} refs/heads/main\n` },
    );
    assert.equal(packRefs.moves.length, 0, "the branch's value is the same");
    assert.equal(historyDecision(packRefs, ".git/packed-refs"), "allow");
    assert.equal(historyDecision(packRefs, ".git/refs/heads/main"), "allow");
  });

  it("reflogs: an append flows, a truncation, a rewrite or a deletion asks", () => {
    const v = judge(
      {
        ...HEAD,
        "refs/heads/main": B,
        "logs/HEAD": "1\n2\n",
        "logs/refs/heads/main": "1\n",
        "logs/refs/heads/x": "1\n",
      },
      { ...HEAD, "refs/heads/main": B, "logs/HEAD": "1\n", "logs/refs/heads/main": "1\n2\n" },
    );
    const by = Object.fromEntries(v.logs.map((l) => [l.log, l]));
    assert.equal(by.HEAD!.decision, "ask");
    assert.match(by.HEAD!.detail, /reflog of HEAD rewritten: 2 entries before, 1 now/);
    assert.equal(by["refs/heads/main"]!.decision, "allow");
    assert.equal(by["refs/heads/x"]!.decision, "ask");
    assert.equal(historyDecision(v, ".git/logs/HEAD"), "ask");
    assert.equal(historyDecision(v, ".git/logs/refs/heads/main"), "allow");
  });

  it("commits made in this run: held when other changes of the run were held, or when they change gated files", () => {
    const parents = { [A]: undefined, [B]: A };
    const before = { ...HEAD, "refs/heads/main": A };
    const afterFiles = { ...HEAD, "refs/heads/main": B };
    const held = judge(before, afterFiles, { parents, othersHeld: true });
    assert.equal(held.moves[0]!.decision, "ask");
    assert.match(held.moves[0]!.detail, /1 commit made in this run; other changes of this run are held/);
    assert.equal(historyDecision(held, ".git/index"), "ask");
    const gated = judge(before, afterFiles, { parents, pathAllows: false });
    assert.equal(gated.moves[0]!.decision, "ask");
    assert.match(gated.moves[0]!.detail, /overwrite README\.md/);
    // an old commit (already in the history) is no new content, whatever else was held
    const oldCommit = judge(
      { ...HEAD, "refs/heads/main": B, "refs/heads/x": A },
      { ...HEAD, "refs/heads/main": B, "refs/heads/x": B },
      { parents, othersHeld: true },
    );
    assert.equal(oldCommit.moves[0]!.decision, "allow", oldCommit.moves[0]!.detail);
    // a new branch at a new commit carries the same risk as a move
    const created = judge(
      before,
      { ...afterFiles, "refs/heads/main": A, "refs/heads/evil": B },
      { parents, othersHeld: true },
    );
    assert.equal(created.moves[0]!.decision, "ask");
  });

  it("replace refs, grafts and the shallow list rewrite what git shows as history: any change asks", () => {
    const v = judge(
      { ...HEAD, "refs/heads/main": B },
      { ...HEAD, "refs/heads/main": B, [`refs/replace/${B}`]: A, "info/grafts": `${B}\n`, shallow: `${A}\n` },
    );
    assert.equal(v.moves[0]!.decision, "ask");
    assert.match(v.moves[0]!.detail, /git would show another object/);
    assert.deepEqual(
      v.views.map((w) => [w.log, w.decision]),
      [
        ["shallow", "ask"],
        ["info/grafts", "ask"],
      ],
    );
    assert.equal(historyDecision(v, ".git/info/grafts"), "ask");
    assert.equal(historyDecision(v, ".git/info"), "ask", "a new info directory carrying grafts");
    assert.equal(historyDecision(v, ".git/shallow"), "ask");
    assert.equal(historyDecision(v, ".git/info/exclude"), undefined);
  });

  it("a branch turned into a symbolic ref to another asks (it takes that branch's history)", () => {
    const v = judge(
      { ...HEAD, "refs/heads/main": B, "refs/heads/old": A },
      { ...HEAD, "refs/heads/main": "ref: refs/heads/old\n", "refs/heads/old": A },
    );
    assert.equal(v.moves[0]!.decision, "ask");
    assert.match(v.moves[0]!.detail, /branch main made a symbolic ref to refs\/heads\/old/);
  });

  it("a HEAD switch to a branch that is held is held with it", () => {
    const parents = { [A]: undefined, [B]: A };
    const v = judge(
      { ...HEAD, "refs/heads/main": A },
      { HEAD: "ref: refs/heads/evil\n", "refs/heads/main": A, "refs/heads/evil": B },
      { parents, othersHeld: true },
    );
    const head = v.moves.find((m) => m.ref === "HEAD")!;
    assert.equal(head.decision, "ask");
    assert.match(head.detail, /now points at refs\/heads\/evil, which is held/);
    assert.equal(historyDecision(v, ".git/HEAD"), "ask");
  });

  it("more changed refs than can be judged one by one: every one asks, git is not asked", () => {
    const many: Record<string, string> = { ...HEAD, "refs/heads/main": B };
    for (let i = 0; i <= MAX_JUDGED; i++) many[`refs/tags/t${i}`] = A;
    let asked = 0;
    const v = judgeHistory({
      before: fakeFiles({ ...HEAD, "refs/heads/main": B }),
      after: fakeFiles(many),
      oracle: {
        isAncestor: () => {
          asked++;
          return true;
        },
        count: () => {
          asked++;
          return 0;
        },
        changedPaths: () => {
          asked++;
          return [];
        },
      },
      othersHeld: false,
      pathDecision: () => "allow",
    });
    assert.equal(v.moves.length, MAX_JUDGED + 1);
    assert.ok(v.moves.every((m) => m.decision === "ask"));
    assert.equal(asked, 0);
  });

  it("git cannot tell (unknown objects, an unreadable ref): asks", () => {
    const v = judge(
      { ...HEAD, "refs/heads/main": A },
      { ...HEAD, "refs/heads/main": "d".repeat(40), "refs/heads/x": "junk" },
    );
    assert.ok(
      v.moves.every((m) => m.decision === "ask"),
      JSON.stringify(v.moves),
    );
    assert.match(v.moves.find((m) => m.ref === "refs/heads/main")!.detail, /git could not tell/);
  });
});

describe("holding history in the change-set", () => {
  const verdict = judge(
    { ...HEAD, "packed-refs": `${C} refs/heads/main\n` },
    { ...HEAD, "packed-refs": `${C} refs/heads/main\n`, "refs/heads/main": A },
  );

  it("a new loose ref that moves a branch back is held, not created; the move is described as history", () => {
    const set: ChangeSet = {
      creates: [".git/refs/heads/main", ".git/objects/aa/bb", "new.txt"],
      heldNew: new Set<string>(),
      unreadable: [],
      held: [{ op: "overwrite", path: ".git/logs/HEAD", decision: "allow", how: "copy" }],
    };
    const out = holdHistory(set, verdict);
    assert.deepEqual(out.creates, [".git/objects/aa/bb", "new.txt"]);
    const byPath = Object.fromEntries(out.held.map((c) => [`${c.op} ${c.path}`, c]));
    assert.equal(byPath["create .git/refs/heads/main"]?.decision, "ask");
    assert.equal(byPath["overwrite .git/logs/HEAD"]?.decision, "ask");
    assert.match(byPath["history .git/refs/heads/main"]?.detail ?? "", /branch main moved backwards/);
  });

  it("the policy's stricter word stands (a deny on refs stays a deny)", () => {
    const set: ChangeSet = {
      creates: [],
      heldNew: new Set<string>(),
      unreadable: [],
      held: [{ op: "overwrite", path: ".git/refs/heads/main", decision: "deny", how: "copy" }],
    };
    assert.equal(holdHistory(set, verdict).held.find((c) => c.op === "overwrite")!.decision, "deny");
  });

  it("othersHeld sees held work outside git's bookkeeping only", () => {
    assert.equal(
      othersHeld({
        creates: [],
        heldNew: new Set<string>(),
        unreadable: [],
        held: [{ op: "overwrite", path: ".git/index", decision: "ask", how: "copy" }],
      }),
      false,
    );
    assert.equal(
      othersHeld({
        creates: [],
        heldNew: new Set<string>(),
        unreadable: [],
        held: [{ op: "overwrite", path: "README.md", decision: "deny", how: "copy" }],
      }),
      true,
    );
  });

  it("when git cannot be asked at all, every change of git's bookkeeping asks", () => {
    const set: ChangeSet = {
      creates: [".git/refs/heads/x", "new.txt"],
      heldNew: new Set<string>(),
      unreadable: [],
      held: [{ op: "overwrite", path: ".git/refs/heads/main", decision: "allow", how: "copy" }],
    };
    const out = holdAllHistory(set, "no git");
    assert.deepEqual(out.creates, ["new.txt"]);
    assert.ok(out.held.filter((c) => c.op !== "history").every((c) => c.decision === "ask"));
    assert.match(out.held[0]!.detail!, /could not be judged: no git/);
  });
});

// ---------------------------------------------------------------------------------------------
// real repositories

const ENV = {
  PATH: "/usr/bin:/bin",
  HOME: tmp,
  GIT_CONFIG_NOSYSTEM: "1",
  GIT_CONFIG_GLOBAL: "/dev/null",
  GIT_AUTHOR_NAME: "t",
  GIT_AUTHOR_EMAIL: "t@t",
  GIT_COMMITTER_NAME: "t",
  GIT_COMMITTER_EMAIL: "t@t",
};
let n = 0;

/** A repository with three commits on main (README edited each time), and a copy of its .git as "before". */
function repo(setup?: (git: (...a: string[]) => string) => void) {
  const dir = path.join(tmp, `repo-${n++}`);
  mkdirSync(dir);
  const git = (...args: string[]) => {
    const r = spawnSync("git", ["-C", dir, ...args], { env: ENV, encoding: "utf8" });
    assert.equal(r.status, 0, `git ${args.join(" ")}: ${r.stderr}`);
    return r.stdout.trim();
  };
  git("init", "-q", "-b", "main");
  for (const i of [1, 2, 3]) {
    writeFileSync(path.join(dir, "README.md"), `v${i}\n`);
    git("add", "README.md");
    git("commit", "-qm", `c${i}`);
  }
  setup?.(git);
  const before = path.join(tmp, `before-${n++}`);
  cpSync(path.join(dir, ".git"), before, { recursive: true });
  const judgeNow = (o: { othersHeld?: boolean; gitBinary?: string; pathAllows?: boolean } = {}) => {
    const oracle = gitOracle({
      lowerObjects: path.join(before, "objects"),
      layerObjects: path.join(dir, ".git", "objects"),
      git: o.gitBinary,
    });
    try {
      return judgeHistory({
        before: dirGitFiles(before),
        after: dirGitFiles(path.join(dir, ".git")),
        oracle,
        othersHeld: o.othersHeld ?? false,
        pathDecision: () => (o.pathAllows ? "allow" : "ask"),
      });
    } finally {
      oracle.close();
    }
  };
  return { dir, git, judgeNow };
}

const mainMove = (v: ReturnType<typeof judgeHistory>) => v.moves.find((m) => m.ref === "refs/heads/main");

describe("judging ref moves in real repositories (real git)", () => {
  it("a plain commit of a new file is a fast-forward: it flows, reflogs appended", () => {
    const r = repo();
    writeFileSync(path.join(r.dir, "new.txt"), "new\n");
    r.git("add", "new.txt");
    r.git("commit", "-qm", "add");
    const v = r.judgeNow();
    assert.equal(mainMove(v)?.decision, "allow", mainMove(v)?.detail);
    assert.match(mainMove(v)!.detail, /fast-forwarded/);
    assert.ok(v.logs.every((l) => l.decision === "allow"));
    assert.equal(historyDecision(v, ".git/logs/HEAD"), "allow");
  });

  it("git reset --hard HEAD~1 && git commit: asks, drops 1 commit", () => {
    const r = repo();
    r.git("reset", "-q", "--hard", "HEAD~1");
    writeFileSync(path.join(r.dir, "new.txt"), "x\n");
    r.git("add", "new.txt");
    r.git("commit", "-qm", "rewrite");
    const v = r.judgeNow({ pathAllows: true });
    assert.equal(mainMove(v)?.decision, "ask");
    assert.match(
      mainMove(v)!.detail,
      /branch main moved to a commit that does not descend from it, from \w+ to \w+ \(drops 1 commit\)/,
    );
    assert.equal(historyDecision(v, ".git/refs/heads/main"), "ask");
    assert.equal(historyDecision(v, ".git/logs/HEAD"), "ask");
  });

  it("update-ref to the first commit and a truncated reflog: both ask", () => {
    const r = repo();
    const first = r.git("rev-list", "--max-parents=0", "HEAD");
    r.git("update-ref", "refs/heads/main", first);
    truncateSync(path.join(r.dir, ".git", "logs", "HEAD"), 0);
    truncateSync(path.join(r.dir, ".git", "logs", "refs", "heads", "main"), 0);
    const v = r.judgeNow({ pathAllows: true });
    assert.match(mainMove(v)!.detail, /branch main moved backwards from \w+ to \w+ \(drops 2 commits\)/);
    assert.equal(v.logs.find((l) => l.log === "HEAD")?.decision, "ask");
  });

  it("a packed-refs-only repository: a reset writes a loose ref over the packed one; judged, asks", () => {
    const r = repo((git) => git("pack-refs", "--all"));
    r.git("reset", "-q", "--hard", "HEAD~2");
    const v = r.judgeNow({ pathAllows: true });
    assert.match(mainMove(v)!.detail, /moved backwards.*drops 2 commits/);
    assert.equal(historyDecision(v, ".git/refs/heads/main"), "ask");
  });

  it("a ref deleted from loose while packed-refs holds an older value: the branch falls back, asks", () => {
    const r = repo((git) => {
      git("pack-refs", "--all");
      writeFileSync(path.join(git("rev-parse", "--show-toplevel"), "README.md"), "v4\n");
      git("commit", "-qam", "c4"); // loose main = c4, packed main = c3
    });
    unlinkSync(path.join(r.dir, ".git", "refs", "heads", "main"));
    const v = r.judgeNow({ pathAllows: true });
    assert.match(mainMove(v)!.detail, /moved backwards.*drops 1 commit\)/);
  });

  it("git branch -D of a packed branch (packed-refs rewritten) asks; a new branch and a checkout flow", () => {
    const r = repo((git) => {
      git("branch", "old", "HEAD~1");
      git("pack-refs", "--all");
    });
    r.git("branch", "-D", "-q", "old");
    r.git("checkout", "-q", "-b", "feature");
    const v = r.judgeNow({ pathAllows: true });
    const by = Object.fromEntries(v.moves.map((m) => [m.ref, m]));
    assert.equal(by["refs/heads/old"]?.decision, "ask");
    assert.equal(historyDecision(v, ".git/packed-refs"), "ask");
    assert.equal(by["refs/heads/feature"]?.decision, "allow");
    assert.equal(by.HEAD?.decision, "allow");
  });

  it("a commit that edits a file that existed before: asks when that path is gated or other changes were held", () => {
    const r = repo();
    writeFileSync(path.join(r.dir, "README.md"), "denied content\n");
    r.git("commit", "-qam", "sneak");
    assert.equal(mainMove(r.judgeNow({ othersHeld: true, pathAllows: true }))?.decision, "ask");
    const gated = mainMove(r.judgeNow({ pathAllows: false }));
    assert.equal(gated?.decision, "ask");
    assert.match(gated!.detail, /overwrite README\.md/);
    assert.equal(mainMove(r.judgeNow({ pathAllows: true }))?.decision, "allow");
  });

  it("an old dangling commit (left by an earlier run) is still new to the branch's history: judged by its paths", () => {
    const r = repo((git) => {
      writeFileSync(path.join(git("rev-parse", "--show-toplevel"), "README.md"), "refused earlier\n");
      git("commit", "-qam", "stale");
      git("reset", "-q", "--hard", "HEAD~1"); // the commit's objects stay, unreachable but in the reflog
      git("reflog", "expire", "--expire=now", "--all");
    });
    const stale = r.git("rev-parse", "HEAD@{0}");
    const danglings = spawnSync("git", ["-C", r.dir, "fsck", "--lost-found"], { env: ENV, encoding: "utf8" });
    const sha = /commit ([0-9a-f]{40})/.exec(danglings.stdout)?.[1];
    assert.ok(sha && sha !== stale, danglings.stdout);
    r.git("update-ref", "refs/heads/main", sha);
    assert.equal(mainMove(r.judgeNow({ pathAllows: false }))?.decision, "ask");
  });

  it("fails closed: no git binary, or an object of the new history missing, asks", () => {
    const r = repo();
    writeFileSync(path.join(r.dir, "new.txt"), "new\n");
    r.git("add", "new.txt");
    r.git("commit", "-qm", "add");
    assert.equal(mainMove(r.judgeNow({ gitBinary: "/nonexistent/git" }))?.decision, "ask");
    const head = r.git("rev-parse", "HEAD");
    unlinkSync(path.join(r.dir, ".git", "objects", head.slice(0, 2), head.slice(2)));
    assert.equal(mainMove(r.judgeNow({ pathAllows: true }))?.decision, "ask");
  });

  it("the box's objects/info/alternates and hooks are never used by the oracle", () => {
    const r = repo();
    const evil = path.join(tmp, `evil-${n++}`);
    mkdirSync(path.join(evil, "info"), { recursive: true });
    writeFileSync(path.join(r.dir, ".git", "objects", "info", "alternates"), `${evil}\n`);
    mkdirSync(path.join(r.dir, ".git", "hooks"), { recursive: true });
    const marker = path.join(tmp, `hook-ran-${n++}`);
    writeFileSync(path.join(r.dir, ".git", "hooks", "post-checkout"), `#!/bin/sh\ntouch ${marker}\n`, {
      mode: 0o755,
    });
    r.git("update-ref", "refs/heads/main", r.git("rev-parse", "HEAD~1"));
    const v = r.judgeNow({ pathAllows: true });
    assert.equal(mainMove(v)?.decision, "ask");
    assert.equal(spawnSync("test", ["-e", marker]).status, 1, "no hook ran");
  });
});

describe("the layer's view of .git (git-view.ts)", () => {
  it("upper over lower: the upper's entries win, opaque directories hide the lower's, symlinks read as absent", () => {
    const lower = path.join(tmp, `lower-${n++}`);
    const upper = path.join(tmp, `upper-${n++}`);
    for (const d of [".git/refs/heads", ".git/refs/tags", ".git/logs"])
      mkdirSync(path.join(lower, d), { recursive: true });
    mkdirSync(path.join(upper, ".git/refs/heads"), { recursive: true });
    mkdirSync(path.join(upper, ".git/refs/tags"), { recursive: true });
    writeFileSync(path.join(lower, ".git/HEAD"), "ref: refs/heads/main\n");
    writeFileSync(path.join(lower, ".git/refs/heads/main"), `${A}\n`);
    writeFileSync(path.join(lower, ".git/refs/heads/dev"), `${A}\n`);
    writeFileSync(path.join(lower, ".git/refs/tags/v1"), `${A}\n`);
    writeFileSync(path.join(upper, ".git/refs/heads/main"), `${B}\n`);
    writeFileSync(path.join(upper, ".git/refs/tags/v2"), `${B}\n`);
    spawnSync("ln", ["-s", "/etc/hostname", path.join(upper, ".git/refs/heads/link")]);
    const view = layerGitFiles(upper, lower, new Set([".git/refs/tags"]));
    assert.equal(view.read("refs/heads/main")?.toString(), `${B}\n`);
    assert.equal(view.read("refs/heads/dev")?.toString(), `${A}\n`);
    assert.equal(view.read("HEAD")?.toString(), "ref: refs/heads/main\n");
    assert.equal(view.read("refs/tags/v1"), undefined, "hidden under an opaque directory");
    assert.equal(view.read("refs/heads/link"), undefined);
    assert.deepEqual(
      view.list("refs/tags").map((e) => e.name),
      ["v2"],
    );
    assert.deepEqual(
      view
        .list("refs/heads")
        .map((e) => e.name)
        .sort(),
      ["dev", "link", "main"],
    );
  });

  it("an unreadable ref is not an absent one: reading it throws (and the review asks)", {
    skip: process.getuid?.() === 0 && "root reads everything",
  }, () => {
    const dir = path.join(tmp, `unreadable-${n++}`);
    mkdirSync(path.join(dir, "refs/heads"), { recursive: true });
    writeFileSync(path.join(dir, "refs/heads/main"), `${A}\n`, { mode: 0o000 });
    assert.throws(() => dirGitFiles(dir).read("refs/heads/main"));
  });

  it("a whiteout deletes (root only: mknod)", {
    skip: process.getuid?.() !== 0 && "needs root for mknod",
  }, () => {
    const lower = path.join(tmp, `lower-${n++}`);
    const upper = path.join(tmp, `upper-${n++}`);
    mkdirSync(path.join(lower, ".git/refs/heads"), { recursive: true });
    mkdirSync(path.join(upper, ".git/refs"), { recursive: true });
    writeFileSync(path.join(lower, ".git/refs/heads/main"), `${A}\n`);
    assert.equal(spawnSync("mknod", [path.join(upper, ".git/refs/heads"), "c", "0", "0"]).status, 0);
    const view = layerGitFiles(upper, lower, new Set());
    assert.equal(view.read("refs/heads/main"), undefined);
    assert.deepEqual(view.list("refs"), []);
  });
});
