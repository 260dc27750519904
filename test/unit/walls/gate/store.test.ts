/**
 * The kept change-sets (issue 12, "nothing lost"), on real directories standing in for a frozen
 * layer (no overlay needed: the store keeps and the Applier reads the same entries): kept private
 * (0700, fourwall's), applied exactly as an approved change (modes masked), never over a host file
 * that changed since the review unless forced, partly applied by path, dropped.
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
  statSync,
  writeFileSync,
} from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { commandAnswer } from "../../../../src/walls/gate/approvers/command.js";
import { partialAnswer } from "../../../../src/walls/gate/broker.js";
import { factsOf } from "../../../../src/walls/gate/facts.js";
import { layersDir } from "../../../../src/walls/gate/layer.js";
import { overlayHelperPath } from "../../../../src/walls/gate/paths.js";
import {
  applyKept,
  changesDir,
  dropKept,
  isKeptId,
  type KeptChange,
  keepLayer,
  listKept,
  loadKept,
} from "../../../../src/walls/gate/store.js";
import type { GateRequest } from "../../../../src/walls/gate/types.js";

const base = mkdtempSync(path.join(os.tmpdir(), "fourwall-store-"));
const ids: string[] = [];
after(() => {
  spawnSync("rm", ["-rf", "--", base]);
  for (const id of ids) dropKept(id);
});
const helper = overlayHelperPath();

/** A workdir and a frozen layer (in the layers directory, as a real one) where the box changed files. */
function scene(files: Record<string, { host?: string; box?: string; mode?: number }>) {
  const workdir = mkdtempSync(path.join(base, "w-"));
  const layer = mkdtempSync(path.join(layersDir(), "unit-"));
  const upper = path.join(layer, "upper");
  mkdirSync(upper);
  mkdirSync(path.join(layer, "work"));
  for (const [rel, f] of Object.entries(files)) {
    if (f.host !== undefined) writeFileSync(path.join(workdir, rel), f.host);
    if (f.box !== undefined) {
      writeFileSync(path.join(upper, rel), f.box);
      chmodSync(path.join(upper, rel), f.mode ?? 0o644);
    }
  }
  const change = (rel: string, op: KeptChange["op"] = "overwrite"): KeptChange => ({
    op,
    path: rel,
    how: "copy",
    refusedBy: "terminal",
    before: factsOf(workdir, rel),
    after: factsOf(upper, rel),
  });
  return { workdir, layer, upper, change };
}

function keep(s: ReturnType<typeof scene>, changes: KeptChange[]) {
  const kept = keepLayer(s.layer, {
    box: "unit",
    workdir: s.workdir,
    reason: "denied at the terminal",
    changes,
    creates: [],
  });
  ids.push(kept.id);
  return kept;
}

