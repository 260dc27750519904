/**
 * What an approval at the pause covers (the reviewer's hole: one yes landed whatever was at the
 * path). Pure: coveredAtOnce on facts, reviewKeysOf on verdicts. Then AtOnceApply on real
 * directories standing in for the layer and the workdir: only the very change asked about lands,
 * a symlink, a tree, another file or more mode bits never do, and the host is left as it was.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  renameSync,
  rmSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import {
  coveredAtOnce,
  type EntryFacts,
  judgePause,
  type PauseExpect,
  reviewKeysOf,
} from "../../../../src/walls/gate/pause.js";
import { AtOnceApply, recordAsked } from "../../../../src/walls/gate/pause-apply.js";
import { gateSchema } from "../../../../src/walls/gate/schema.js";
import { pauseNotice } from "../../../helpers/pause-notice.js";

const file = (sha256: string, extra: Partial<EntryFacts> = {}): EntryFacts => ({
  kind: "file",
  mode: 0o100644,
  ino: 1,
  size: 5,
  sha256,
  ...extra,
});

describe("coveredAtOnce: what an approval covers", () => {
  const asked = new Map<string, EntryFacts>([
    ["notes.txt", file("aaa", { ino: 10 })],
    ["dir", { kind: "dir", mode: 0o40755, ino: 11, size: 0 }],
    ["cut.txt", file("bbb", { ino: 12, size: 9, cutSha256: "cut" })],
  ]);
  const get = (rel: string) => asked.get(rel);
  const moved: PauseExpect = { path: "notes.md", kind: "moved", from: "notes.txt" };

  it("a rename: only the very file at its new name, same content and mode, the host name still free", () => {
    assert.equal(coveredAtOnce(moved, get, file("aaa", { ino: 99 }), undefined), true);
    assert.equal(coveredAtOnce(moved, get, file("", { sha256: undefined }), undefined), "content");
    assert.equal(coveredAtOnce(moved, get, file("zzz"), undefined), false, "another file");
    assert.equal(coveredAtOnce(moved, get, file("aaa", { size: 6 }), undefined), false);
    assert.equal(coveredAtOnce(moved, get, file("aaa", { mode: 0o100755 }), undefined), false, "exec bits");
    assert.equal(coveredAtOnce(moved, get, file("aaa", { mode: 0o104644 }), undefined), false, "setuid");
    for (const kind of ["symlink", "dir", "other", "whiteout"] as const)
      assert.equal(coveredAtOnce(moved, get, { kind, mode: 0, ino: 5, size: 5 }, undefined), false, kind);
    assert.equal(coveredAtOnce(moved, get, file("aaa"), file("x")), false, "a host process made the name");
    assert.equal(coveredAtOnce(moved, get, undefined, undefined), false, "not there yet");
    // a source that was not a regular file (a symlink, a directory) is never moved at once
    assert.equal(
      coveredAtOnce({ path: "x", kind: "moved", from: "dir" }, get, file("aaa"), undefined),
      false,
    );
  });

  it("a delete: a whiteout, and the host entry still the one asked about", () => {
    const gone: PauseExpect = { path: "notes.txt", kind: "gone" };
    const whiteout: EntryFacts = { kind: "whiteout", mode: 0o20000, ino: 3, size: 0 };
    assert.equal(coveredAtOnce(gone, get, whiteout, file("aaa", { ino: 10 })), true);
    assert.equal(coveredAtOnce(gone, get, whiteout, file("aaa", { ino: 77 })), false, "replaced on the host");
    assert.equal(coveredAtOnce(gone, get, file("aaa"), file("aaa", { ino: 10 })), false);
  });

  it("O_TRUNC: a regular file of the same mode with new content; truncate: exactly the cut content", () => {
    const host = file("aaa", { ino: 10 });
    const rewritten: PauseExpect = { path: "notes.txt", kind: "rewritten" };
    assert.equal(coveredAtOnce(rewritten, get, file("new", { size: 3 }), host), true);
    assert.equal(coveredAtOnce(rewritten, get, file("aaa"), host), false, "nothing changed yet");
    assert.equal(coveredAtOnce(rewritten, get, file("", { sha256: undefined }), host), "content");
    assert.equal(
      coveredAtOnce(rewritten, get, { kind: "symlink", mode: 0o120777, ino: 4, size: 3 }, host),
      false,
    );
    assert.equal(coveredAtOnce(rewritten, get, file("new", { mode: 0o100755 }), host), false);
    const truncated: PauseExpect = { path: "cut.txt", kind: "truncated", length: 4 };
    const cutHost = file("bbb", { ino: 12, size: 9 });
    assert.equal(coveredAtOnce(truncated, get, file("cut", { size: 4 }), cutHost), true);
    assert.equal(coveredAtOnce(truncated, get, file("evil", { size: 4 }), cutHost), false, "other bytes");
    assert.equal(coveredAtOnce(truncated, get, file("cut", { size: 5 }), cutHost), false);
  });

  it("a chmod: the same kind with exactly the mode asked", () => {
    const mode: PauseExpect = { path: "notes.txt", kind: "mode", mode: 0o600 };
    const host = file("aaa", { ino: 10 });
    assert.equal(coveredAtOnce(mode, get, file("aaa", { mode: 0o100600 }), host), true);
    assert.equal(coveredAtOnce(mode, get, file("aaa", { mode: 0o100700 }), host), false);
    assert.equal(coveredAtOnce(mode, get, { kind: "symlink", mode: 0o120600, ino: 3, size: 1 }, host), false);
  });
});

describe("reviewKeysOf: what the review at exit does not ask again", () => {
  const policy = gateSchema.parse({}).fs;
  const t = (p: string, role: "from" | "to" | "target", exists = true, inWorkdir = true) => ({
    role,
    path: p,
    exists,
    inWorkdir,
    mode: 0o100644,
  });
  const n = pauseNotice;

  it("a rename covers that rename to that name, not a bare delete of its source nor its destination", () => {
    const v = judgePause(n("rename", [t("notes.txt", "from"), t("notes.md", "to", false)]), policy);
    assert.deepEqual(reviewKeysOf(v), [{ op: "rename", path: "notes.txt", to: "notes.md" }]);
    const over = judgePause(n("rename", [t("a", "from"), t("b", "to")]), policy);
    assert.deepEqual(reviewKeysOf(over), [{ op: "rename", path: "a", to: "b" }]);
  });

  it("a rename out of the workdir is its source's delete; a delete and a truncation are themselves", () => {
    const out = judgePause(n("rename", [t("a", "from"), t("/tmp/a", "to", false, false)]), policy);
    assert.deepEqual(reviewKeysOf(out), [{ op: "delete", path: "a" }]);
    assert.deepEqual(reviewKeysOf(judgePause(n("unlink", [t("a", "target")]), policy)), [
      { op: "delete", path: "a" },
    ]);
    assert.deepEqual(reviewKeysOf(judgePause(n("open", [t("a", "target")]), policy)), [
      { op: "overwrite", path: "a" },
    ]);
  });
});

const base = mkdtempSync(path.join(os.tmpdir(), "fourwall-pause-apply-"));
after(() => rmSync(base, { recursive: true, force: true }));

/** A layer and a workdir with notes.txt, and the approval of renaming it to notes.md. */
function approvedRename() {
  const dir = mkdtempSync(path.join(base, "case-"));
  const upper = path.join(dir, "upper");
  const workdir = path.join(dir, "work");
  mkdirSync(upper);
  mkdirSync(workdir);
  writeFileSync(path.join(workdir, "notes.txt"), "notes\n", { mode: 0o644 });
  const expect: PauseExpect[] = [
    { path: "notes.txt", kind: "gone" },
    { path: "notes.md", kind: "moved", from: "notes.txt" },
  ];
  const apply = new AtOnceApply({ upper, workdir }, expect, recordAsked(workdir, upper, expect));
  return { upper, workdir, apply };
}

