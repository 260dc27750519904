import assert from "node:assert/strict";
import { chmodSync, chownSync, mkdirSync, mkdtempSync, rmSync, symlinkSync } from "node:fs";
import os from "node:os";
import path from "node:path";
import { after, describe, it } from "node:test";
import { checkStateDirOverride, privateStateDir, STATE_DIR_VAR } from "../../../src/core/state-dir.js";

const uid = process.getuid!();
const base = mkdtempSync(path.join(os.tmpdir(), "fwtest-statedir-"));
after(() => rmSync(base, { recursive: true, force: true }));

const dir = (name: string, mode = 0o700) => {
  const d = path.join(base, name);
  mkdirSync(d, { recursive: true, mode });
  chmodSync(d, mode);
  return d;
};

describe("FOURWALL_STATE_DIR", () => {
  it("puts every private state path in the caller's own 0700 dir", () => {
    const d = dir("good");
    process.env[STATE_DIR_VAR] = d;
    try {
      assert.equal(privateStateDir("boxes"), path.join(d, "boxes"));
      assert.equal(privateStateDir("locks"), path.join(d, "locks"));
    } finally {
      delete process.env[STATE_DIR_VAR];
    }
  });

  it("refuses a dir another user could change (or plant) what is in it", () => {
    const refused = (d: string, why: RegExp) =>
      assert.throws(() => checkStateDirOverride(d, uid), why, `${d} is refused`);
    refused("relative/state", /absolute/);
    refused(dir("open", 0o755), /open to others/);
    refused(path.join(base, "missing"), /not a directory/);
    const link = path.join(base, "link");
    symlinkSync(dir("target"), link);
    refused(link, /symlink/);
    refused(path.join(link, "."), /not a directory|real path/);
    if (uid === 0) {
      // another user's dir, and a private dir of root's inside a dir another user owns or all can write
      const theirs = dir("theirs");
      chownSync(theirs, 65534, 65534);
      refused(theirs, /not uid 0's/);
      const parent = dir("user-parent", 0o755);
      const inside = dir("user-parent/state");
      chownSync(parent, 65534, 65534);
      refused(inside, /uid 65534's/);
      dir("open-parent", 0o777);
      refused(dir("open-parent/state"), /others can write/);
    }
    // a sticky world-writable parent (like /tmp) is fine: nobody else can rename what is in it
    dir("sticky", 0o1777);
    checkStateDirOverride(dir("sticky/state"), uid);
  });
});
