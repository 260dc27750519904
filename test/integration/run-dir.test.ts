import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync, statSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { MODES, makeFixture, startInBox, userArgs, waitFor } from "../helpers/box.js";

// Another local user must not reach what fourwall leaves on the host while a box runs: the run dir
// holds the box's generated passwd and gitconfig, the cover file and the proxy/gate socket paths.
const OTHER_UID = 65533;
/** FOURWALL_SQUID (a squid-openssl kept outside PATH) reaches fourwall through the fixture's clean env. */
const squidEnv: Record<string, string> = process.env.FOURWALL_SQUID
  ? { FOURWALL_SQUID: process.env.FOURWALL_SQUID }
  : {};

const asOther = (argv: string[]) => {
  const [program, ...args] = [...userArgs("user", OTHER_UID), ...argv];
  return spawnSync(program!, args, { encoding: "utf8" });
};

/** What another user can do in RUN: each probe that worked. */
function otherUserReaches(run: string): string[] {
  const reached: string[] = [];
  if (asOther(["ls", run]).status === 0) reached.push("list the run dir");
  if (asOther(["cat", path.join(run, "files", "passwd")]).status === 0) reached.push("read files/passwd");
  if (asOther(["cat", path.join(run, "empty")]).status === 0) reached.push("read the cover file");
  if (asOther(["test", "-S", path.join(run, "net", "proxy.sock")]).status === 0)
    reached.push("see net/proxy.sock");
  return reached;
}

for (const mode of MODES) {
  describe(`run dir (${mode}-launched)`, () => {
    it("another local user cannot list or read anything in it while the box runs", async () => {
      const fx = makeFixture(mode);
      // A temp dir of the test's own (sticky, world-writable like /tmp) so the run dir is easy to find.
      const tmp = mkdtempSync(path.join(os.tmpdir(), "fourwall-rundir-"));
      chmodSync(tmp, 0o1777);
      const box = startInBox({ ...fx, env: { ...fx.env, TMPDIR: tmp } }, [], "echo ready; sleep 30");
      try {
        assert.ok(await waitFor(() => box.out().includes("ready"), 20_000), "box started");
        const [name] = readdirSync(tmp).filter((n) => n.startsWith("fourwall-"));
        assert.ok(name, "the run dir is in TMPDIR");
        const run = path.join(tmp, name);
        assert.ok(existsSync(path.join(run, "files", "passwd")), "the run dir holds the box's passwd");
        assert.deepEqual(otherUserReaches(run), []);
        // The same probes catch the old layout (a run dir anyone can walk): the check can fail.
        chmodSync(run, 0o711);
        assert.ok(otherUserReaches(run).includes("read files/passwd"), "a 0711 run dir is reachable");
      } finally {
        box.child.kill("SIGTERM");
        await box.closed;
        rmSync(tmp, { recursive: true, force: true });
      }
    });

    it("with --proxy squid the run dir is as closed, and squid's files are in a dir of squid's own", async () => {
      const fx = makeFixture(mode);
      const tmp = mkdtempSync(path.join(os.tmpdir(), "fourwall-rundir-"));
      chmodSync(tmp, 0o1777);
      const env = { ...fx.env, ...squidEnv, TMPDIR: tmp };
      const box = startInBox({ ...fx, env }, ["--proxy", "squid"], "echo ready; sleep 30");
      try {
        assert.ok(await waitFor(() => box.out().includes("ready"), 30_000), "box started");
        const names = readdirSync(tmp).filter((n) => n.startsWith("fourwall-"));
        const run = names.find((n) => !n.includes("-squid-"));
        const squid = names.find((n) => n.includes("-squid-"));
        assert.ok(run && squid, `a run dir and a squid dir in TMPDIR: ${names.join(" ")}`);
        const runStat = statSync(path.join(tmp, run));
        assert.equal(runStat.mode & 0o777, mode === "root" ? 0o710 : 0o700, "the run dir's mode");
        assert.deepEqual(otherUserReaches(path.join(tmp, run)), []);
        const squidStat = statSync(path.join(tmp, squid));
        assert.equal(squidStat.mode & 0o777, 0o700, "squid's dir is private");
        if (mode === "root") assert.notEqual(squidStat.uid, 0, "as root, squid's dir is squid's uid's");
        assert.ok(existsSync(path.join(tmp, squid, "squid.conf")), "squid's config is in its own dir");
        assert.notEqual(asOther(["ls", path.join(tmp, squid)]).status, 0, "another user cannot list it");
      } finally {
        box.child.kill("SIGTERM");
        await box.closed;
      }
      assert.deepEqual(
        readdirSync(tmp).filter((n) => n.startsWith("fourwall-")),
        [],
        "run dir and squid dir removed",
      );
      rmSync(tmp, { recursive: true, force: true });
    });
  });
}
