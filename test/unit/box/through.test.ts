import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { planThrough, throughExclude } from "../../../src/box/through.js";
import type { Placeholder } from "../../../src/walls/filesystem/index.js";

const file = (p: string): Placeholder => ({ path: p, kind: "file", content: "" });
const dir = (p: string): Placeholder => ({ path: p, kind: "dir", content: "" });
const existing = new Set(["/h", "/h/proj", "/h/.codex", "/h/.config", "/x", "/x/a"]);
const exists = (p: string) => existing.has(p);
const all = () => true;

describe("planThrough: which placeholders a write-through overlay carries, over which directory", () => {
  it("over the nearest existing directory above each, merged into the highest", () => {
    const r = planThrough(
      [file("/x/a/config.toml"), file("/x/new/y"), dir("/h/.codex/hooks")],
      "/h/proj",
      exists,
      all,
    );
    assert.deepEqual(
      r.groups.map((g) => [g.dir, g.placeholders.map((p) => p.path)]),
      [
        ["/x", ["/x/new/y", "/x/a/config.toml"]],
        ["/h/.codex", ["/h/.codex/hooks"]],
      ],
    );
    assert.deepEqual(r.host, []);
  });
  it("never over a directory holding the workdir, nor one canCarry refuses (off the layers' mount): those stay on the host", () => {
    const r = planThrough([file("/h/.bashrc"), file("/x/a/b")], "/h/proj", exists, (d) => d !== "/x/a");
    assert.deepEqual(r.groups, []);
    assert.deepEqual(
      r.host.map((p) => p.path),
      ["/h/.bashrc", "/x/a/b"],
    );
  });
  it("the workdir's own only when asked to carry them (a gate that holds nothing, or no layer)", () => {
    const inside = [file("/h/proj/.envrc"), dir("/h/proj/.git/hooks")];
    assert.deepEqual(planThrough(inside, "/h/proj", exists, all).host, inside);
    const r = planThrough(inside, "/h/proj", exists, all, true);
    assert.deepEqual(r.host, []);
    assert.deepEqual(
      r.groups.map((g) => g.dir),
      ["/h/proj"],
    );
  });
});

describe("throughExclude: the box's git does not see the workdir's placeholders", () => {
  it("the host's lines, then one literal anchored line per worktree placeholder (none for .git's)", () => {
    const g = { dir: "/w", placeholders: [file("/w/.envrc"), dir("/w/.git/hooks"), file("/w/a*b")] };
    assert.equal(
      throughExclude(g, "*.log"),
      "*.log\n# fourwall: the box's read-only placeholders (not on the host)\n/.envrc\n/a\\*b\n",
    );
    assert.equal(throughExclude({ dir: "/w", placeholders: [dir("/w/.git/hooks")] }, ""), undefined);
  });
});