describe("the change-set store", () => {
  it("keeps a layer: moved into the store, 0700 and fourwall's, with its record; listed", () => {
    const s = scene({ "a.txt": { host: "old\n", box: "new\n" } });
    const kept = keep(s, [s.change("a.txt")]);
    assert.equal(existsSync(s.layer), false);
    const dir = path.join(changesDir(), kept.id);
    for (const d of [changesDir(), dir]) {
      const st = lstatSync(d);
      assert.equal(st.mode & 0o777, 0o700, d);
      assert.equal(st.uid, process.getuid!());
    }
    assert.equal(statSync(path.join(dir, "meta.json")).mode & 0o777, 0o600);
    const listed = listKept(helper).find((k) => k.id === kept.id);
    assert.equal(listed?.changes[0]?.path, "a.txt");
    assert.equal(listed?.changes[0]?.before?.sha256?.length, 64);
  });

  it("apply lands a refused overwrite and removes the emptied change-set", () => {
    const s = scene({ "a.txt": { host: "old\n", box: "new\n" } });
    const kept = keep(s, [s.change("a.txt")]);
    const r = applyKept(kept.id, { helper });
    assert.deepEqual(r.refused, []);
    assert.equal(readFileSync(path.join(s.workdir, "a.txt"), "utf8"), "new\n");
    assert.equal(r.dropped, true);
    assert.equal(existsSync(path.join(changesDir(), kept.id)), false);
  });

  it("refuses to clobber a host file that changed since the review, unless forced", () => {
    const s = scene({ "a.txt": { host: "old\n", box: "new\n" } });
    const kept = keep(s, [s.change("a.txt")]);
    writeFileSync(path.join(s.workdir, "a.txt"), "edited by the user\n");
    const r = applyKept(kept.id, { helper });
    assert.match(r.refused[0]?.why ?? "", /changed since the review/);
    assert.equal(readFileSync(path.join(s.workdir, "a.txt"), "utf8"), "edited by the user\n");
    assert.equal(loadKept(kept.id, helper).changes.length, 1, "still kept");
    const forced = applyKept(kept.id, { helper, force: true });
    assert.equal(forced.dropped, true);
    assert.equal(readFileSync(path.join(s.workdir, "a.txt"), "utf8"), "new\n");
  });

  it("applies only the paths asked for; the rest stay kept", () => {
    const s = scene({ "a.txt": { host: "a\n", box: "A\n" }, "b.txt": { host: "b\n", box: "B\n" } });
    const kept = keep(s, [s.change("a.txt"), s.change("b.txt")]);
    const r = applyKept(kept.id, { helper, paths: ["b.txt", "nope"] });
    assert.deepEqual(r.unknown, ["nope"]);
    assert.equal(readFileSync(path.join(s.workdir, "a.txt"), "utf8"), "a\n");
    assert.equal(readFileSync(path.join(s.workdir, "b.txt"), "utf8"), "B\n");
    assert.deepEqual(
      loadKept(kept.id, helper).changes.map((c) => c.path),
      ["a.txt"],
    );
  });

  it("modes are masked as at the end of a run: no setuid, setgid or sticky lands", () => {
    const s = scene({ tool: { host: "#!/bin/sh\n", box: "#!/bin/sh\nid\n", mode: 0o6755 } });
    chmodSync(path.join(s.workdir, "tool"), 0o755);
    const kept = keep(s, [s.change("tool")]);
    applyKept(kept.id, { helper });
    assert.equal(statSync(path.join(s.workdir, "tool")).mode & 0o7777, 0o755);
  });

  it("an id is a name, never a path", () => {
    assert.equal(isKeptId("box-abc123"), true);
    for (const bad of ["../x", "a/b", ".hidden", ""]) assert.equal(isKeptId(bad), false, bad);
    assert.throws(() => loadKept("../../etc", helper), /not a change-set id/);
  });
});

describe("per-path answers", () => {
  const fs: GateRequest = {
    id: "1",
    box: "b",
    kind: "fs",
    summary: "",
    cwd: "/",
    why: [],
    via: "change-set",
    alwaysAllowed: false,
    time: "",
    changes: [
      { op: "overwrite", path: "a" },
      { op: "delete", path: "b" },
    ],
  };
  it("the approver command: exit status, or {approve: [paths]} on stdout", () => {
    assert.equal(commandAnswer(0, ""), "yes");
    assert.equal(commandAnswer(0, "looks fine\n"), "yes");
    assert.equal(commandAnswer(1, '{"approve":["a"]}'), "no");
    assert.deepEqual(commandAnswer(0, '{"approve":["a"]}\n'), { approve: ["a"] });
    assert.equal(commandAnswer(0, '{"approve": "a"}'), "no", "meant to choose, but not a list: no");
    assert.equal(commandAnswer(0, "{not json"), "no");
  });
  it("the broker: only paths the request holds; none is no, all is yes", () => {
    assert.deepEqual(partialAnswer(fs, ["a", "zzz"], "x").paths, ["a"]);
    assert.equal(partialAnswer(fs, ["zzz"], "x").decision, "deny");
    const all = partialAnswer(fs, ["a", "b"], "x");
    assert.equal(all.decision, "allow");
    assert.equal(all.paths, undefined);
    assert.equal(partialAnswer({ ...fs, kind: "exec" }, ["a"], "x").decision, "deny");
  });
});
