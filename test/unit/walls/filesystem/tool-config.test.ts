import assert from "node:assert/strict";
import { describe, it } from "node:test";
import { looksLikeGitDir } from "../../../../src/walls/filesystem/git.js";
import { PERSISTENCE_PATHS } from "../../../../src/walls/filesystem/lists.js";
import {
  isToolConfigName,
  toolConfigDirWhy,
  toolConfigWhy,
} from "../../../../src/walls/filesystem/tool-config.js";

describe("tool config that runs code on the host", () => {
  it("matches the class by its last components, at any depth, not inside dependencies", () => {
    for (const p of [
      ".npmrc",
      "/w/pkgs/web/.npmrc",
      ".yarnrc.yml",
      "a/.pnpmfile.cjs",
      "bunfig.toml",
      "crates/x/.cargo/config.toml",
      ".cargo/config",
      "rust-toolchain.toml",
      "mise.toml",
      "mise.local.toml",
      ".mise.production.toml",
      ".config/mise/config.toml",
      ".mise/config.local.toml",
      ".tool-versions",
      ".devcontainer.json",
      "lefthook.yml",
      ".lefthook-local.yaml",
      ".mvn/extensions.xml",
      ".bazelrc",
    ])
      assert.ok(toolConfigWhy(p), p);
    for (const p of [
      "config.toml",
      "cargo/config.toml",
      "src/mise.rs",
      "node_modules/x/.npmrc",
      "package.json",
      ".envrc",
      ".nvmrc",
      "x/.mise.toml/y",
    ])
      assert.equal(toolConfigWhy(p), undefined, p);
  });

  it("a symlink named like a config's directory leads a tool to config wherever it points", () => {
    for (const p of ["pkg/.cargo", ".mvn", "a/.config", ".config/mise", "x/.devcontainer"])
      assert.ok(toolConfigDirWhy(p), p);
    for (const p of ["pkg/cargo", "src", "node_modules/.cargo", ".npmrc"])
      assert.equal(toolConfigDirWhy(p), undefined, p);
  });

  it("names every path a root placeholder guards in the class too (nested copies are asked)", () => {
    const root = [
      ".npmrc",
      ".yarnrc",
      ".yarnrc.yml",
      ".tool-versions",
      "bunfig.toml",
      "mise.toml",
      ".mise.toml",
    ];
    for (const name of root) {
      assert.ok(
        PERSISTENCE_PATHS.some((p) => p.path === name),
        name,
      );
      assert.ok(isToolConfigName(name) && toolConfigWhy(name), name);
    }
  });
});

describe("a git dir by its shape (git's discovery, setup.c is_git_directory)", () => {
  it("needs HEAD and objects/ and refs/, or HEAD and commondir", () => {
    assert.equal(looksLikeGitDir(["HEAD", "objects", "refs", "config"]), true);
    assert.equal(looksLikeGitDir(["HEAD", "commondir"]), true);
    assert.equal(looksLikeGitDir(["HEAD", "refs"]), false);
    assert.equal(looksLikeGitDir(["objects", "refs", "config"]), false);
    assert.equal(looksLikeGitDir(["README.md"]), false);
  });
});
