/**
 * The change-set and its apply, on real directories standing in for the overlay's upper layer and
 * the workdir (no overlay needed: the reader sees the same entries). Each hole of issue 12 the
 * apply could reopen has a case: setuid landing, a file made executable or a symlink out slipping
 * through as an ordinary change, a 255-byte name, a path past PATH_MAX, a symlink in the workdir
 * written through.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import {
  chmodSync,
  existsSync,
  lstatSync,
  mkdirSync,
  mkdtempSync,
  readFileSync,
  readlinkSync,
  symlinkSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { describeRequest } from "../../../../src/walls/gate/approvers/render.js";
import {
  Applier,
  addsExec,
  appliedMode,
  type EntryKind,
  readChangeSet,
  symlinkEscapes,
} from "../../../../src/walls/gate/changeset.js";
import { LAYER_FD, layerLaunchArgs } from "../../../../src/walls/gate/layer.js";
import { listSome } from "../../../../src/walls/gate/review.js";
import { DEFAULT_FS_RULES } from "../../../../src/walls/gate/schema.js";

const base = mkdtempSync(path.join(os.tmpdir(), "fourwall-changeset-"));
// rm walks by fd: the trees here go past PATH_MAX, which rmSync cannot remove
after(() => spawnSync("rm", ["-rf", "--", base]));
let n = 0;
const policy = { default: "ask" as const, rules: DEFAULT_FS_RULES };

/** A workdir (lower) and an upper layer with `setup` applied to both. */
function pair(setup: (lower: string, upper: string) => void) {
  const dir = path.join(base, String(n++));
  const lower = path.join(dir, "lower");
  const upper = path.join(dir, "upper");
  mkdirSync(lower, { recursive: true });
  mkdirSync(upper, { recursive: true });
  setup(lower, upper);
  return { lower, upper };
}

/** Reads the change-set and applies it: creates always, held changes when `approve`. */
function review(lower: string, upper: string, approve: boolean) {
  const set = readChangeSet(upper, lower, new Set(), policy);
  const applier = new Applier({ upper, workdir: lower, skip: set.heldNew });
  for (const c of set.creates) applier.create(c);
  for (const c of set.held) if (c.decision === "allow" || (approve && c.decision === "ask")) applier.apply(c);
  applier.close();
  return { set, failures: applier.failures };
}

describe("change-set kinds (pure)", () => {
  const none = (): EntryKind => "missing";
  it("a symlink leads out when absolute, when .. climbs above the workdir, or through another symlink", () => {
    assert.equal(symlinkEscapes("keys", "/root/.ssh", none), true);
    assert.equal(symlinkEscapes("a/up", "../..", none), true);
    assert.equal(symlinkEscapes("a/b/up", "../../x/../../etc", none), true);
    assert.equal(symlinkEscapes("a/ok", "../README.md", none), false);
    assert.equal(symlinkEscapes("ok", "src/app.ts", none), false);
    assert.equal(
      symlinkEscapes("x", "hop/etc", (r) => (r === "hop" ? "symlink" : "missing")),
      true,
    );
  });
  it("exec bits added, modes masked: never setuid/setgid/sticky on files, dirs keep only their own", () => {
    assert.equal(addsExec(0o644, 0o755), true);
    assert.equal(addsExec(0o755, 0o700), false);
    assert.equal(addsExec(undefined, 0o600), false);
    assert.equal(appliedMode(0o4755, false), 0o755);
    assert.equal(appliedMode(0o6755, false), 0o755);
    assert.equal(appliedMode(0o1777, true), 0o777);
    assert.equal(appliedMode(0o2775, true, 0o2755), 0o2775);
    assert.equal(appliedMode(0o6775, true, 0o755), 0o775);
  });
  it("root mode: the layer is opened as root on a fd; user mode: a path, and the layers are hidden", () => {
    const l = { lower: "/w", dir: "/run/fourwall/layers/b-1", parent: "/run/fourwall/layers" };
    assert.deepEqual(layerLaunchArgs(l, "root"), {
      helperArgs: ["/w", `fd:${LAYER_FD}`],
      dropArgs: ["--fd", `${LAYER_FD}:/run/fourwall/layers/b-1`],
    });
    assert.deepEqual(layerLaunchArgs(l, "user").helperArgs, ["--hide", l.parent, "/w", l.dir]);
  });
  it("the approvers' list: what fits in 20 lines, then how many more and where every one of them is", () => {
    const changes = Array.from({ length: 60 }, (_, i) => ({ op: "delete" as const, path: `f${i}` }));
    const request = {
      id: "x",
      box: "b",
      kind: "fs" as const,
      summary: "delete 60 files",
      cwd: "/w",
      why: ["held"],
      via: "change-set",
      changes,
      listFile: "/run/fourwall/layers/b-1/changes-asked.txt",
      alwaysAllowed: false,
      time: "",
    };
    const shown = describeRequest(request).lines.map(([, v]) => v);
    assert.equal(shown.filter((l) => /^delete\s+f\d+$/.test(l)).length, 19);
    assert.ok(
      shown.includes("… and 41 more — see /run/fourwall/layers/b-1/changes-asked.txt"),
      shown.join("\n"),
    );
  });

  it("never cuts a list silently", () => {
    const many = Array.from({ length: 8 }, (_, i) => ({ op: "delete" as const, path: `f${i}` }));
    assert.equal(listSome(many.slice(0, 2), "x"), "delete f0, delete f1");
    assert.match(listSome(many, "see the log"), /, and 3 more \(see the log\)$/);
  });
});

