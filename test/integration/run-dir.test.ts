import assert from "node:assert/strict";
import { spawnSync } from "node:child_process";
import { chmodSync, existsSync, mkdtempSync, readdirSync, rmSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { describe, it } from "node:test";
import { MODES, makeFixture, startInBox, userArgs, waitFor } from "../helpers/box.js";

// Another local user must not reach what fourwall leaves on the host while a box runs: the run dir
// holds the box's generated passwd and gitconfig, the cover file and the proxy/gate socket paths.
const OTHER_UID = 65533;

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
  });
}
