/**
 * The approval gate judges git's bookkeeping as history (src/walls/gate/git.ts), end to end: real
 * git in real boxes, launched as root and as uid 65534, with a denying approver:
 *   - `git reset --hard HEAD~1 && git commit` and `git update-ref` back to the first commit with
 *     truncated reflogs (on a packed-refs-only repository: the rewrite is a NEW loose ref file)
 *     leave the host's branch, packed-refs and reflogs byte-identical;
 *   - a plain `git commit` (a fast-forward) lands, and nobody is asked;
 *   - a denied edit committed in the run does not reach the host's branch, nor does one committed
 *     and then undone in the working tree, nor one only staged (the host's index);
 * and each attack again against a box whose gate judges refs as files only (weak-box.ts
 * --weaken git-history), to show the test sees the hole. The attacks run without the pause at the
 * action (--weaken pause: the layer alone, as on the other runtimes): with it, git's working-tree
 * writes are refused at the moment, before any branch moves.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { existsSync, readFileSync, writeFileSync } from "node:fs";
import path from "node:path";
import { describe, it } from "node:test";
import { chownToMode, type Fixture, MODES, makeFixture, sh, USER_UID } from "../helpers/box.js";

/** git on the host, as the test (root), with the fixture's repository. */
function hostGit(fx: Fixture, ...args: string[]): string {
  const r = spawnSync("git", ["-c", "safe.directory=*", "-C", fx.workdir, ...args], {
    env: {
      ...process.env,
      HOME: fx.home,
      GIT_AUTHOR_NAME: "t",
      GIT_AUTHOR_EMAIL: "t@t",
      GIT_COMMITTER_NAME: "t",
      GIT_COMMITTER_EMAIL: "t@t",
    },
    encoding: "utf8",
  });
  assert.equal(r.status, 0, `git ${args.join(" ")}: ${r.stderr}`);
  return r.stdout.trim();
}

/** A repository with three commits on main, each adding a file; optionally every ref packed. */
function seedRepo(fx: Fixture, o: { packed?: boolean } = {}): void {
  for (const [i, name] of ["a.txt", "b.txt", "c.txt"].entries()) {
    writeFileSync(path.join(fx.workdir, name), `${name} v1\n`);
    hostGit(fx, "add", name);
    hostGit(fx, "commit", "-qm", `c${i + 1}`);
  }
  hostGit(fx, "branch", "-M", "main");
  if (o.packed) hostGit(fx, "pack-refs", "--all");
  if (fx.mode === "user") spawnSync("chown", ["-R", `${USER_UID}:${USER_UID}`, fx.workdir]);
}

/** The host's history, byte for byte: the branch, packed-refs, HEAD, the reflogs and the index. */
function history(fx: Fixture): Record<string, string | undefined> {
  const read = (rel: string) => {
    const p = path.join(fx.workdir, ".git", rel);
    return existsSync(p) ? readFileSync(p, "latin1") : undefined;
  };
  return {
    main: hostGit(fx, "rev-parse", "refs/heads/main"),
    looseMain: read("refs/heads/main"),
    packedRefs: read("packed-refs"),
    HEAD: read("HEAD"),
    logHEAD: read("logs/HEAD"),
    logMain: read("logs/refs/heads/main"),
    index: read("index"),
  };
}

/** git in the box: no identity of its own there. */
const GIT = "git -c user.name=agent -c user.email=agent@box";

const RESET_AND_COMMIT = `set -e
${GIT} reset -q --hard HEAD~1
echo rewritten > new.txt
${GIT} add new.txt
${GIT} commit -qm 'history rewritten'
echo "box main: $(git rev-parse main)"`;

const UPDATE_REF_TO_FIRST = `set -e
first=$(git rev-list --max-parents=0 HEAD)
git update-ref refs/heads/main "$first"
: > .git/logs/HEAD
: > .git/logs/refs/heads/main
echo "box main: $(git rev-parse main)"`;

const COMMIT_DENIED_EDIT = `set -e
echo 'denied content' >> a.txt
${GIT} commit -qam 'sneak a denied edit in'
echo "box main: $(git rev-parse main)"`;

// The edit is committed, then the working tree is put back: no file of the workdir changes, only
// the history does.
const COMMIT_EDIT_THEN_UNDO = `set -e
echo 'denied content' >> a.txt
${GIT} commit -qam 'sneak a denied edit in'
git show HEAD~1:a.txt > a.txt
${GIT} update-index --refresh >/dev/null || true
echo "box main: $(git rev-parse main)"`;