describe("apply (real directories)", () => {
  it("setuid and setgid never land: a chmod 4755 under .git/objects (allowed by the default rules) is an exec change, asked, and masked", () => {
    const { lower, upper } = pair((l, u) => {
      for (const d of [l, u]) {
        mkdirSync(path.join(d, ".git/objects/ab"), { recursive: true });
        writeFileSync(path.join(d, ".git/objects/ab/cd"), "obj");
      }
      chmodSync(path.join(l, ".git/objects/ab/cd"), 0o444);
      chmodSync(path.join(u, ".git/objects/ab/cd"), 0o4755);
      writeFileSync(path.join(u, "new"), "x");
      chmodSync(path.join(u, "new"), 0o6755);
    });
    const { set } = review(lower, upper, false);
    const held = set.held.find((c) => c.path === ".git/objects/ab/cd");
    assert.equal(held?.op, "exec");
    assert.equal(
      held?.decision,
      "ask",
      "the default rules' allow for .git/objects chmod does not cover exec",
    );
    assert.equal(
      lstatSync(path.join(lower, ".git/objects/ab/cd")).mode & 0o7777,
      0o444,
      "refused: unchanged",
    );
    assert.equal(lstatSync(path.join(lower, "new")).mode & 0o7777, 0o755, "a new 6755 file lands 0755");
    review(lower, upper, true);
    assert.equal(lstatSync(path.join(lower, ".git/objects/ab/cd")).mode & 0o7777, 0o755, "approved: masked");
  });

  it("a new symlink out is asked about and left out unless approved; one inside flows", () => {
    const { lower, upper } = pair((_l, u) => {
      symlinkSync("/root/.ssh", path.join(u, "keys"));
      mkdirSync(path.join(u, "sub"));
      symlinkSync("../..", path.join(u, "sub", "up"));
      symlinkSync("../README.md", path.join(u, "sub", "readme"));
    });
    const { set } = review(lower, upper, false);
    assert.deepEqual(set.held.map((c) => [c.op, c.path, c.decision]).sort(), [
      ["symlink-out", "keys", "ask"],
      ["symlink-out", "sub/up", "ask"],
    ]);
    assert.equal(
      existsSync(path.join(lower, "keys")) || lstatOrNull(path.join(lower, "keys")) !== null,
      false,
    );
    assert.equal(lstatOrNull(path.join(lower, "sub/up")), null, "left out of the new directory");
    assert.equal(readlinkSync(path.join(lower, "sub/readme")), "../README.md");
    review(lower, upper, true);
    assert.equal(readlinkSync(path.join(lower, "keys")), "/root/.ssh", "approved: lands");
  });

  it("a new git repository (a .git dir or pointer file, at any depth) is asked about and left out unless approved", () => {
    const { lower, upper } = pair((l, u) => {
      mkdirSync(path.join(l, "lib"));
      mkdirSync(path.join(u, "lib"));
      for (const dir of ["lib/sub/.git/hooks", "new/.git/hooks"])
        mkdirSync(path.join(u, dir), { recursive: true });
      writeFileSync(path.join(u, "lib/sub/.git/hooks/post-checkout"), "touch /tmp/pwned\n", { mode: 0o755 });
      writeFileSync(path.join(u, "lib/sub/.git/config"), "[core]\n\tfsmonitor = touch /tmp/pwned\n");
      writeFileSync(path.join(u, "lib/sub/main.c"), "int main;\n");
      writeFileSync(path.join(u, "new/.git/HEAD"), "ref: refs/heads/main\n");
      mkdirSync(path.join(u, "wt"));
      writeFileSync(path.join(u, "wt/.git"), "gitdir: /tmp/elsewhere\n");
    });
    const { set } = review(lower, upper, false);
    assert.deepEqual(set.held.map((c) => [c.op, c.path, c.decision]).sort(), [
      ["new-repo", "lib/sub/.git", "ask"],
      ["new-repo", "new/.git", "ask"],
      ["new-repo", "wt/.git", "ask"],
    ]);
    for (const repo of ["lib/sub/.git", "new/.git", "wt/.git"])
      assert.equal(lstatOrNull(path.join(lower, repo)), null, `${repo} left out`);
    assert.equal(
      readFileSync(path.join(lower, "lib/sub/main.c"), "utf8"),
      "int main;\n",
      "the rest of the new tree lands",
    );
    review(lower, upper, true);
    assert.equal(
      readFileSync(path.join(lower, "new/.git/HEAD"), "utf8"),
      "ref: refs/heads/main\n",
      "approved: lands",
    );
  });

  it("a directory shaped like a git dir (bare: HEAD, objects/, refs/ or commondir) is a new repository too, new or made in an old directory", () => {
    const { lower, upper } = pair((l, u) => {
      mkdirSync(path.join(l, "docs"));
      writeFileSync(path.join(l, "docs/index.md"), "# docs\n");
      mkdirSync(path.join(u, "docs/objects"), { recursive: true });
      mkdirSync(path.join(u, "docs/refs/heads"), { recursive: true });
      writeFileSync(path.join(u, "docs/HEAD"), "ref: refs/heads/main\n");
      writeFileSync(path.join(u, "docs/config"), "[core]\n\tpager = touch /tmp/pwned; cat\n");
      writeFileSync(path.join(u, "docs/guide.md"), "new page\n");
      for (const dir of ["fresh/objects", "fresh/refs"]) mkdirSync(path.join(u, dir), { recursive: true });
      writeFileSync(path.join(u, "fresh/HEAD"), "ref: refs/heads/main\n");
      mkdirSync(path.join(l, "wt"));
      mkdirSync(path.join(u, "wt"));
      writeFileSync(path.join(u, "wt/HEAD"), "0000000000000000000000000000000000000000\n");
      writeFileSync(path.join(u, "wt/commondir"), "../.git\n");
      // HEAD alone, or objects/ and refs/ alone, make no repository
      mkdirSync(path.join(u, "notes/refs"), { recursive: true });
      writeFileSync(path.join(u, "notes/HEAD"), "x\n");
    });
    const { set } = review(lower, upper, false);
    assert.deepEqual(set.held.map((c) => [c.op, c.path, c.decision]).sort(), [
      ["new-repo", "docs/HEAD", "ask"],
      ["new-repo", "docs/objects", "ask"],
      ["new-repo", "docs/refs", "ask"],
      ["new-repo", "fresh", "ask"],
      ["new-repo", "wt/HEAD", "ask"],
      ["new-repo", "wt/commondir", "ask"],
    ]);
    for (const p of ["docs/HEAD", "docs/objects", "fresh", "wt/HEAD", "wt/commondir"])
      assert.equal(lstatOrNull(path.join(lower, p)), null, `${p} left out`);
    assert.equal(readFileSync(path.join(lower, "docs/guide.md"), "utf8"), "new page\n", "the rest lands");
    assert.equal(readFileSync(path.join(lower, "notes/HEAD"), "utf8"), "x\n", "no repository: lands");
    // git itself agrees: on the host, docs/ is no repository while the shape is held
    const git = spawnSync("git", ["-C", path.join(lower, "docs"), "rev-parse", "--git-dir"], {
      encoding: "utf8",
      env: { ...process.env, GIT_CEILING_DIRECTORIES: lower },
    });
    assert.notEqual(git.status, 0, git.stdout);
    review(lower, upper, true);
    assert.equal(readFileSync(path.join(lower, "fresh/HEAD"), "utf8"), "ref: refs/heads/main\n", "approved");
    assert.equal(readFileSync(path.join(lower, "docs/HEAD"), "utf8"), "ref: refs/heads/main\n", "approved");
  });

  it("new tool config that runs code on the host (.npmrc, .cargo/config.toml, ...) is asked about at any depth and left out unless approved", () => {
    const { lower, upper } = pair((l, u) => {
      mkdirSync(path.join(l, "pkg"));
      mkdirSync(path.join(u, "pkg/.cargo"), { recursive: true });
      writeFileSync(path.join(u, "pkg/.cargo/config.toml"), '[build]\nrustc-wrapper = "/tmp/x"\n');
      writeFileSync(path.join(u, ".npmrc"), "script-shell=/tmp/x\n");
      mkdirSync(path.join(u, "web"));
      symlinkSync("../.npmrc", path.join(u, "web/.yarnrc.yml"));
      writeFileSync(path.join(u, "web/index.js"), "1\n");
      symlinkSync("../shared", path.join(u, "web/.cargo")); // cargo in web/ reads shared/config.toml
      mkdirSync(path.join(u, "node_modules/dep"), { recursive: true });
      writeFileSync(path.join(u, "node_modules/dep/.npmrc"), "x\n");
    });
    const { set } = review(lower, upper, false);
    assert.deepEqual(set.held.map((c) => [c.op, c.path, c.decision]).sort(), [
      ["tool-config", ".npmrc", "ask"],
      ["tool-config", "pkg/.cargo/config.toml", "ask"],
      ["tool-config", "web/.cargo", "ask"],
      ["tool-config", "web/.yarnrc.yml", "ask"],
    ]);
    for (const p of [".npmrc", "pkg/.cargo/config.toml", "web/.yarnrc.yml"])
      assert.equal(lstatOrNull(path.join(lower, p)), null, `${p} left out`);
    assert.ok(lstatOrNull(path.join(lower, "pkg/.cargo"))?.isDirectory(), "its directory lands");
    assert.equal(readFileSync(path.join(lower, "web/index.js"), "utf8"), "1\n");
    assert.equal(
      readFileSync(path.join(lower, "node_modules/dep/.npmrc"), "utf8"),
      "x\n",
      "dependencies' own",
    );
    review(lower, upper, true);
    assert.equal(
      readFileSync(path.join(lower, ".npmrc"), "utf8"),
      "script-shell=/tmp/x\n",
      "approved: lands",
    );
  });

  it("255-byte names and paths past PATH_MAX are applied, new and changed", () => {
    const long = "n".repeat(255);
    const deep = Array.from({ length: 250 }, () => "d".repeat(20)).join("/");
    const { lower, upper } = pair((l, u) => {
      writeFileSync(path.join(l, long), "old");
      writeFileSync(path.join(u, long), "new");
      mkdirDeep(u, deep);
      writeAt(u, `${deep}/f`, "bottom");
    });
    const { failures } = review(lower, upper, true);
    assert.deepEqual(failures, []);
    assert.equal(readFileSync(path.join(lower, long), "utf8"), "new");
    assert.equal(readAt(lower, `${deep}/f`), "bottom");
    assert.ok(deep.length > 4096);
  });

  it("never writes through a symlink in the workdir: a parent that became a symlink fails that change only", () => {
    const outside = path.join(base, `outside-${n}`);
    mkdirSync(outside);
    const { lower, upper } = pair((l, u) => {
      symlinkSync(outside, path.join(l, "dir"));
      mkdirSync(path.join(u, "dir"));
      writeFileSync(path.join(u, "dir", "planted"), "x");
      writeFileSync(path.join(u, "ok"), "fine");
    });
    const set = readChangeSet(upper, lower, new Set(), policy);
    const applier = new Applier({ upper, workdir: lower });
    // the box's "dir" replaces a symlink: force the apply through the parent to show it is refused
    applier.create("dir/planted");
    applier.create("ok");
    applier.close();
    assert.equal(existsSync(path.join(outside, "planted")), false, "nothing landed outside");
    assert.equal(applier.failures.length, 1);
    assert.equal(readFileSync(path.join(lower, "ok"), "utf8"), "fine");
    assert.ok(set.held.some((c) => c.path === "dir" && c.op === "replace"));
  });
});

function lstatOrNull(p: string) {
  try {
    return lstatSync(p);
  } catch {
    return null;
  }
}

/** mkdir -p below `root` one name at a time (paths past PATH_MAX). */
function mkdirDeep(root: string, rel: string): void {
  const here = process.cwd();
  try {
    process.chdir(root);
    for (const part of rel.split("/")) {
      mkdirSync(part);
      process.chdir(part);
    }
  } finally {
    process.chdir(here);
  }
}

function inDeep<T>(root: string, rel: string, fn: (name: string) => T): T {
  const here = process.cwd();
  const parts = rel.split("/");
  try {
    process.chdir(root);
    for (const part of parts.slice(0, -1)) process.chdir(part);
    return fn(parts.at(-1)!);
  } finally {
    process.chdir(here);
  }
}
const writeAt = (root: string, rel: string, text: string) => inDeep(root, rel, (f) => writeFileSync(f, text));
const readAt = (root: string, rel: string) => inDeep(root, rel, (f) => readFileSync(f, "utf8"));
