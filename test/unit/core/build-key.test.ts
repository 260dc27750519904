import assert from "node:assert/strict";
import { mkdirSync, mkdtempSync, readFileSync, rmSync, utimesSync, writeFileSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { BUILD_FILES, buildKey, fnv1a64 } from "../../../src/core/build-key.js";
import { packageRoot } from "../../../src/core/paths.js";

const base = mkdtempSync(path.join(os.tmpdir(), "fwtest-buildkey-"));
after(() => rmSync(base, { recursive: true, force: true }));

/** A fake package with every build file. */
function build(name: string): string {
  const root = path.join(base, name);
  for (const file of BUILD_FILES) {
    mkdirSync(path.dirname(path.join(root, file)), { recursive: true });
    writeFileSync(path.join(root, file), "same bytes\n");
  }
  return root;
}

describe("the build key", () => {
  it("is FNV-1a 64 (the native client hashes the same way)", () => {
    assert.equal(fnv1a64(""), "cbf29ce484222325");
    assert.equal(fnv1a64("a"), "af63dc4c8601ec8c");
  });

  it("differs between two copies of the same bytes, and when a build file is rewritten", () => {
    const a = build("a");
    const b = build("b");
    assert.equal(buildKey(a), buildKey(a));
    assert.notEqual(buildKey(a), buildKey(b), "two copies: two daemons");
    const before = buildKey(a);
    utimesSync(path.join(a, "native/build/fourwall-pty"), new Date(), new Date(Date.now() + 5000));
    assert.notEqual(buildKey(a), before, "a rebuilt helper: a new key");
    rmSync(path.join(a, "dist/fourwall.js"));
    assert.match(buildKey(a), /^[0-9a-f]{16}$/, "a missing file still gives a key");
  });

  it("lists the same files, in the same order, as the native client (native/fourwall-run.c)", () => {
    const c = readFileSync(path.join(packageRoot(), "native/fourwall-run.c"), "utf8");
    const table = /build_files\[\] = \{([^}]*)\}/.exec(c)?.[1] ?? "";
    const files = [...table.matchAll(/"([^"]+)"/g)].map((m) => m[1]);
    assert.deepEqual(files, [...BUILD_FILES]);
  });
});
