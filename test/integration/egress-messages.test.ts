/**
 * Messages that say the fix, through a real box with curl, both launch modes: a refused host's 403
 * names the host, the port and the `-a` flag, and so does the exit summary; a name that does not
 * resolve (allowed by policy, `.invalid`) is "unreachable", not "blocked"; `-a 127.0.0.1:PORT`
 * reaches the host's loopback origin (the box's NO_PROXY no longer sends it to the box's own
 * loopback); an unknown runtime and a start in / are one line naming the fix, exit 125.
 */
import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { after, before, describe, it } from "node:test";
import { fourwallArgv, MODES, makeFixture, sh } from "../helpers/box.js";
import { type Origin, startHttpOrigin } from "../helpers/origins.js";

let origin: Origin;
before(async () => {
  origin = await startHttpOrigin();
});
after(() => origin.close());

for (const mode of MODES) {
  describe(`egress messages (${mode})`, () => {
    it("a refused host: the 403 and the exit summary name host, port and the -a flag", async () => {
      const fx = makeFixture(mode);
      const r = await sh(fx, `curl -s -m 5 -D - http://other.test:${origin.port}/`, {
        flags: ["-a", "allowed.test"],
      });
      assert.match(r.stdout, /^HTTP\/1\.1 403/);
      assert.match(r.stdout, new RegExp(`no egress rule allows other\\.test:${origin.port}`));
      assert.match(r.stdout, new RegExp(`fix: -a other\\.test:${origin.port} \\(policy: egress\\.allow`));
      assert.match(
        r.stderr,
        new RegExp(
          `egress blocked 1 request\\(s\\):\\n {2}other\\.test:${origin.port} \\(not-allowed\\): -a other\\.test:${origin.port}`,
        ),
      );
    });

    it("a name that does not resolve is unreachable, not blocked", async () => {
      const fx = makeFixture(mode);
      const r = await sh(fx, "curl -s -m 10 -D - http://nothere.invalid/", {
        flags: ["-a", "nothere.invalid"],
      });
      assert.match(r.stdout, /^HTTP\/1\.1 502/);
      assert.match(r.stdout, /nothere\.invalid could not be resolved \(DNS\): unreachable, not blocked/);
      assert.doesNotMatch(r.stderr, /egress blocked/);
      assert.match(r.stderr, /egress could not reach \(not blocked\) 1 request/);
    });

    it("-a 127.0.0.1:PORT reaches the host's loopback origin (NO_PROXY does not defeat it)", async () => {
      const fx = makeFixture(mode);
      const before = origin.hits;
      const r = await sh(fx, `echo "$NO_PROXY"; curl -s -m 5 http://127.0.0.1:${origin.port}/hi`, {
        flags: ["-a", `127.0.0.1:${origin.port}`],
      });
      assert.match(r.stdout, /^localhost,::1\n/);
      assert.match(r.stdout, /origin=http/, r.stderr);
      assert.equal(origin.hits, before + 1);
    });

    it("an unknown runtime and a start in / are one line naming the fix, exit 125", () => {
      const fx = makeFixture(mode);
      const run = (args: string[], cwd: string) => {
        const [program, ...rest] = fourwallArgv(mode, args);
        return spawnSync(program!, rest, { cwd, env: fx.env, encoding: "utf8", timeout: 20_000 });
      };
      const r = run(["run", "-r", "nope", "--", "true"], fx.workdir);
      assert.equal(r.status, 125);
      assert.equal(r.stderr.trim().split("\n").length, 1, r.stderr);
      assert.match(r.stderr, /namespaces, gvisor, docker, vm/);
      const root = run(["run", "--", "true"], "/");
      assert.equal(root.status, 125);
      assert.match(root.stderr, /fix: cd into your project's directory first, or pass --workdir DIR/);
    });
  });
}