/** overlayfs's whiteout (char 0:0) needs root; without one a delete is never seen. */
const whiteout = (at: string) => spawnSync("mknod", [at, "c", "0", "0"]).status === 0;
const ROOT = process.getuid?.() === 0;

describe("AtOnceApply on real directories", () => {
  it("the very file at the new name lands; the host's old name goes only with a whiteout", () => {
    const { upper, workdir, apply } = approvedRename();
    writeFileSync(path.join(upper, "notes.md"), "notes\n", { mode: 0o644 });
    // no whiteout at notes.txt yet: the rename has not happened, nothing lands
    assert.equal(apply.tryApply(), false);
    assert.equal(existsSync(path.join(workdir, "notes.md")), false);
    if (!ROOT) return;
    assert.ok(whiteout(path.join(upper, "notes.txt")));
    assert.equal(apply.tryApply(), true);
    assert.equal(readFileSync(path.join(workdir, "notes.md"), "utf8"), "notes\n");
    assert.equal(existsSync(path.join(workdir, "notes.txt")), false);
  });

  for (const [what, plant] of [
    ["a symlink out", (u: string) => symlinkSync("/root/.ssh/authorized_keys", path.join(u, "notes.md"))],
    [
      "a tree with a new repository",
      (u: string) => {
        mkdirSync(path.join(u, "notes.md", ".git"), { recursive: true });
        writeFileSync(path.join(u, "notes.md", ".git", "config"), "[core]\n\tfsmonitor = touch /tmp/x\n");
      },
    ],
    ["another file", (u: string) => writeFileSync(path.join(u, "notes.md"), "other\n")],
    [
      "the file made executable",
      (u: string) => {
        writeFileSync(path.join(u, "notes.md"), "notes\n");
        chmodSync(path.join(u, "notes.md"), 0o755);
      },
    ],
  ] as const)
    it(`${what} at the new name: nothing lands, the host is as it was`, () => {
      const { upper, workdir, apply } = approvedRename();
      plant(upper);
      if (ROOT) whiteout(path.join(upper, "notes.txt"));
      assert.equal(apply.tryApply(), false);
      assert.equal(existsSync(path.join(workdir, "notes.md")), false);
      assert.equal(readFileSync(path.join(workdir, "notes.txt"), "utf8"), "notes\n");
      assert.deepEqual(readdirSync(workdir), ["notes.txt"], "no temporary name left behind");
    });

  it("a file of this run renamed over an old one (an editor's save): the layer's file as asked lands, another does not", () => {
    const dir = mkdtempSync(path.join(base, "case-"));
    const upper = path.join(dir, "upper");
    const workdir = path.join(dir, "work");
    mkdirSync(upper);
    mkdirSync(workdir);
    writeFileSync(path.join(workdir, "README.md"), "old\n", { mode: 0o644 });
    writeFileSync(path.join(upper, "tmp.new"), "new\n", { mode: 0o644 });
    const expect: PauseExpect[] = [{ path: "README.md", kind: "moved", from: "tmp.new", fromLayer: true }];
    const asked = recordAsked(workdir, upper, expect);
    writeFileSync(path.join(upper, "other"), "evil\n", { mode: 0o644 });
    renameSync(path.join(upper, "other"), path.join(upper, "README.md"));
    assert.equal(new AtOnceApply({ upper, workdir }, expect, asked).tryApply(), false);
    assert.equal(readFileSync(path.join(workdir, "README.md"), "utf8"), "old\n");
    renameSync(path.join(upper, "tmp.new"), path.join(upper, "README.md"));
    assert.equal(new AtOnceApply({ upper, workdir }, expect, asked).tryApply(), true);
    assert.equal(readFileSync(path.join(workdir, "README.md"), "utf8"), "new\n");
  });

  it("an approved O_TRUNC: a symlink renamed over the file never lands (the race variant)", () => {
    const dir = mkdtempSync(path.join(base, "case-"));
    const upper = path.join(dir, "upper");
    const workdir = path.join(dir, "work");
    mkdirSync(path.join(upper, "pkg"), { recursive: true });
    mkdirSync(path.join(workdir, "pkg"), { recursive: true });
    writeFileSync(path.join(workdir, "pkg", "__init__.py"), "");
    const expect: PauseExpect[] = [{ path: "pkg/__init__.py", kind: "rewritten" }];
    const apply = new AtOnceApply({ upper, workdir }, expect, recordAsked(workdir, upper, expect));
    writeFileSync(path.join(upper, "pkg", "evil"), "");
    symlinkSync("/root/.ssh/authorized_keys", path.join(upper, "pkg", "tmp"));
    renameSync(path.join(upper, "pkg", "tmp"), path.join(upper, "pkg", "__init__.py"));
    assert.equal(apply.tryApply(), false);
    assert.ok(lstatSync(path.join(workdir, "pkg", "__init__.py")).isFile());
    // the file written anew (same mode) is what the approval covers
    rmSync(path.join(upper, "pkg", "__init__.py"));
    writeFileSync(path.join(upper, "pkg", "__init__.py"), "x = 1\n", { mode: 0o644 });
    chmodSync(path.join(workdir, "pkg", "__init__.py"), 0o644);
    const again = new AtOnceApply({ upper, workdir }, expect, recordAsked(workdir, upper, expect));
    assert.equal(again.tryApply(), true);
    assert.equal(readFileSync(path.join(workdir, "pkg", "__init__.py"), "utf8"), "x = 1\n");
  });
});
