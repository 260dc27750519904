import assert from "node:assert/strict";
import { describe, it } from "node:test";
import {
  carries,
  planThrough,
  settingsMountPoints,
  throughArgs,
  throughCarrier,
  throughExclude,
  throughOwner,
} from "../../../src/box/through.js";
import { parseMountinfo } from "../../../src/core/mountinfo.js";
import { withThroughSources } from "../../../src/runtimes/docker.js";
import type { Placeholder } from "../../../src/walls/filesystem/index.js";
import type { Identity } from "../../../src/walls/isolation/index.js";

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

describe("throughCarrier: who mounts the write-through overlays, per runtime and launch mode", () => {
  it("fourwall-overlay as the user, fourwall-drop as root (namespaces, gvisor); docker on the host, root only; never the microVM", () => {
    assert.equal(throughCarrier("namespaces", "user"), "overlay");
    assert.equal(throughCarrier("gvisor", "user"), "overlay");
    assert.equal(throughCarrier("namespaces", "root"), "drop");
    assert.equal(throughCarrier("gvisor", "root"), "drop");
    assert.equal(throughCarrier("docker", "root"), "host");
    assert.equal(throughCarrier("docker", "user"), undefined);
    // the microVM's outer box is a namespaces box: it carries them, 9p shows the guest its view
    assert.equal(throughCarrier("vm", "root"), "drop");
    assert.equal(throughCarrier("vm", "user"), "overlay");
  });
});

const root: Identity = {
  mode: "root",
  uid: 70007,
  gid: 70007,
  idmaps: [
    { path: "/h", ownerUid: 0, ownerGid: 0 },
    { path: "/h/proj", ownerUid: 1000, ownerGid: 1000 },
    { path: "/x", ownerUid: 1000, ownerGid: 100 },
  ],
};

describe("throughOwner and throughArgs: as whom the box writes, and the helper's arguments", () => {
  it("the innermost idmapped path's owner (never the directory's own), else the box", () => {
    assert.deepEqual(throughOwner("/h/.codex", root), { uid: 0, gid: 0 });
    assert.deepEqual(throughOwner("/h/proj/sub", root), { uid: 1000, gid: 1000 });
    assert.deepEqual(throughOwner("/x", root), { uid: 1000, gid: 100 });
    assert.deepEqual(throughOwner("/elsewhere", root), { uid: 70007, gid: 70007 });
    assert.deepEqual(throughOwner("/x", { mode: "user", uid: 1000, gid: 1000 }), { uid: 1000, gid: 1000 });
  });
  it("fourwall-overlay: --through DIR SUB; fourwall-drop: --through OWNER:GROUP:SUB DIR; covers after; docker: none", () => {
    const mounts = [
      { dir: "/h/.codex", sub: "/L/0" },
      { dir: "/x", sub: "/L/1" },
    ];
    const covers = [{ src: "/L/0/lower/.git/info/exclude", dst: "/h/proj/.git/info/exclude" }];
    assert.deepEqual(throughArgs("overlay", mounts, covers, { mode: "user", uid: 1, gid: 1 }), [
      ...["--through", "/h/.codex", "/L/0", "--through", "/x", "/L/1"],
      ...["--cover", "/L/0/lower/.git/info/exclude", "/h/proj/.git/info/exclude"],
    ]);
    assert.deepEqual(throughArgs("drop", mounts, [], root), [
      ...["--through", "0:0:/L/0", "/h/.codex", "--through", "1000:100:/L/1", "/x"],
    ]);
    assert.deepEqual(throughArgs("host", mounts, covers, root), []);
  });
});

describe("carries: whether a directory's overlay can have its work dir in fourwall's layers dir", () => {
  // root's layers dir bound onto itself (nosuid,nodev); /srv a bind of /data/srv; /home another disk
  const entries = parseMountinfo(
    [
      "22 1 254:0 / / rw,relatime - ext4 /dev/vda rw",
      "45 22 254:0 /run/fourwall/layers /run/fourwall/layers rw,nosuid,nodev - ext4 /dev/vda rw",
      "46 22 254:0 /data/srv /srv rw - ext4 /dev/vda rw",
      "47 22 254:16 / /home rw - ext4 /dev/vdb rw",
      "48 22 0:30 / /tmp/t rw - tmpfs tmpfs rw",
    ].join("\n"),
  );
  const L = "/run/fourwall/layers";
  it("fourwall-drop (root, docker): on the mount at the common ancestor, which shows the layers dir as the host does", () => {
    assert.equal(carries(entries, "/root/.codex", L, "drop"), true);
    assert.equal(carries(entries, "/tmp/x/ext", L, "host"), true);
    // a bind of another directory: the clone of / shows /srv's mount point there, not it
    assert.equal(carries(entries, "/srv/x", L, "drop"), false);
    assert.equal(carries(entries, "/home/u/.codex", L, "drop"), false);
    assert.equal(carries(entries, "/tmp/t/a", L, "drop"), false);
    assert.equal(carries(entries, "/run/fourwall", L, "drop"), false);
    assert.equal(carries(entries, `${L}/x`, L, "drop"), false);
  });
  it("fourwall-overlay (user mode): only on the layers dir's own mount", () => {
    assert.equal(carries(entries, "/root/.codex", L, "overlay"), false);
    assert.equal(carries(entries, "/root/.codex", "/root/.local/state/fourwall/layers", "overlay"), true);
    assert.equal(carries(entries, "/home/u/x", "/home/u/.local/state/fourwall/layers", "overlay"), true);
  });
});

describe("withThroughSources: docker binds a write-through overlay's directory from its mount", () => {
  it("the directory and what lies in it, from the mount under the run dir; the rest as it was", () => {
    const fs = {
      mounts: [
        { type: "bind", source: "/h", target: "/h", writable: false },
        { type: "bind", source: "/h/.codex", target: "/h/.codex", writable: true },
        { type: "bind", source: "/h/.codex/config.toml", target: "/h/.codex/config.toml", writable: false },
        { type: "bind", source: "/h/.codexx", target: "/h/.codexx", writable: true },
      ],
    } as unknown as Parameters<typeof withThroughSources>[0];
    const out = withThroughSources(fs, [{ dir: "/h/.codex", merged: "/run/R/through/0" }]);
    assert.deepEqual(
      out.mounts.map((m) => (m.type === "bind" ? [m.source, m.target] : [])),
      [
        ["/h", "/h"],
        ["/run/R/through/0", "/h/.codex"],
        ["/run/R/through/0/config.toml", "/h/.codex/config.toml"],
        ["/h/.codexx", "/h/.codexx"],
      ],
    );
  });
});

describe("settingsMountPoints: the gate's agent settings the agent does not have yet, carried like placeholders", () => {
  it("missing targets outside the workdir, once each, unless the policy names them already", () => {
    const plan = {
      gate: {
        settings: [
          { target: "/h/.codex/hooks.json" },
          { target: "/h/.codex/config.toml" },
          { target: "/h/.claude/settings.json" },
          { target: "/h/proj/.claude/settings.json" },
          { target: "/h/.codex/hooks.json" },
        ],
      },
      filesystem: { cwd: "/h/proj", placeholders: [file("/h/.codex/config.toml")] },
    };
    assert.deepEqual(
      settingsMountPoints(plan, (p) => p === "/h/.claude/settings.json"),
      [file("/h/.codex/hooks.json")],
    );
  });
});
