/**
 * The live layer (live.ts) on real directories standing in for the overlay's upper layer and the
 * workdir: what flows while the box runs, what waits for the end review, and that the end review
 * then sees only what is still different. The clock is injected: no timing in these tests.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  rmSync,
  symlinkSync,
  unlinkSync,
  utimesSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { readChangeSet } from "../../../../src/walls/gate/changeset.js";
import { heldUntilEnd, LiveSync, SETTLE_MS } from "../../../../src/walls/gate/live.js";
import { DEFAULT_FS_RULES } from "../../../../src/walls/gate/schema.js";

const base = mkdtempSync(path.join(os.tmpdir(), "fourwall-live-"));
after(() => rmSync(base, { recursive: true, force: true }));
let n = 0;
const policy = { default: "ask" as const, rules: DEFAULT_FS_RULES };

/** An upper layer and a workdir; a clock far past every file's mtime unless `fresh` is set. */
function fixture(setup: (lower: string, upper: string) => void = () => {}) {
  const dir = path.join(base, String(n++));
  const lower = path.join(dir, "lower");
  const upper = path.join(dir, "upper");
  mkdirSync(lower, { recursive: true });
  mkdirSync(upper, { recursive: true });
  setup(lower, upper);
  const clock = { t: Date.now() + 60_000 };
  const live = new LiveSync({ upper, workdir: lower, now: () => clock.t });
  return { lower, upper, live, clock };
}