// Not committed: only staged. The host's next `git commit` would carry it.
const STAGE_DENIED_EDIT = `set -e
echo 'denied content' >> a.txt
git add a.txt
echo "box index: $(git ls-files -s a.txt)"`;

/** What the broken box lets through: the branch moves, or (for a staged edit) the index changes. */
const attacks: { name: string; script: string; packed?: boolean; hole?: "main" | "index" }[] = [
  { name: "git reset --hard HEAD~1 && git commit", script: RESET_AND_COMMIT },
  {
    name: "git update-ref refs/heads/main <first commit> + truncated reflogs (packed-refs-only repository)",
    script: UPDATE_REF_TO_FIRST,
    packed: true,
  },
  { name: "a denied edit, committed", script: COMMIT_DENIED_EDIT },
  { name: "a denied edit, committed, then undone in the working tree", script: COMMIT_EDIT_THEN_UNDO },
  { name: "a denied edit, staged (git add)", script: STAGE_DENIED_EDIT, hole: "index" },
];

for (const mode of MODES) {
  describe(`approval gate: git history (${mode})`, () => {
    for (const attack of attacks) {
      it(`${attack.name}: denied, the host's branch, reflogs and index are byte-identical`, async () => {
        const fx = makeFixture(mode);
        seedRepo(fx, { packed: attack.packed });
        const before = history(fx);
        const a = readFileSync(path.join(fx.workdir, "a.txt"), "utf8");
        // The review at exit is what is tested here, so the box runs without the pause at the action
        // (which would refuse git's working-tree writes before any branch moved): the layer alone, as
        // on the other runtimes.
        const r = await sh(fx, attack.script, {
          weaken: ["pause"],
          weakFlags: ["--approver", "exit 1"],
          timeoutMs: 60_000,
        });
        assert.equal(r.code, 0, `${r.stdout}\n${r.stderr}`);
        if (attack.hole !== "index") {
          const boxMain = /box main: (\w+)/.exec(r.stdout)?.[1];
          assert.ok(
            boxMain && boxMain !== before.main,
            `the box moved its branch:\n${r.stdout}\n${r.stderr}`,
          );
        } else assert.match(r.stdout, /box index: /);
        assert.deepEqual(history(fx), before, r.stderr);
        assert.equal(readFileSync(path.join(fx.workdir, "a.txt"), "utf8"), a);
        assert.equal(
          spawnSync("git", ["-C", fx.workdir, "-c", "safe.directory=*", "fsck", "--no-progress"]).status,
          0,
        );
        assert.match(r.stderr, /kept the originals of \d+ file\(s\)/);
      });

      it(`${attack.name}: the test sees the hole in a box that judges refs as files only`, async () => {
        const fx = makeFixture(mode);
        seedRepo(fx, { packed: attack.packed });
        const before = history(fx);
        const r = await sh(fx, attack.script, {
          weaken: ["git-history", "pause"],
          weakFlags: ["--approver", "exit 1"],
          timeoutMs: 60_000,
        });
        assert.equal(r.code, 0, r.stderr);
        const what = attack.hole ?? "main";
        assert.notEqual(
          history(fx)[what],
          before[what],
          `the broken box was not caught\n${r.stdout}\n${r.stderr}`,
        );
      });
    }

    it("a plain git commit (a fast-forward) lands without a question", async () => {
      const fx = makeFixture(mode);
      seedRepo(fx);
      const before = history(fx);
      const marker = path.join(fx.base, "asked");
      chownToMode(fx, fx.base);
      const r = await sh(
        fx,
        `set -e; echo fresh > fresh.txt; ${GIT} add fresh.txt; ${GIT} commit -qm 'a new file'; echo "box main: $(git rev-parse main)"`,
        { flags: ["--approver", `touch ${marker}; exit 1`], timeoutMs: 60_000 },
      );
      assert.equal(r.code, 0, r.stderr);
      const boxMain = /box main: (\w+)/.exec(r.stdout)?.[1];
      const after = history(fx);
      assert.equal(after.main, boxMain, r.stderr);
      assert.equal(hostGit(fx, "rev-parse", "main~1"), before.main, "a fast-forward of the old branch");
      assert.equal(hostGit(fx, "show", "main:fresh.txt"), "fresh");
      assert.ok(after.logHEAD!.startsWith(before.logHEAD!), "the reflog was appended to");
      assert.equal(existsSync(marker), false, "nobody was asked");
      assert.equal(
        spawnSync("git", ["-C", fx.workdir, "-c", "safe.directory=*", "fsck", "--no-progress"]).status,
        0,
      );
    });
  });
}
