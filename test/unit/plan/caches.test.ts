import assert from "node:assert/strict";
import { describe, test } from "node:test";
import { cacheEnvironment, cacheKey, cacheRoot } from "../../../src/plan/caches.js";

describe("box caches", () => {
  test("one key per egress allowlist, whatever its order or repeats", () => {
    assert.equal(cacheKey(["b.example", "a.example"]), cacheKey(["a.example", "b.example", "a.example"]));
    assert.notEqual(cacheKey(["a.example"]), cacheKey(["a.example", "registry.npmjs.org"]));
    assert.match(cacheKey([]), /^[0-9a-f]{16}$/);
  });

  test("always inside HOME: $XDG_CACHE_HOME only when it lies there", () => {
    assert.equal(cacheRoot("/home/al", {}), "/home/al/.cache/fourwall/boxes");
    assert.equal(cacheRoot("/home/al", { XDG_CACHE_HOME: "/home/al/.c" }), "/home/al/.c/fourwall/boxes");
    assert.equal(
      cacheRoot("/home/al", { XDG_CACHE_HOME: "/var/cache/al" }),
      "/home/al/.cache/fourwall/boxes",
    );
    assert.equal(cacheRoot("/home/al", { XDG_CACHE_HOME: "/home/alice" }), "/home/al/.cache/fourwall/boxes");
    assert.equal(cacheRoot("/home/al", { XDG_CACHE_HOME: "rel" }), "/home/al/.cache/fourwall/boxes");
  });

  test("each tool's variable points into the box cache, never at the host's own", () => {
    const env = cacheEnvironment("/home/al/.cache/fourwall/boxes/k");
    assert.equal(env.npm_config_cache, "/home/al/.cache/fourwall/boxes/k/npm");
    assert.equal(env.PIP_CACHE_DIR, "/home/al/.cache/fourwall/boxes/k/pip");
    for (const value of Object.values(env)) assert.ok(value.startsWith("/home/al/.cache/fourwall/boxes/k/"));
  });
});