describe("live layer", () => {
  it("new files and directories flow; a later change of the same file flows too; nothing twice", () => {
    const { lower, upper, live } = fixture();
    mkdirSync(path.join(upper, "src", "deep"), { recursive: true });
    writeFileSync(path.join(upper, "src", "deep", "a.ts"), "one\n", { mode: 0o644 });
    writeFileSync(path.join(upper, "run.sh"), "#!/bin/sh\n", { mode: 0o4755 });
    const first = live.tick();
    assert.deepEqual(first.failures, []);
    assert.deepEqual(first.applied.sort(), ["run.sh", "src", "src/deep", "src/deep/a.ts"]);
    assert.equal(readFileSync(path.join(lower, "src", "deep", "a.ts"), "utf8"), "one\n");
    assert.equal(lstatSync(path.join(lower, "run.sh")).mode & 0o7777, 0o755, "setuid never lands");
    assert.deepEqual(live.tick().applied, [], "unchanged: not written again");
    writeFileSync(path.join(upper, "src", "deep", "a.ts"), "two, longer\n");
    assert.deepEqual(live.tick().applied, ["src/deep/a.ts"]);
    assert.equal(readFileSync(path.join(lower, "src", "deep", "a.ts"), "utf8"), "two, longer\n");
  });

  it("a file still being written waits until it holds still for a tick", () => {
    const { lower, upper, live, clock } = fixture();
    writeFileSync(path.join(upper, "log.txt"), "part");
    clock.t = Date.now(); // just written
    assert.deepEqual(live.tick().applied, [], "fresh: seen, not copied");
    assert.ok(!existsSync(path.join(lower, "log.txt")));
    writeFileSync(path.join(upper, "log.txt"), "part and more");
    const mtime = new Date(clock.t);
    utimesSync(path.join(upper, "log.txt"), mtime, mtime);
    assert.deepEqual(live.tick().applied, [], "changed since the last tick: wait again");
    assert.deepEqual(live.tick().applied, ["log.txt"], "unchanged across a tick: copied");
    assert.equal(readFileSync(path.join(lower, "log.txt"), "utf8"), "part and more");
    clock.t += SETTLE_MS; // (the final tick does not wait at all)
  });

  it("holds what the gate holds: old files, anything under .git, symlinks out, fourwall's placeholders", () => {
    const { lower, upper } = fixture((l, u) => {
      writeFileSync(path.join(l, "README.md"), "old\n");
      writeFileSync(path.join(u, "README.md"), "changed\n");
      mkdirSync(path.join(u, "sub", ".git", "hooks"), { recursive: true });
      writeFileSync(path.join(u, "sub", ".git", "hooks", "pre-commit"), "evil");
      writeFileSync(path.join(u, "sub", "ok.txt"), "ok");
      symlinkSync("/root/.ssh", path.join(u, "keys"));
      symlinkSync("sub/ok.txt", path.join(u, "inside"));
      writeFileSync(path.join(u, ".mcp.json"), "{}\n");
    });
    const live = new LiveSync({
      upper,
      workdir: lower,
      hidden: new Set([".mcp.json"]),
      now: () => Date.now() + 60_000,
    });
    const r = live.tick();
    assert.deepEqual(r.applied.sort(), ["inside", "sub", "sub/ok.txt"]);
    assert.equal(readFileSync(path.join(lower, "README.md"), "utf8"), "old\n");
    assert.ok(!existsSync(path.join(lower, "sub", ".git")));
    assert.ok(!existsSync(path.join(lower, "keys")));
    assert.ok(!existsSync(path.join(lower, ".mcp.json")));
    assert.equal(heldUntilEnd(".git/refs/heads/main", new Set()), true);
    assert.equal(heldUntilEnd("a/.gitignore", new Set()), false);
    // tool config that runs code on the host, and the names that make a directory a git dir
    for (const rel of [
      ".npmrc",
      "pkg/.cargo/config.toml",
      "a/lefthook-local.yml",
      "docs/HEAD",
      "wt/commondir",
    ])
      assert.equal(heldUntilEnd(rel, new Set()), true, rel);
    for (const rel of ["docs/objects/ab", "docs/refs/heads/main", "node_modules/x/.npmrc", "src/config.toml"])
      assert.equal(heldUntilEnd(rel, new Set()), false, rel);
  });

  it("holds a bare repository's shape and new tool config: the host's directory never becomes a git dir while the box runs", () => {
    const { lower, live } = fixture((l, u) => {
      mkdirSync(path.join(l, "docs"));
      writeFileSync(path.join(l, "docs", "HEAD"), "a file the project had\n");
      for (const d of ["docs/objects", "docs/refs/heads", "fresh/objects", "fresh/refs", "pkg/.cargo"])
        mkdirSync(path.join(u, d), { recursive: true });
      writeFileSync(path.join(u, "docs", "config"), "[core]\n\tpager = touch /tmp/x\n");
      writeFileSync(path.join(u, "fresh", "HEAD"), "ref: refs/heads/main\n");
      writeFileSync(path.join(u, "pkg", ".cargo", "config.toml"), "[build]\n");
      writeFileSync(path.join(u, "pkg", ".npmrc"), "script-shell=/tmp/x\n");
      symlinkSync("../elsewhere", path.join(u, "pkg", ".mvn"));
    });
    const r = live.tick();
    assert.deepEqual(r.failures, []);
    assert.deepEqual(r.applied.sort(), ["docs/config", "fresh", "pkg", "pkg/.cargo"]);
    for (const p of ["docs/objects", "docs/refs", "fresh/HEAD", "fresh/objects", "pkg/.npmrc", "pkg/.mvn"])
      assert.ok(!existsSync(path.join(lower, p)), p);
  });

  it("what the box removes again goes from the host, unless a host user changed it meanwhile", () => {
    const { lower, upper, live } = fixture();
    mkdirSync(path.join(upper, "build"));
    writeFileSync(path.join(upper, "build", "out.o"), "obj");
    writeFileSync(path.join(upper, "keep.txt"), "box");
    live.tick();
    writeFileSync(path.join(lower, "keep.txt"), "the user's edit"); // after fourwall wrote it
    rmSync(path.join(upper, "build"), { recursive: true });
    unlinkSync(path.join(upper, "keep.txt"));
    const r = live.tick();
    assert.deepEqual(r.removed.sort(), ["build", "build/out.o"]);
    assert.ok(!existsSync(path.join(lower, "build")));
    assert.equal(readFileSync(path.join(lower, "keep.txt"), "utf8"), "the user's edit");
  });

  it("never writes over a name a host process made meanwhile", () => {
    const { lower, upper, live } = fixture();
    writeFileSync(path.join(upper, "clash.txt"), "box");
    writeFileSync(path.join(lower, "clash.txt"), "host");
    assert.deepEqual(live.tick().applied, []);
    assert.equal(readFileSync(path.join(lower, "clash.txt"), "utf8"), "host");
  });

  it("the end review sees only what is still different", () => {
    const { lower, upper, live } = fixture((l) => writeFileSync(path.join(l, "old.txt"), "old"));
    mkdirSync(path.join(upper, "out"));
    writeFileSync(path.join(upper, "out", "a.txt"), "a", { mode: 0o4755 });
    writeFileSync(path.join(upper, "old.txt"), "changed");
    live.tick(true);
    writeFileSync(path.join(upper, "out", "a.txt"), "a, again"); // changed after the last tick
    const set = readChangeSet(upper, lower, new Set(), policy, live.made());
    assert.deepEqual(set.creates, ["out/a.txt"], "a change of a file this run made flows as new");
    assert.deepEqual(
      set.held.map((c) => `${c.op} ${c.path}`),
      ["overwrite old.txt"],
    );
    live.tick(true);
    const again = readChangeSet(upper, lower, new Set(), policy, live.made());
    assert.deepEqual(again.creates, [], "identical to the host (content, masked mode): no change");
  });

  it("a whiteout over a path this run made removes it; over a path the host no longer has, nothing", {
    skip: process.getuid?.() !== 0 && "whiteouts are character devices: root only",
  }, () => {
    const { lower, upper, live } = fixture();
    writeFileSync(path.join(upper, "tmp.txt"), "x");
    live.tick();
    unlinkSync(path.join(upper, "tmp.txt"));
    assert.equal(spawnSync("mknod", [path.join(upper, "tmp.txt"), "c", "0", "0"]).status, 0);
    assert.equal(spawnSync("mknod", [path.join(upper, "gone.txt"), "c", "0", "0"]).status, 0);
    assert.deepEqual(live.tick().removed, ["tmp.txt"]);
    assert.ok(!existsSync(path.join(lower, "tmp.txt")));
    const set = readChangeSet(upper, lower, new Set(), policy, live.made());
    assert.deepEqual([set.creates, set.held], [[], []]);
  });
});
