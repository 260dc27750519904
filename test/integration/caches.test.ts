/**
 * The boxes' package manager caches: npm in a box writes fourwall's per-user, per-allowlist cache
 * (never the host's ~/.npm, which stays read-only and untouched even when it exists), and a second
 * box with the same allowlist installs the same package with --offline: nothing is downloaded again.
 * Against a registry stand-in on loopback, both launch modes.
 */
import assert from "node:assert/strict";
import { mkdirSync, readdirSync } from "node:fs";
import path from "node:path";
import { after, before, describe, it } from "node:test";
import { chownToMode, MODES, makeFixture, sh } from "../helpers/box.js";
import { type Registry, startRegistry } from "../helpers/egress-servers.js";

let registry: Registry;
before(async () => {
  registry = await startRegistry("registry.test");
});
after(() => registry.close());

for (const mode of MODES) {
  describe(`package manager caches (${mode})`, () => {
    it("npm fills the box cache once; a second box installs --offline from it; ~/.npm is left alone", async () => {
      const fx = makeFixture(mode);
      const hostNpm = path.join(fx.home, ".npm");
      mkdirSync(hostNpm);
      chownToMode(fx, hostNpm);
      const flags = ["-a", `registry.test:${registry.port}`, "--resolve", "registry.test=127.0.0.1"];
      const npm = `--registry http://registry.test:${registry.port}/ --no-update-notifier --no-audit --no-fund`;
      const install = (dir: string, offline: string) =>
        `echo "cache=$npm_config_cache"; mkdir ${dir} && cd ${dir} && npm install ${registry.name} ${npm} ${offline} >/dev/null && node -e 'console.log(require("${registry.name}"))'`;

      const first = await sh(fx, install("app1", ""), { flags, timeoutMs: 60_000 });
      assert.equal(first.code, 0, first.stderr);
      assert.match(first.stdout, new RegExp(registry.marker));
      const cache = /cache=(\S+)/.exec(first.stdout)?.[1] ?? "";
      assert.ok(cache.startsWith(path.join(fx.home, ".cache", "fourwall", "boxes")), cache);
      const hits = registry.hits;
      assert.ok(hits > 0);

      const second = await sh(fx, install("app2", "--offline"), { flags, timeoutMs: 60_000 });
      assert.equal(second.code, 0, second.stderr);
      assert.match(second.stdout, new RegExp(registry.marker));
      assert.equal(registry.hits, hits, "the second box downloaded nothing");
      assert.match(second.stdout, new RegExp(`cache=${cache}\\n`), "the same cache");
      assert.deepEqual(readdirSync(hostNpm), [], "the host's ~/.npm is not the box's cache");

      // another allowlist, another cache: --offline has nothing to install from
      const other = await sh(fx, install("app3", "--offline"), {
        flags: [...flags, "-a", "other.test"],
        timeoutMs: 60_000,
      });
      assert.notEqual(other.code, 0);
      assert.doesNotMatch(other.stdout, new RegExp(`cache=${cache}\\n`));
    });
  });
}
